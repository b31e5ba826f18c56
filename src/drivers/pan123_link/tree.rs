//! The `origin_urls` text of the 123pan_link driver, parsed into a tree (pan123-protocol.md §4.2).
//!
//! The format is OpenList's `123PanLink` format, so a user can paste their existing text:
//!
//! ```text
//! Movies:
//!   1073741824:1700000000:https://vip.123pan.cn/1814435971/movies/a.mp4
//!   Extras:
//!     https://vip.123pan.cn/1814435971/movies/%E8%8A%B1%E7%B5%AE.mkv
//!   2048:https://vip.123pan.cn/1814435971/movies/b.srt
//! https://vip.123pan.cn/1814435971/readme.txt
//! ```
//!
//! Two spaces per level; a line ending in `:` is a folder; any other line is a file written
//! `[size:][mtime:]URL`, named after the URL's last path segment. The parse follows OpenList's
//! algorithm step by step (the odd-indent rule, the URL split at the first `http://`, Go
//! `path.Base` and `url.PathUnescape` semantics), except where a difference serves a mount
//! better. Those differences are deliberate and each is marked `DIFFERENCE` where it happens:
//!
//! - (a) a file written without a size has size `None` ("unknown") rather than OpenList's 0: a
//!   0-byte file would read as empty; the core asks the server for the real size instead;
//! - (b) a folder's size is not computed (OpenList sums its files): nothing in a mount shows it;
//! - (c) the name is taken from the URL *without* its `?query` and `#fragment` (OpenList keeps
//!   them: `a.mp4?x=1` is a useless name for a media server, and a `/` inside the query would
//!   even make OpenList take the name from the query);
//! - (d) duplicate names in one folder: OpenList shows both and lookups find the first. A mount
//!   cannot show two entries with one name, so later duplicates are renamed `a (2).mp4`
//!   (before the extension, so the type stays recognisable; `Name (2)` for folders and names
//!   without an extension). Nothing is hidden, and [`Tree::warnings`] says what was renamed;
//! - (e) a folder name that cannot exist in a file system (empty, `.`, `..`, containing `/` or
//!   NUL) is a parse error with its line, instead of an unreachable folder: the user typed it.
//!   A URL line that ends in `:` is still a folder, as in OpenList, so it fails here (its name
//!   has `/`). A file's name comes from its URL, that is from the 123pan file's own name, so it
//!   is kept whatever it decodes to and shown the way every provider name is (`a%2Fb.mp4` as
//!   `a／b.mp4`, see `crate::names`); the path (the id) is made of those shown names;
//! - (f) a negative size is an error (OpenList's int64 would accept it);
//! - (g) a name whose percent-decoding is not UTF-8 keeps its raw (encoded) form, as an invalid
//!   escape already does in OpenList.

//!
//! Memory (issue 12: a text of a million links): a file is 40 bytes and its URL, which sits
//! with every other URL in one string; its name is derived from the URL when asked for (only a
//! renamed duplicate's is stored), and its path from its folder's. Folders (few) keep their
//! name, path and children.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// A parse failure, with the 1-based line of `origin_urls` it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The URL as written (unsigned).
    pub url: String,
    /// `None` when the line gives no size (DIFFERENCE (a)).
    pub size: Option<u64>,
    /// Unix seconds: as written, the parse time when only a size is written, 0 without info.
    pub mtime: i64,
}

/// A folder or a file of the tree: a folder's index, or a file's with [`FILE`] set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Child(u32);

const FILE: u32 = 1 << 31;

impl Child {
    fn folder(i: usize) -> Self {
        Child(i as u32)
    }
    fn file(i: usize) -> Self {
        Child(i as u32 | FILE)
    }
    fn split(self) -> Result<usize, usize> {
        if self.0 & FILE == 0 { Ok(self.0 as usize) } else { Err((self.0 & !FILE) as usize) }
    }
}

#[derive(Debug, Clone)]
struct Folder {
    /// The name shown in the mount (possibly renamed by DIFFERENCE (d)).
    name: String,
    /// `/` for the root, `/Movies` below it, each name as the mount shows it
    /// (`crate::names::escape`).
    path: String,
    line: usize,
    /// In text order.
    children: Vec<Child>,
    /// The same, sorted by shown (escaped) name: a file is found by a binary search.
    sorted: Vec<Child>,
}

#[derive(Debug, Clone)]
struct File {
    /// Where its URL starts in [`Tree::urls`], and its length.
    url_at: usize,
    url_len: u32,
    line: u32,
    size: Option<u64>,
    mtime: i64,
}

#[derive(Debug, Clone)]
pub struct Tree {
    folders: Vec<Folder>,
    files: Vec<File>,
    /// Every file's URL, one after the other.
    urls: String,
    /// The names of files renamed by DIFFERENCE (d); any other file's comes from its URL.
    renamed: HashMap<u32, String>,
    /// Folders by path.
    by_path: HashMap<String, usize>,
    /// What the parse changed to make the tree mountable (renamed duplicates), for the log.
    pub warnings: Vec<String>,
}

/// A folder or file of a [`Tree`].
#[derive(Debug, Clone, Copy)]
pub struct Node<'t> {
    tree: &'t Tree,
    child: Child,
    /// The folder it is in (the root's is itself).
    parent: usize,
}

impl PartialEq for Node<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.tree, other.tree) && self.child == other.child
    }
}

impl<'t> Node<'t> {
    pub fn is_dir(&self) -> bool {
        self.child.split().is_ok()
    }

    /// The name shown in the mount (decoded, possibly renamed by DIFFERENCE (d)).
    pub fn name(&self) -> Cow<'t, str> {
        self.tree.name(self.child)
    }

    /// The full path in the tree: `/` for the root, `/Movies/a.mp4` below it, each name as the
    /// mount shows it (`crate::names::escape`).
    pub fn path(&self) -> String {
        match self.child.split() {
            Ok(folder) => self.tree.folders[folder].path.clone(),
            Err(_) => join(&self.tree.folders[self.parent].path, &crate::names::escape(&self.name())),
        }
    }

    /// The 1-based line that declared it (0 for the root).
    pub fn line(&self) -> usize {
        match self.child.split() {
            Ok(folder) => self.tree.folders[folder].line,
            Err(file) => self.tree.files[file].line as usize,
        }
    }

    pub fn file(&self) -> Option<FileInfo> {
        let f = &self.tree.files[self.child.split().err()?];
        Some(FileInfo { url: self.tree.url(f).to_string(), size: f.size, mtime: f.mtime })
    }
}

impl Tree {
    pub fn root(&self) -> Node<'_> {
        Node { tree: self, child: Child::folder(0), parent: 0 }
    }

    /// The node at `path` (exact: `/Movies`, not `/Movies/`).
    pub fn get(&self, path: &str) -> Option<Node<'_>> {
        if let Some(&i) = self.by_path.get(path) {
            return Some(Node { tree: self, child: Child::folder(i), parent: 0 });
        }
        let (parent, name) = path.rsplit_once('/')?;
        let parent = *self.by_path.get(if parent.is_empty() { "/" } else { parent })?;
        let sorted = &self.folders[parent].sorted;
        let found = sorted.binary_search_by(|&c| crate::names::escape(&self.name(c)).as_str().cmp(name)).ok()?;
        Some(Node { tree: self, child: sorted[found], parent })
    }

    /// `node`'s children in text order (none for a file).
    pub fn children<'n>(&'n self, node: Node<'n>) -> impl Iterator<Item = Node<'n>> + 'n {
        let parent = node.child.split().unwrap_or(0);
        let children = node.child.split().map_or(&[][..], |f| &self.folders[f].children[..]);
        children.iter().map(move |&child| Node { tree: self, child, parent })
    }

    /// Every file, folder by folder.
    pub fn files(&self) -> impl Iterator<Item = Node<'_>> + '_ {
        self.folders.iter().enumerate().flat_map(move |(parent, folder)| {
            folder.children.iter().filter(|c| c.split().is_err()).map(move |&child| Node { tree: self, child, parent })
        })
    }

    fn url(&self, f: &File) -> &str {
        &self.urls[f.url_at..f.url_at + f.url_len as usize]
    }

    fn name(&self, child: Child) -> Cow<'_, str> {
        match child.split() {
            Ok(folder) => Cow::Borrowed(&self.folders[folder].name),
            Err(file) => match self.renamed.get(&(file as u32)) {
                Some(name) => Cow::Borrowed(name),
                None => Cow::Owned(name_from_url(self.url(&self.files[file]))),
            },
        }
    }
}

/// `parent`'s path joined with a child's shown (escaped) name.
fn join(parent: &str, segment: &str) -> String {
    if parent == "/" { format!("/{segment}") } else { format!("{parent}/{segment}") }
}

/// Parse `text`; `now_unix` is the mtime of files written with a size but no mtime.
pub fn parse(text: &str, now_unix: i64) -> Result<Tree, ParseError> {
    let root = Folder { name: String::new(), path: "/".into(), line: 0, children: Vec::new(), sorted: Vec::new() };
    let mut tree = Tree {
        folders: vec![root],
        // Sized once: doubling a vector of a million files keeps two copies alive for a moment.
        files: Vec::with_capacity(text.bytes().filter(|&b| b == b'\n').count() + 1),
        urls: String::new(),
        renamed: HashMap::new(),
        by_path: HashMap::new(),
        warnings: Vec::new(),
    };
    // (folder index, level); the synthetic root has level -1.
    let mut stack: Vec<(usize, i64)> = vec![(0, -1)];
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let err = |message: String| ParseError { line, message };
        let indent = raw.bytes().take_while(|&b| b == b' ').count();
        // Checked before skipping blank lines, as OpenList does: a line of three spaces fails.
        if indent % 2 != 0 {
            return Err(err(format!("the line '{}' is not a multiple of 2", raw.trim_end_matches('\r'))));
        }
        let level = (indent / 2) as i64;
        let rest = raw[indent..].trim();
        if rest.is_empty() {
            continue;
        }
        while stack.last().is_some_and(|&(_, l)| level <= l) {
            stack.pop();
        }
        let parent = stack.last().map_or(0, |&(p, _)| p);
        // The suffix test comes first: any line ending in `:` is a folder (one colon removed).
        let child = if let Some(name) = rest.strip_suffix(':') {
            check_name(name).map_err(err)?;
            let index = tree.folders.len();
            stack.push((index, level));
            let name = name.to_string();
            tree.folders.push(Folder { name, path: String::new(), line, children: Vec::new(), sorted: Vec::new() });
            Child::folder(index)
        } else {
            let (url, size, mtime) = parse_file(rest, now_unix).map_err(err)?;
            let file = File { url_at: tree.urls.len(), url_len: url.len() as u32, line: line as u32, size, mtime };
            tree.urls.push_str(url);
            tree.files.push(file);
            Child::file(tree.files.len() - 1)
        };
        tree.folders[parent].children.push(child);
    }
    tree.urls.shrink_to_fit();
    name_children(&mut tree);
    Ok(tree)
}

/// `[size:][mtime:]URL` → (URL, size, mtime).
fn parse_file(line: &str, now_unix: i64) -> Result<(&str, Option<u64>, i64), String> {
    // OpenList looks for `http://` first and only then for `https://`, so an https URL with
    // `http://` in its query splits there and then fails on the info part. Kept as is.
    let start = line
        .find("http://")
        .or_else(|| line.find("https://"))
        .ok_or_else(|| "url is required for file (a file line is [size:][mtime:]http(s)://...)".to_string())?;
    let (info, url) = line.split_at(start);
    let (size, mtime) = if info.is_empty() {
        // DIFFERENCE (a): unknown size, not 0. The mtime is 0 (1970) as in OpenList.
        (None, 0)
    } else {
        let info = info.strip_suffix(':').ok_or_else(|| {
            format!("file info must end with ':' (found '{info}' before the URL; write [size:][mtime:]URL)")
        })?;
        if info.is_empty() {
            return Err("file name can't be empty (nothing between ':' and the URL; write [size:][mtime:]URL)".into());
        }
        let mut parts = info.split(':');
        let size_text = parts.next().unwrap_or("");
        let size: i64 = size_text
            .parse()
            .map_err(|_| format!("invalid file size '{size_text}': must be an integer number of bytes"))?;
        // DIFFERENCE (f).
        let size = u64::try_from(size).map_err(|_| format!("invalid file size '{size_text}': must not be negative"))?;
        let mtime = match parts.next() {
            Some(m) => {
                m.parse::<i64>().map_err(|_| format!("invalid modification time '{m}': must be Unix seconds"))?
            }
            None => now_unix,
        };
        // Parts after the mtime are ignored, as in OpenList.
        (Some(size), mtime)
    };
    Ok((url, size, mtime))
}

/// Go `path.Base` of the URL (DIFFERENCE (c): without query and fragment), then Go
/// `url.PathUnescape` (`+` stays `+`; an invalid escape keeps the raw name).
fn name_from_url(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let base = go_path_base(&url[..end]);
    match path_unescape(base) {
        // DIFFERENCE (g): non-UTF-8 after decoding keeps the raw form.
        Some(bytes) => String::from_utf8(bytes).unwrap_or_else(|_| base.to_string()),
        None => base.to_string(),
    }
}

fn go_path_base(path: &str) -> &str {
    if path.is_empty() {
        return ".";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    match trimmed.rfind('/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// Percent-decoding with Go's path semantics: `None` on an invalid escape.
fn path_unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let hi = b.get(i + 1).copied().and_then(hex)?;
            let lo = b.get(i + 2).copied().and_then(hex)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// DIFFERENCE (e): folder names a file system can hold.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("the name is empty".into())
    } else if name == "." || name == ".." {
        Err(format!("'{name}' cannot be used as a name"))
    } else if name.contains('/') {
        Err(format!("the name '{name}' contains '/'"))
    } else if name.contains('\0') {
        Err("the name contains a NUL character".into())
    } else {
        Ok(())
    }
}

/// DIFFERENCE (d), then paths and sorted children, folder by folder (a folder comes after its
/// parent, so its path is known when its own children are named).
fn name_children(tree: &mut Tree) {
    let mut warnings = Vec::new();
    for folder in 0..tree.folders.len() {
        let children = std::mem::take(&mut tree.folders[folder].children);
        let mut names: Vec<String> = children.iter().map(|&c| tree.name(c).into_owned()).collect();
        rename_duplicates(tree, &children, &mut names, &mut warnings);
        for name in &mut names {
            *name = crate::names::escape(name);
        }
        let path = tree.folders[folder].path.clone();
        for (c, name) in children.iter().zip(&names) {
            if let Ok(f) = c.split() {
                tree.folders[f].path = join(&path, name);
            }
        }
        let mut order: Vec<u32> = (0..children.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
        tree.folders[folder].sorted = order.iter().map(|&k| children[k as usize]).collect();
        tree.folders[folder].children = children;
        tree.by_path.insert(path, folder);
    }
    warnings.sort_by_key(|(line, _)| *line);
    tree.warnings = warnings.into_iter().map(|(_, w)| w).collect();
}

/// DIFFERENCE (d) in one folder (`names` are its `children`'s): the first of several equal
/// names keeps it; the others become `a (2).mp4`, `a (3).mp4`, skipping any name already taken
/// in the folder.
fn rename_duplicates(tree: &mut Tree, children: &[Child], names: &mut [String], warnings: &mut Vec<(usize, String)>) {
    // The common case, checked without copying a name: no name twice in the folder.
    let mut seen = HashSet::with_capacity(names.len());
    if names.iter().all(|n| seen.insert(n.as_str())) {
        return;
    }
    drop(seen);
    let mut taken: HashSet<String> = names.iter().cloned().collect();
    let mut seen: HashSet<String> = HashSet::new();
    for (k, &c) in children.iter().enumerate() {
        if seen.insert(names[k].clone()) {
            continue;
        }
        let old = std::mem::take(&mut names[k]);
        let new = (2..)
            .map(|n| crate::names::numbered(&old, n, c.split().is_ok()))
            .find(|cand| !taken.contains(cand))
            .expect("an unused number exists");
        taken.insert(new.clone());
        let line = match c.split() {
            Ok(f) => {
                tree.folders[f].name = new.clone();
                tree.folders[f].line
            }
            Err(f) => {
                tree.renamed.insert(f as u32, new.clone());
                tree.files[f].line as usize
            }
        };
        warnings.push((line, format!("line {line}: '{old}' is already used in this folder; shown as '{new}'")));
        names[k] = new;
    }
}

#[cfg(test)]
mod tests;
