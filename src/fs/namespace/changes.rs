//! Which folders changed on the provider, told to whoever listens ([`FolderChanged`]): media
//! servers see no inotify event for a file that appears in the cloud, so `crate::notify` asks
//! them to rescan the folders named here.
//!
//! A folder changed when a listing fetched from the driver differs from the last one known for
//! it (in memory, else in the store, which SIGHUP and memory's bound do not empty; a first
//! listing is no change): that covers the foreground re-listings after `dir_cache_time`, the
//! background revalidation and `warm` walks. It also changed when a change made through the
//! mount lands on the provider (`Namespace::patch`: created, uploaded, renamed, removed). The
//! trait keeps the listeners (HTTP, processes) out of the core.
//!
//! A folder is named by its path in the mount. The inode table knows the paths the kernel has
//! looked up; the folders a background sweep or a walk lists were never looked up, so while
//! someone listens, each fetched listing also records its subfolders' paths (a string per
//! folder of the tree listed this run).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::Namespace;
use crate::cache::meta::{DirKey, Listing};
use crate::drivers::{Entry, EntryRef};

/// Told of each folder that changed. Called on the core's tasks: it must not block.
pub trait FolderChanged: Send + Sync {
    /// `mount_path`: the folder's path inside the mount, e.g. `/pikpak/Movies`.
    fn changed(&self, mount_path: &str);
}

#[derive(Default)]
pub(super) struct Changes {
    listener: OnceLock<Arc<dyn FolderChanged>>,
    /// Paths of folders listed this run, by folder (the storages' roots to start with).
    paths: Mutex<HashMap<DirKey, String>>,
}

/// Whether `new` holds other entries than `old` (the order does not matter; the caller has
/// seen they are not the same in the same order).
pub(super) fn differs(old: &Listing, new: &[Entry]) -> bool {
    let by_id: HashMap<&str, EntryRef<'_>> = old.iter().map(|e| (e.id, e)).collect();
    old.len() != new.len() || new.iter().any(|e| by_id.get(e.id.as_str()) != Some(&e.view()))
}

/// `name` in the folder at `parent`.
fn join(parent: &str, name: &str) -> String {
    format!("{}/{name}", parent.trim_end_matches('/'))
}

impl Namespace {
    /// Tell `listener` of every folder that changes from now on (once per mount).
    pub fn set_folder_changed(&self, listener: Arc<dyn FolderChanged>) {
        let mut paths = self.changes.paths.lock().unwrap();
        for (i, s) in self.storages.iter().enumerate() {
            paths.insert((i, s.driver.root().id), s.path.clone());
        }
        drop(paths);
        let _ = self.changes.listener.set(listener);
    }

    /// The folder `dir_id` of `storage` changed on the provider: tell the listener its paths.
    pub(super) fn folder_changed(&self, storage: usize, dir_id: &str) {
        let Some(listener) = self.changes.listener.get() else { return };
        let mut paths: Vec<String> = {
            let inodes = self.inodes.lock().unwrap();
            inodes.folders(storage, dir_id).into_iter().map(|ino| inodes.path(ino)).collect()
        };
        if paths.is_empty() {
            paths.extend(self.changes.paths.lock().unwrap().get(&(storage, dir_id.to_string())).cloned());
        }
        if paths.is_empty() {
            tracing::debug!(storage = %self.storages[storage].path, id = dir_id, "a folder of unknown path changed");
        }
        for path in paths {
            listener.changed(&path);
        }
    }

    /// Remember the paths of the subfolders of `dir_id` (when its own path is known), while
    /// someone listens.
    pub(super) fn learn_paths(&self, storage: usize, dir_id: &str, listing: &Listing) {
        if self.changes.listener.get().is_none() {
            return;
        }
        let key = (storage, dir_id.to_string());
        let learned = self.changes.paths.lock().unwrap().get(&key).cloned();
        let parent = learned.or_else(|| {
            let inodes = self.inodes.lock().unwrap();
            inodes.folders(storage, dir_id).first().map(|&ino| inodes.path(ino))
        });
        let Some(parent) = parent else { return };
        let mut paths = self.changes.paths.lock().unwrap();
        for (name, entry) in listing.iter_shown().filter(|(_, e)| e.is_dir) {
            paths.insert((storage, entry.id.to_string()), join(&parent, name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn entry(id: &str, version: &str) -> Entry {
        Entry {
            id: id.into(),
            name: id.into(),
            is_dir: false,
            size: Some(1),
            mtime: UNIX_EPOCH,
            version: version.into(),
        }
    }

    #[test]
    fn a_listing_differs_by_its_entries_not_their_order() {
        let old = Listing::new(vec![entry("a", "1"), entry("b", "1")]);
        assert!(!differs(&old, &[entry("a", "1"), entry("b", "1")]));
        assert!(!differs(&old, &[entry("b", "1"), entry("a", "1")]));
        assert!(differs(&old, &[entry("a", "1"), entry("b", "2")]));
        assert!(differs(&old, &[entry("a", "1")]));
        assert!(differs(&old, &[entry("a", "1"), entry("b", "1"), entry("c", "1")]));
        assert!(differs(&old, &[entry("a", "1"), entry("c", "1")]));
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/a", "x"), "/a/x");
    }
}
