//! One folder's entries as a provider pages them, with the bounds every driver keeps.
//!
//! A provider decides how many pages a listing has, so a broken or hostile one could page
//! forever or send a folder too large to hold. Whatever it sends, a listing holds at most
//! [`MAX_ENTRIES`] entries and takes at most [`MAX_PAGES`] requests; past either bound it
//! fails with an error that says which (the folder answers `EIO` and the log says why), rather
//! than loop, grow without bound, or show a folder silently cut short. A million entries of a
//! few hundred bytes each keep a listing under about 500 MB at its peak; a real folder that
//! large is beyond what a file browser or a media server can use through a mount anyway.
//!
//! An entry whose id was already listed (offset paging shifts when a folder changes while it is
//! listed, or a server repeats a page) is the same file: it is kept once, not shown twice.

use std::collections::HashSet;

use crate::error::{Error, Result};

/// The most entries one folder listing may hold.
pub const MAX_ENTRIES: usize = 1_000_000;
/// The most pages one folder listing may take (100 entries a page reach [`MAX_ENTRIES`]).
pub const MAX_PAGES: usize = 10_000;

pub struct Pages<T> {
    folder: String,
    seen: HashSet<String>,
    items: Vec<T>,
    pages: usize,
}

impl<T> Pages<T> {
    /// `folder` names the folder in errors (its id).
    pub fn new(folder: &str) -> Self {
        Pages { folder: folder.to_string(), seen: HashSet::new(), items: Vec::new(), pages: 0 }
    }

    /// Add one page; returns how many of its entries were not listed before.
    pub fn add(&mut self, page: impl IntoIterator<Item = T>, id: impl Fn(&T) -> &str) -> Result<usize> {
        self.pages += 1;
        if self.pages > MAX_PAGES {
            return Err(Error::Remote(format!(
                "the listing of folder {:?} did not end after {MAX_PAGES} pages ({} entries): giving up",
                self.folder,
                self.items.len()
            )));
        }
        let before = self.items.len();
        for item in page {
            if self.seen.insert(id(&item).to_string()) {
                self.items.push(item);
            }
            if self.items.len() > MAX_ENTRIES {
                return Err(Error::Remote(format!(
                    "folder {:?} has more than {MAX_ENTRIES} entries, more than panmount lists in one folder",
                    self.folder
                )));
            }
        }
        Ok(self.items.len() - before)
    }

    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| i.to_string()).collect()
    }

    #[test]
    fn repeated_ids_are_kept_once() {
        let mut p = Pages::new("F");
        assert_eq!(p.add(ids(0..3), |s| s).unwrap(), 3);
        assert_eq!(p.add(ids(2..5), |s| s).unwrap(), 2);
        assert_eq!(p.add(ids(0..5), |s| s).unwrap(), 0);
        assert_eq!(p.into_items(), ids(0..5));
    }

    #[test]
    fn endless_pages_end_with_an_error() {
        let mut p = Pages::new("F");
        let mut n = 0;
        let err = loop {
            match p.add([n.to_string()], |s| s) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(n, MAX_PAGES);
        assert!(err.to_string().contains("did not end after 10000 pages (10000 entries)"), "{err}");
    }

    #[test]
    fn a_million_and_one_entries_end_with_an_error() {
        let mut p = Pages::new("F");
        let err = loop {
            let start = p.items.len();
            if let Err(e) = p.add((start..start + 100_000).map(|i| i.to_string()), |s| s) {
                break e;
            }
        };
        assert!(err.to_string().contains("more than 1000000 entries"), "{err}");
        assert_eq!(p.items.len(), MAX_ENTRIES + 1);
    }
}
