//! What the write path needs of the namespace: the folder a name is created in, the entry a
//! name stands for now (pending files included), pending files shown and hidden, listings
//! patched as changes land (rather than listed again), inodes moved by a rename, and the
//! kernel told when an upload lands.

use std::sync::Arc;

use super::inode::{Kind, RemoteEntry};
use super::{Namespace, ROOT};
use crate::cache::meta::Listing;
use crate::drivers::Entry;
use crate::error::{Error, Result};
use crate::write::{Landing, Record, Upload, Writes};

/// A remote folder something is written in.
#[derive(Debug, Clone)]
pub struct Folder {
    pub ino: u64,
    pub storage: usize,
    pub entry: Entry,
    /// Its path in the mount, for the journal and the log.
    pub path: String,
}

impl Namespace {
    /// Writes go through `writes` from now on; what an earlier run left pending is shown.
    pub fn set_writes(&self, writes: Arc<Writes>, replayed: &[Arc<Upload>]) {
        for upload in replayed {
            let record = upload.record();
            self.overlay.add((upload.storage, record.parent_id.clone()), upload.clone());
        }
        let _ = self.writes.set(writes);
    }

    /// The write path, or `EROFS` when no storage of the mount takes writes.
    pub fn writes(&self) -> Result<&Arc<Writes>> {
        self.writes.get().ok_or(Error::ReadOnly)
    }

    /// The remote folder `ino`. A virtual folder (the mount's root, the folders above a
    /// storage) holds nothing that can be written: `EROFS`.
    pub fn folder(&self, ino: u64) -> Result<Folder> {
        let inodes = self.inodes.lock().unwrap();
        let node = inodes.get(ino)?;
        match &node.kind {
            Kind::Remote { storage, entry } if entry.view().is_dir => {
                Ok(Folder { ino, storage: *storage, entry: entry.view().to_entry(), path: inodes.path(ino) })
            }
            Kind::Remote { .. } => Err(Error::NotDir),
            Kind::Virtual { .. } | Kind::Stats => Err(Error::ReadOnly),
        }
    }

    /// Where `ino` is: its folder, the name it is shown under, and its entry.
    pub fn located(&self, ino: u64) -> Result<(Folder, String, Entry)> {
        let (parent, name, entry) = {
            let inodes = self.inodes.lock().unwrap();
            let node = inodes.get(ino)?;
            match &node.kind {
                Kind::Remote { entry, .. } if ino != ROOT => {
                    (node.parent, node.name().to_string(), entry.view().to_entry())
                }
                _ => return Err(Error::ReadOnly),
            }
        };
        Ok((self.folder(parent)?, name, entry))
    }

    /// What `name` (as shown) in `folder` is now, pending files included.
    pub async fn child(&self, folder: &Folder, name: &str) -> Result<Option<Entry>> {
        let (children, _) = self.list(folder.storage, &folder.entry).await?;
        Ok(children.named(name).map(|e| e.to_entry()))
    }

    /// The provider's entry named `remote_name` in `folder`, under any pending file.
    pub async fn remote_child(&self, folder: &Folder, remote_name: &str) -> Result<Option<Entry>> {
        let (children, _) = self.list_remote(folder.storage, &folder.entry).await?;
        Ok(children.iter().find(|e| e.name == remote_name).map(|e| e.to_entry()))
    }

    /// Whether `dir` (of `storage`) holds anything, pending files included.
    pub async fn has_children(&self, storage: usize, dir: &Entry) -> Result<bool> {
        Ok(!self.list(storage, dir).await?.0.is_empty())
    }

    /// Show `upload` in `folder` under its record's name. An inode the kernel holds for that
    /// name shows it at once: the kernel opens a name it looked up before without asking
    /// again, and must not open the provider's older file (its blocks just fetched to stage a
    /// rewrite) while the new one is pending.
    pub fn show_pending(&self, folder: &Folder, shown: &str, upload: &Arc<Upload>) {
        let key = (folder.storage, folder.entry.id.clone());
        self.meta.forget_negative(&key, shown);
        self.overlay.add(key, upload.clone());
        let kind = Kind::Remote { storage: folder.storage, entry: RemoteEntry::own(shown, upload.entry()) };
        let mut inodes = self.inodes.lock().unwrap();
        for parent in inodes.folders(folder.storage, &folder.entry.id) {
            if inodes.child(parent, shown).is_some() {
                inodes.upsert(parent, shown, kind.clone());
            }
        }
    }

    /// Stop showing `upload` under the name `name` (the provider's) in the folder `dir_id`.
    pub fn hide_pending(&self, storage: usize, dir_id: &str, name: &str, upload: &str) {
        self.overlay.remove(&(storage, dir_id.to_string()), name, upload);
    }

    /// A pending file that will not be uploaded (`ENOSPC`) is dropped: hidden, and an inode the
    /// kernel holds for its name shows what the provider has under it again (the file the
    /// rewrite was to replace), while the kernel forgets the attributes it had (the pending
    /// file's size).
    pub fn drop_pending(&self, storage: usize, dir_id: &str, name: &str, upload: &str) {
        let key = (storage, dir_id.to_string());
        self.overlay.remove(&key, name, upload);
        let shown = crate::names::escape(name);
        let listing = self.meta.last_dir(&key);
        let remote = listing.as_ref().and_then(|l| Some((l, l.position(&shown)?)));
        let mut notices = Vec::new();
        {
            let mut inodes = self.inodes.lock().unwrap();
            for parent in inodes.folders(storage, dir_id) {
                let Some(ino) = inodes.child(parent, &shown) else { continue };
                if let Some((listing, index)) = remote {
                    let entry = RemoteEntry::at(listing, index, listing.at(index).to_entry());
                    inodes.upsert(parent, &shown, Kind::Remote { storage, entry });
                }
                notices.push(ino);
            }
        }
        self.invalidate_inodes(notices);
    }

    /// Change the cached listing of `dir_id` (when there is one) as the provider just did,
    /// instead of listing it again; the folder changed (`super::changes`).
    pub fn patch(&self, storage: usize, dir_id: &str, change: impl FnOnce(&mut Vec<Entry>)) {
        self.folder_changed(storage, dir_id);
        let key = (storage, dir_id.to_string());
        let Some(old) = self.meta.last_dir(&key) else { return };
        let mut entries = old.to_vec();
        change(&mut entries);
        let listing = Arc::new(Listing::new(entries));
        self.meta.put_dir(key, listing.clone());
        if let Some(store) = &self.store {
            store.put(storage, dir_id, listing);
        }
    }

    /// The kernel renamed `name` in `parent` to `new_name` in `new_parent`.
    pub fn moved(&self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        self.inodes.lock().unwrap().rename(parent, name, new_parent, new_name);
    }

    /// A folder was removed: forget its listing.
    pub fn forget_dir(&self, storage: usize, dir_id: &str) {
        self.meta.remove_dir(&(storage, dir_id.to_string()));
    }
}

impl Landing for Namespace {
    fn landed(&self, upload: &Upload, record: &Record, entry: &Entry) {
        let storage = upload.storage;
        self.patch(storage, &record.parent_id, |entries| {
            entries.retain(|e| e.id != entry.id && (e.name != entry.name || e.is_dir));
            entries.push(entry.clone());
        });
        self.overlay.remove(&(storage, record.parent_id.clone()), &record.name, &upload.id);
        tracing::debug!(name = %record.name, parent = %record.parent_id, id = %entry.id, "landed: the provider's entry replaces the pending one");
        if let (Some(ns), Some(writes)) = (record.mtime_ns, self.writes.get()) {
            writes.times.set(entry, std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns));
        }
        // The inode that showed the pending file now shows the provider's entry (same number).
        let mut notices = Vec::new();
        {
            let mut inodes = self.inodes.lock().unwrap();
            for parent in inodes.folders(storage, &record.parent_id) {
                let shown = crate::names::escape(&entry.name);
                if let Some(ino) = inodes.child(parent, &shown) {
                    inodes.upsert(
                        parent,
                        &shown,
                        Kind::Remote { storage, entry: RemoteEntry::own(&shown, entry.clone()) },
                    );
                    notices.push(ino);
                }
            }
        }
        self.invalidate_inodes(notices);
    }
}
