//! Names the kernel can show. Cloud drives allow what a directory cannot hold: `/` or NUL
//! inside a name, `.`/`..`, empty names, names over the kernel's 255 bytes, and two files with
//! one name in a folder (PikPak, 123pan). Every listing the core keeps
//! (`crate::cache::meta::Listing`) derives its entries' shown names here, once, so whatever a
//! driver returns, each name in a folder is valid and unique, and no entry is hidden. The
//! entries keep the provider's names: what goes back to a provider, and what the listing store
//! persists, is the remote name, and the shown names are derived again whenever a listing is
//! built from it. The mapping has three steps (README.md, "Names", says the same for users):
//!
//! 1. [`escape`], one name at a time, rclone's encoding for Linux (its `Base` encoder), so a
//!    user coming from rclone mount sees the same names: `/` becomes `／` (U+FF0F, FULLWIDTH
//!    SOLIDUS), NUL becomes `␀` (U+2400), a name that is exactly `.` or `..` becomes `．` or `．．`
//!    (U+FF0E), and the empty name becomes `‛` (U+201B, rclone's quote character). A real name
//!    that already holds one of these look-alikes gets the quote in front of it (`a／b` is shown
//!    as `a‛／b`, `‛` as `‛‛`), so the step is a bijection: [`unescape`] gives the remote name
//!    back, exactly.
//! 2. A name still over 255 bytes is cut at a character boundary, keeping an extension of up
//!    to 16 bytes, with `~` and 8 hex digits of an MD5 of the full remote name before the
//!    extension: stable across listings, distinct for distinct names.
//! 3. Names that are still equal in a folder (true duplicates, or a cut name that happens to
//!    match another) are numbered: the oldest entry (by mtime, then by id) keeps the name, the
//!    others become `a (2).mp4`, `a (3).mp4`, ... before the extension, so media servers still
//!    recognise the type (`Name (2)` for folders), skipping any name already used in the folder.
//!    The numbers depend only on the listing's content, not on the order the provider sent it.
//!
//! Steps 2 and 3 lose information, so their inverse is a table: a listing's name index, built
//! from its shown names, finds the entry shown under a given name. That is how a shown path is
//! turned back into remote entries (`lookup`, `panmount offline add --to`), and why it is
//! enough: the listing always carries the full remote names.

use std::collections::HashSet;

use crate::drivers::Entry;

/// The longest name Linux accepts in a path component, in bytes.
pub const MAX_NAME: usize = 255;

/// rclone's quote character: a look-alike that stands for itself is written after it.
const QUOTE: char = '\u{201B}';
const SLASH: char = '\u{FF0F}';
const NUL: char = '\u{2400}';
const DOT: char = '\u{FF0E}';

/// Step 1: a remote name as a name a directory can hold (not yet length-checked).
pub fn escape(name: &str) -> String {
    match name {
        "" => QUOTE.to_string(),
        "." => DOT.to_string(),
        ".." => format!("{DOT}{DOT}"),
        _ if is_dots(name) => format!("{QUOTE}{name}"),
        _ => {
            let mut out = String::with_capacity(name.len());
            for c in name.chars() {
                match c {
                    '/' => out.push(SLASH),
                    '\0' => out.push(NUL),
                    SLASH | NUL | QUOTE => {
                        out.push(QUOTE);
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out
        }
    }
}

/// The inverse of [`escape`]: the remote name `shown` stands for, or `None` when no name
/// escapes to it.
pub fn unescape(shown: &str) -> Option<String> {
    let name = match shown.strip_prefix(QUOTE) {
        Some("") => String::new(),
        Some(rest) if is_dots(rest) => rest.to_string(),
        _ if is_dots(shown) => shown.replace(DOT, "."),
        _ => {
            let mut out = String::with_capacity(shown.len());
            let mut chars = shown.chars();
            while let Some(c) = chars.next() {
                match c {
                    QUOTE => out.push(chars.next()?),
                    SLASH => out.push('/'),
                    NUL => out.push('\0'),
                    c => out.push(c),
                }
            }
            out
        }
    };
    // Only names `escape` can produce (`‛x` for an ordinary `x` is not one of them).
    (escape(&name) == shown).then_some(name)
}

/// Whether [`escape`] leaves `name` as it is.
fn is_plain(name: &str) -> bool {
    !matches!(name, "" | "." | "..") && !is_dots(name) && !name.contains(['/', '\0', SLASH, NUL, QUOTE])
}

/// `．` or `．．`, the look-alikes of `.` and `..`.
fn is_dots(name: &str) -> bool {
    !name.is_empty() && name.len() <= 2 * DOT.len_utf8() && name.chars().all(|c| c == DOT)
}

/// The names `entries` (one folder's remote listing) are shown under, in the same order.
pub fn shown_names(entries: &[Entry]) -> Vec<String> {
    let mut names: Vec<String> = entries
        .iter()
        .map(|e| {
            let escaped = escape(&e.name);
            if escaped.len() > MAX_NAME { shorten(&escaped, &e.name, MAX_NAME) } else { escaped }
        })
        .collect();
    // Equal names next to each other, oldest first; numbered in name order.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    let age = |i: usize| (entries[i].mtime, &entries[i].id);
    order.sort_by(|&a, &b| names[a].cmp(&names[b]).then_with(|| age(a).cmp(&age(b))));
    let taken: HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut added: HashSet<String> = HashSet::new();
    let mut renames = Vec::new();
    for equal in order.chunk_by(|&a, &b| names[a] == names[b]) {
        for &i in &equal[1..] {
            let new = (2..)
                .map(|n| numbered_fit(&names[i], n, entries[i].is_dir))
                .find(|c| !taken.contains(c.as_str()) && !added.contains(c))
                .expect("a free number");
            added.insert(new.clone());
            renames.push((i, new));
        }
    }
    drop(taken);
    for (i, new) in renames {
        names[i] = new;
    }
    names
}

/// The entries of `entries` (one folder's remote listing) shown under another name than the
/// provider's, by index, in index order: empty in the common case.
pub fn renamed(entries: &[Entry]) -> Vec<(u32, String)> {
    // The common case, checked without copying a name (a folder may hold a million): every
    // name is shown as it is, and none twice.
    let mut seen = HashSet::with_capacity(entries.len());
    if entries.iter().all(|e| shown_as_is(&e.name) && seen.insert(e.name.as_str())) {
        return Vec::new();
    }
    drop(seen);
    let names = shown_names(entries);
    let differ = entries.iter().zip(names).enumerate().filter(|(_, (e, name))| e.name != *name);
    differ
        .map(|(i, (e, name))| {
            tracing::debug!(remote = ?e.name, shown = %name, id = %e.id, "an entry is shown under another name");
            (i as u32, name)
        })
        .collect()
}

/// Whether `name` is shown as it is (when no other entry of its folder has it too).
pub fn shown_as_is(name: &str) -> bool {
    name.len() <= MAX_NAME && is_plain(name)
}

/// `name` cut to at most `max` bytes, with a digest of `full` (the remote name) and the
/// extension kept.
fn shorten(name: &str, full: &str, max: usize) -> String {
    use md5::{Digest, Md5};
    let tag: String = Md5::digest(full.as_bytes())[..4].iter().map(|b| format!("{b:02x}")).collect();
    let ext = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= 16 => &name[dot..],
        _ => "",
    };
    let mut budget = max - ext.len() - 1 - tag.len();
    while !name.is_char_boundary(budget) {
        budget -= 1;
    }
    format!("{}~{tag}{ext}", &name[..budget])
}

/// [`numbered`], cutting `name` first when the number would not fit in [`MAX_NAME`].
fn numbered_fit(name: &str, n: u32, is_dir: bool) -> String {
    let candidate = numbered(name, n, is_dir);
    if candidate.len() <= MAX_NAME {
        return candidate;
    }
    let room = MAX_NAME - (candidate.len() - name.len());
    numbered(&shorten(name, name, room), n, is_dir)
}

/// `a.mp4` -> `a (2).mp4`; folders and names without an extension (`a`, `.bashrc`, `a.`,
/// `..`) -> `Name (2)`.
pub fn numbered(name: &str, n: u32, is_dir: bool) -> String {
    match name.rfind('.') {
        Some(dot) if !is_dir && dot > 0 && dot + 1 < name.len() => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

#[cfg(test)]
mod tests;
