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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Folder,
    File(FileInfo),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The name shown in the mount (decoded, possibly renamed by DIFFERENCE (d)).
    pub name: String,
    /// The full path in the tree: `/` for the root, `/Movies/a.mp4` below it, each name as
    /// the mount shows it (`crate::names::escape`).
    pub path: String,
    /// The 1-based line that declared it (0 for the root).
    pub line: usize,
    pub kind: NodeKind,
    /// Indices into the tree's nodes, in text order.
    children: Vec<usize>,
    /// The same, sorted by path: files are found by a binary search in their folder, so the
    /// path index holds folders only (a million files would cost ~100 MB there).
    sorted: Vec<u32>,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Folder)
    }

    pub fn file(&self) -> Option<&FileInfo> {
        match &self.kind {
            NodeKind::File(f) => Some(f),
            NodeKind::Folder => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<Node>,
    /// Folders by path.
    by_path: HashMap<String, usize>,
    /// What the parse changed to make the tree mountable (renamed duplicates), for the log.
    pub warnings: Vec<String>,
}

impl Tree {
    pub fn root(&self) -> &Node {
        &self.nodes[0]
    }

    /// The node at `path` (exact: `/Movies`, not `/Movies/`).
    pub fn get(&self, path: &str) -> Option<&Node> {
        if let Some(&i) = self.by_path.get(path) {
            return Some(&self.nodes[i]);
        }
        let (parent, _) = path.rsplit_once('/')?;
        let folder = &self.nodes[*self.by_path.get(if parent.is_empty() { "/" } else { parent })?];
        let found = folder.sorted.binary_search_by(|&c| self.nodes[c as usize].path.as_str().cmp(path)).ok()?;
        Some(&self.nodes[folder.sorted[found] as usize])
    }

    /// `node`'s children in text order (none for a file).
    pub fn children<'t>(&'t self, node: &'t Node) -> impl Iterator<Item = &'t Node> + 't {
        node.children.iter().map(|&i| &self.nodes[i])
    }

    /// Every file, in text order.
    pub fn files(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| !n.is_dir())
    }
}

/// Parse `text`; `now_unix` is the mtime of files written with a size but no mtime.
pub fn parse(text: &str, now_unix: i64) -> Result<Tree, ParseError> {
    // Sized once: doubling a vector of a million nodes keeps two copies alive for a moment.
    let mut nodes = Vec::with_capacity(text.bytes().filter(|&b| b == b'\n').count() + 2);
    nodes.push(Node {
        name: String::new(),
        path: "/".to_string(),
        line: 0,
        kind: NodeKind::Folder,
        children: Vec::new(),
        sorted: Vec::new(),
    });
    // (node index, level); the synthetic root has level -1.
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
        let index = nodes.len();
        // The suffix test comes first: any line ending in `:` is a folder (one colon removed).
        let (name, kind) = if let Some(name) = rest.strip_suffix(':') {
            stack.push((index, level));
            (name.to_string(), NodeKind::Folder)
        } else {
            let (name, info) = parse_file(rest, now_unix).map_err(err)?;
            (name, NodeKind::File(info))
        };
        if matches!(kind, NodeKind::Folder) {
            check_name(&name).map_err(err)?;
        }
        nodes[parent].children.push(index);
        nodes.push(Node { name, path: String::new(), line, kind, children: Vec::new(), sorted: Vec::new() });
    }
    let warnings = rename_duplicates(&mut nodes);
    let by_path = assign_paths(&mut nodes);
    Ok(Tree { nodes, by_path, warnings })
}

/// `[size:][mtime:]URL` → (name, info).
fn parse_file(line: &str, now_unix: i64) -> Result<(String, FileInfo), String> {
    // OpenList looks for `http://` first and only then for `https://`, so an https URL with
    // `http://` in its query splits there and then fails on the info part. Kept as is.
    let start = line
        .find("http://")
        .or_else(|| line.find("https://"))
        .ok_or_else(|| "url is required for file (a file line is [size:][mtime:]http(s)://...)".to_string())?;
    let (info, url) = line.split_at(start);
    let name = name_from_url(url);
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
    Ok((name, FileInfo { url: url.to_string(), size, mtime }))
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

/// DIFFERENCE (d): the first of several equal names keeps it; the others become `a (2).mp4`,
/// `a (3).mp4`, skipping any name already taken in the folder.
fn rename_duplicates(nodes: &mut [Node]) -> Vec<String> {
    let mut warnings = Vec::new();
    for folder in 0..nodes.len() {
        // The common case, checked without copying a name: no name twice in the folder.
        let mut names = HashSet::with_capacity(nodes[folder].children.len());
        if nodes[folder].children.iter().all(|&c| names.insert(nodes[c].name.as_str())) {
            continue;
        }
        drop(names);
        let children = nodes[folder].children.clone();
        let mut taken: HashSet<String> = children.iter().map(|&c| nodes[c].name.clone()).collect();
        let mut seen: HashSet<String> = HashSet::new();
        for c in children {
            if seen.insert(nodes[c].name.clone()) {
                continue;
            }
            let old = nodes[c].name.clone();
            let new = (2..)
                .map(|n| crate::names::numbered(&old, n, nodes[c].is_dir()))
                .find(|cand| !taken.contains(cand))
                .expect("an unused number exists");
            taken.insert(new.clone());
            let line = nodes[c].line;
            warnings.push((line, format!("line {line}: '{old}' is already used in this folder; shown as '{new}'")));
            nodes[c].name = new;
        }
    }
    warnings.sort_by_key(|(line, _)| *line);
    warnings.into_iter().map(|(_, w)| w).collect()
}

/// Full paths, top-down (iteratively: the text decides the depth); the folders by path.
fn assign_paths(nodes: &mut [Node]) -> HashMap<String, usize> {
    let mut by_path = HashMap::new();
    let mut todo = vec![0];
    while let Some(index) = todo.pop() {
        by_path.insert(nodes[index].path.clone(), index);
        let children = std::mem::take(&mut nodes[index].children);
        for &c in &children {
            let parent = &nodes[index].path;
            let segment = crate::names::escape(&nodes[c].name);
            nodes[c].path = if parent == "/" { format!("/{segment}") } else { format!("{parent}/{segment}") };
            if nodes[c].is_dir() {
                todo.push(c);
            }
        }
        let mut sorted: Vec<u32> = children.iter().map(|&c| c as u32).collect();
        sorted.sort_unstable_by(|&a, &b| nodes[a as usize].path.cmp(&nodes[b as usize].path));
        nodes[index].children = children;
        nodes[index].sorted = sorted;
    }
    by_path
}

#[cfg(test)]
mod tests;
