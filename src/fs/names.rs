//! Names the kernel can show. Cloud drives allow what a directory cannot hold: two files with
//! one name (PikPak, 123pan), `/` inside a name, `.`/`..`, empty names. Every listing passes
//! through [`make_showable`] before the core uses it, so whatever a driver returns, each name
//! in a folder is unique and valid, and nothing is hidden: duplicates are shown as `a (2).mp4`
//! (before the extension, so media servers still recognise the type), `/` as the look-alike
//! `∕` (U+2215, as rclone does), an unusable name as `_`, and a name over the kernel's 255
//! bytes is cut at a character boundary, keeping its extension, with `~` and 8 hex digits of
//! a digest of the full name appended (stable across listings, distinct for distinct names).

use std::collections::HashSet;

use crate::drivers::Entry;

pub fn make_showable(entries: &mut [Entry]) {
    for e in entries.iter_mut() {
        let fixed = match e.name.as_str() {
            "" | "." | ".." => Some("_".to_string()),
            n if n.contains('/') || n.contains('\0') => Some(n.replace('/', "\u{2215}").replace('\0', "")),
            _ => None,
        };
        let fixed = match fixed {
            Some(n) if n.len() > MAX_NAME => Some(shorten(&n)),
            None if e.name.len() > MAX_NAME => Some(shorten(&e.name)),
            other => other,
        };
        if let Some(name) = fixed {
            tracing::debug!(old = %e.name, new = %name, "renamed an entry the kernel cannot show");
            e.name = if name.is_empty() { "_".into() } else { name };
        }
    }
    let mut taken: HashSet<String> = entries.iter().map(|e| e.name.clone()).collect();
    let mut seen = HashSet::new();
    for e in entries.iter_mut() {
        if seen.insert(e.name.clone()) {
            continue;
        }
        let new = (2..).map(|n| numbered(&e.name, n, e.is_dir)).find(|c| !taken.contains(c)).expect("a free number");
        tracing::debug!(old = %e.name, new = %new, "duplicate name in a folder");
        taken.insert(new.clone());
        seen.insert(new.clone());
        e.name = new;
    }
}

/// The longest name Linux accepts in a path component, in bytes.
const MAX_NAME: usize = 255;

fn shorten(name: &str) -> String {
    use md5::{Digest, Md5};
    let tag: String = Md5::digest(name.as_bytes())[..4].iter().map(|b| format!("{b:02x}")).collect();
    let ext = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= 16 => &name[dot..],
        _ => "",
    };
    // Room for " (NN)" numbering too, so a renamed duplicate still fits.
    let mut budget = MAX_NAME - ext.len() - 1 - tag.len() - 8;
    while !name.is_char_boundary(budget) {
        budget -= 1;
    }
    format!("{}~{tag}{ext}", &name[..budget])
}

/// `a.mp4` -> `a (2).mp4`; folders and names without an extension -> `Name (2)`.
pub fn numbered(name: &str, n: u32, is_dir: bool) -> String {
    match name.rfind('.') {
        Some(dot) if !is_dir && dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn e(name: &str, is_dir: bool) -> Entry {
        Entry { id: name.into(), name: name.into(), is_dir, size: Some(1), mtime: SystemTime::UNIX_EPOCH, version: String::new() }
    }

    #[test]
    fn duplicates_and_bad_names_become_unique_and_valid() {
        let mut v = vec![e("a.mp4", false), e("a.mp4", false), e("a (2).mp4", false), e("a.mp4", false), e("D", true), e("D", true), e("x/y", false), e("..", false), e("", false)];
        make_showable(&mut v);
        let names: Vec<_> = v.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a.mp4", "a (3).mp4", "a (2).mp4", "a (4).mp4", "D", "D (2)", "x\u{2215}y", "_", "_ (2)"]);
    }

    #[test]
    fn long_names_are_cut_stably_and_stay_distinct() {
        let long_a = format!("{}A.mkv", "花".repeat(100));
        let long_b = format!("{}B.mkv", "花".repeat(100));
        let mut v = vec![e(&long_a, false), e(&long_b, false), e(&long_a, false)];
        make_showable(&mut v);
        for x in &v {
            assert!(x.name.len() <= MAX_NAME, "{} bytes", x.name.len());
            assert!(x.name.ends_with(".mkv"), "{}", x.name);
        }
        assert_ne!(v[0].name, v[1].name);
        assert_ne!(v[0].name, v[2].name);
        let mut again = vec![e(&long_a, false)];
        make_showable(&mut again);
        assert_eq!(again[0].name, v[0].name, "stable across listings");
    }
}
