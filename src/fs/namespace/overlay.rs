//! Pending files over the cached listings: a file being written or waiting for its upload is
//! listed at once, with its staged size, under its name, hiding what the provider holds under
//! that name (the file it will replace), until its upload lands and the provider's entry takes
//! its place (`Namespace::landed`).
//!
//! Folders without pending files pay nothing: their listing is served as it is. A folder with
//! some gets a merged listing, built again only when its pending files or its listing change.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::cache::meta::{DirKey, Listing};
use crate::write::Upload;

#[derive(Default)]
pub struct Overlay {
    dirs: Mutex<HashMap<DirKey, PendingDir>>,
}

#[derive(Default)]
struct PendingDir {
    /// By the provider's name.
    files: BTreeMap<String, Arc<Upload>>,
    /// The last merge: the listing it was made from, and the result.
    merged: Option<(Arc<Listing>, Arc<Listing>)>,
}

impl Overlay {
    /// Show `upload` in `dir` under its record's name (replacing a pending file of that name).
    pub fn add(&self, dir: DirKey, upload: Arc<Upload>) {
        let mut dirs = self.dirs.lock().unwrap();
        let pending = dirs.entry(dir).or_default();
        pending.files.insert(upload.record().name, upload);
        pending.merged = None;
    }

    /// Stop showing the upload `id` under `name` in `dir` (a pending file of that name that
    /// is another upload stays).
    pub fn remove(&self, dir: &DirKey, name: &str, id: &str) {
        let mut dirs = self.dirs.lock().unwrap();
        let Some(pending) = dirs.get_mut(dir) else { return };
        if pending.files.get(name).is_some_and(|u| u.id == id) {
            pending.files.remove(name);
            pending.merged = None;
        }
        if pending.files.is_empty() {
            dirs.remove(dir);
        }
    }

    /// `listing` with the pending files of `dir` over it.
    pub fn merge(&self, dir: &DirKey, listing: Arc<Listing>) -> Arc<Listing> {
        let mut dirs = self.dirs.lock().unwrap();
        let Some(pending) = dirs.get_mut(dir) else { return listing };
        if let Some((base, merged)) = &pending.merged
            && Arc::ptr_eq(base, &listing)
        {
            return merged.clone();
        }
        let mut entries: Vec<_> =
            listing.iter().filter(|e| !pending.files.contains_key(e.name)).map(|e| e.to_entry()).collect();
        entries.extend(pending.files.values().map(|u| u.entry()));
        let merged = Arc::new(Listing::new(entries));
        pending.merged = Some((listing, merged.clone()));
        merged
    }
}
