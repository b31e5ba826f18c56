//! The namespace: what names exist and what they are. Inodes, listings (memory cache, store,
//! driver), negative lookups, sizes learned from the server, background revalidation and warm
//! walks. It answers `lookup`, `getattr`, `opendir`/`readdir`, `resolve`, and says what an
//! `open` opens; it holds no handle and reads no byte of a file.
//!
//! Kept apart from the open files (`super::open`) so each can grow on its own: the write path
//! adds an overlay of pending changes here, and writers there. Where the two meet, what passes
//! is explicit: an `open` gets an entry with its size ([`Openable`]), and size probes get the
//! link cache they share with the readers at construction.

mod changes;
mod dir;
pub mod inode;
mod listing;
mod mutate;
mod overlay;
pub mod revalidate;
pub mod warm;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;

use super::{Attr, FsConfig, Lookup, Owner, Storage};
use crate::cache::link::LinkCache;
use crate::cache::meta::{DirKey, MetaCache};
use crate::cache::store::MetaStore;
use crate::cache::{FileKey, KeyedLock};
use crate::drivers::{Entry, EntryRef};
use crate::error::{Error, Result};
pub use changes::FolderChanged;
pub use dir::{DirSlot, DirSnapshot};
use inode::{InodeTable, Kind, ROOT, RemoteEntry};
pub use mutate::Folder;

/// Virtual folders never change while mounted: the kernel may trust them for a long time.
const VIRTUAL_TTL: Duration = Duration::from_secs(24 * 3600);
/// Never tell the kernel 0 (it would ask again for every `stat`).
pub(super) const MIN_TTL: Duration = Duration::from_secs(1);
/// Size probes (files listed without a size) in flight at once, across the mount.
const SIZE_PROBES: usize = 8;

/// What an `open` of an inode opens.
pub enum Openable {
    /// The telemetry file.
    Stats,
    /// A remote file, its size known; `keep_cache` when its version is the one the kernel may
    /// still hold pages of.
    File { storage: usize, entry: Entry, size: u64, keep_cache: bool },
}

pub struct Namespace {
    storages: Vec<Arc<Storage>>,
    inodes: Mutex<InodeTable>,
    meta: MetaCache,
    listing: KeyedLock<DirKey>,
    sizing: KeyedLock<FileKey>,
    size_probes: tokio::sync::Semaphore,
    /// Shared with the readers: a size probe mints the same link a read would.
    links: Arc<LinkCache>,
    /// Per folder inode, the digest of the listing the kernel last opened (see `opendir`).
    dir_digests: Mutex<HashMap<u64, u64>>,
    background: revalidate::Background,
    /// Who is told which folders changed (`changes`).
    changes: changes::Changes,
    owner: Owner,
    store: Option<Arc<MetaStore>>,
    /// Shown as the time of what has none (virtual folders, links without a time), not 1970.
    started: SystemTime,
    /// Pending files shown over the listings, and the write path they come from (set when
    /// some storage is writable).
    overlay: overlay::Overlay,
    writes: OnceLock<Arc<crate::write::Writes>>,
}

impl Namespace {
    pub fn new(storages: Vec<Arc<Storage>>, config: &FsConfig, links: Arc<LinkCache>) -> Self {
        let mut inodes = InodeTable::new();
        for (i, s) in storages.iter().enumerate() {
            inodes.add_storage(&s.path, i, s.driver.root());
        }
        Namespace {
            storages,
            inodes: Mutex::new(inodes),
            meta: MetaCache::new(config.dir_ttl, config.negative_ttl),
            listing: KeyedLock::default(),
            sizing: KeyedLock::default(),
            size_probes: tokio::sync::Semaphore::new(SIZE_PROBES),
            links,
            dir_digests: Mutex::default(),
            background: revalidate::Background::default(),
            changes: changes::Changes::default(),
            owner: config.owner,
            store: config.store.clone(),
            started: SystemTime::now(),
            overlay: overlay::Overlay::default(),
            writes: OnceLock::new(),
        }
    }

    /// List every reachable storage's root; the number of entries found.
    pub async fn warm_roots(&self) -> usize {
        let lists = self.storages.iter().enumerate().map(|(i, s)| async move {
            if s.down_reason().is_some() {
                return 0;
            }
            match self.list(i, &s.driver.root()).await {
                Ok((entries, _)) => entries.len(),
                Err(err) => {
                    tracing::warn!(storage = %s.path, error = %err, "cannot list the storage's root");
                    0
                }
            }
        });
        join_all(lists).await.into_iter().sum()
    }

    /// `name` in `parent`. The telemetry file is not looked up here (see `Fs::lookup`).
    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Lookup> {
        let node = self.inodes.lock().unwrap().get(parent)?.clone();
        match node.kind {
            Kind::Virtual { children } => match children.get(name) {
                Some(&ino) => {
                    let attr = self.known_attr(ino)?;
                    self.inodes.lock().unwrap().add_lookup(ino);
                    Ok(Lookup::Found { attr, ttl: VIRTUAL_TTL })
                }
                None => Ok(Lookup::Missing { ttl: VIRTUAL_TTL }),
            },
            Kind::Stats => Err(Error::NotDir),
            Kind::Remote { entry, .. } if !entry.view().is_dir => Err(Error::NotDir),
            Kind::Remote { storage, entry } => {
                let entry = entry.view().to_entry();
                let key = (storage, entry.id.clone());
                if let Some(ttl) = self.meta.negative(&key, name) {
                    return Ok(Lookup::Missing { ttl });
                }
                let (children, ttl) = self.list(storage, &entry).await?;
                let Some(index) = children.position(name) else {
                    self.meta.put_negative(key, name);
                    return Ok(Lookup::Missing { ttl: self.meta.negative_ttl() });
                };
                let child = self.with_size(storage, children.at(index).to_entry()).await?;
                let number = children.numbers(|n| self.inodes.lock().unwrap().reserve(n)) + index as u64;
                let mut inodes = self.inodes.lock().unwrap();
                let attr = |ino| self.remote_attr(ino, child.view());
                let kind = Kind::Remote { storage, entry: RemoteEntry::at(&children, index, child.clone()) };
                let ino = inodes.upsert_numbered(parent, name, kind, Some(number));
                inodes.add_lookup(ino);
                Ok(Lookup::Found { attr: attr(ino), ttl })
            }
        }
    }

    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.lock().unwrap().forget(ino, n);
    }

    /// Attributes, refreshed from the parent's listing once that listing has expired. The
    /// telemetry file's are not known here (see `Fs::getattr`).
    pub async fn getattr(&self, ino: u64) -> Result<(Attr, Duration)> {
        let node = self.inodes.lock().unwrap().get(ino)?.clone();
        let (storage, entry) = match &node.kind {
            Kind::Remote { storage, entry } => (storage, entry),
            Kind::Stats | Kind::Virtual { .. } => return Ok((self.known_attr(ino)?, VIRTUAL_TTL)),
        };
        let parent = self.inodes.lock().unwrap().get(node.parent).map(|p| p.kind.clone());
        let (entry, ttl) = match parent {
            Ok(Kind::Remote { storage: ps, entry: parent_entry }) if ino != ROOT && ps == *storage => {
                let (children, ttl) = self.list(*storage, &parent_entry.view().to_entry()).await?;
                let index = children.position(node.name()).ok_or(Error::NotFound)?;
                let fresh = self.with_size(*storage, children.at(index).to_entry()).await?;
                // Also when only the listing is new: an inode must not keep an old one alive.
                if fresh.view() != entry.view() || !entry.is_from(&children) {
                    let kind =
                        Kind::Remote { storage: *storage, entry: RemoteEntry::at(&children, index, fresh.clone()) };
                    self.inodes.lock().unwrap().upsert(node.parent, node.name(), kind);
                }
                (fresh, ttl)
            }
            // A storage root: its attributes are the driver's, and do not change.
            _ => (entry.view().to_entry(), VIRTUAL_TTL),
        };
        Ok((self.remote_attr(ino, entry.view()), ttl.max(MIN_TTL)))
    }

    /// What opening `ino` opens: the file's entry with its size made real.
    pub async fn openable(&self, ino: u64) -> Result<Openable> {
        let node = self.inodes.lock().unwrap().get(ino)?.clone();
        let (storage, entry) = match node.kind {
            Kind::Remote { storage, entry } => (storage, entry.view().to_entry()),
            Kind::Stats => return Ok(Openable::Stats),
            Kind::Virtual { .. } => return Err(Error::IsDir),
        };
        if entry.is_dir {
            return Err(Error::IsDir);
        }
        self.storages[storage].ensure_up().await?;
        let entry = self.with_size(storage, entry).await?;
        let size = entry.size.expect("with_size sets the size");
        let keep_cache = self.inodes.lock().unwrap().swap_cached_version(ino, &entry.version);
        Ok(Openable::File { storage, entry, size, keep_cache })
    }

    /// Inodes the table holds.
    pub fn inode_count(&self) -> usize {
        self.inodes.lock().unwrap().len()
    }

    /// Forget cached listings, restored ones included (see `Fs::drop_dir_caches`).
    pub fn drop_dir_caches(&self) {
        self.meta.clear();
        self.dir_digests.lock().unwrap().clear();
        if let Some(store) = &self.store {
            store.forget_restored();
        }
    }

    /// The telemetry file's attributes, for a report of `len` bytes.
    pub fn stats_attr(&self, len: usize) -> Attr {
        let mut attr = self.owner.attr(inode::STATS, false, len as u64, SystemTime::now());
        attr.perm &= 0o444;
        attr
    }

    fn remote_attr(&self, ino: u64, entry: EntryRef<'_>) -> Attr {
        let mut mtime = if entry.mtime == SystemTime::UNIX_EPOCH { self.started } else { entry.mtime };
        let mut size = entry.size.unwrap_or(0);
        if let Some(writes) = self.writes.get() {
            // A pending file grows while it is written; a time set by `utimens` wins.
            if let Some(upload) = crate::write::upload_of(entry.id).and_then(|id| writes.get(id)) {
                size = upload.staging.size();
            }
            mtime = writes.times.get(entry).unwrap_or(mtime);
        }
        self.owner.attr(ino, entry.is_dir, size, mtime)
    }

    /// Attributes from what the table holds, without asking anyone. The telemetry file is in
    /// no folder, so only `Fs` asks for its attributes, with its report's length.
    fn known_attr(&self, ino: u64) -> Result<Attr> {
        let inodes = self.inodes.lock().unwrap();
        let node = inodes.get(ino)?;
        Ok(match &node.kind {
            Kind::Virtual { .. } => self.owner.attr(ino, true, 0, self.started),
            Kind::Remote { entry, .. } => self.remote_attr(ino, entry.view()),
            Kind::Stats => self.stats_attr(0),
        })
    }
}
