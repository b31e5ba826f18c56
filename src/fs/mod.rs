//! The filesystem core: inodes, handles, caches and the read path, behind async methods that
//! return plain structs and [`Error`]. It never sees fuser; the adapter in `crate::fuse` (and
//! the `ls`/`cat` commands, which use this core without FUSE) call it.

pub mod attr;
mod files;
pub mod handles;
pub mod inode;
mod listing;
pub mod revalidate;
pub mod warm;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;

use crate::cache::blocks::BlockCache;
use crate::cache::disk::DiskCache;
use crate::cache::link::LinkCache;
use crate::cache::meta::{DirKey, MetaCache};
use crate::cache::store::MetaStore;
use crate::cache::{FileKey, KeyedLock};
use crate::drivers::Entry;
use crate::error::{Error, Result};
use crate::read::Reader;
use crate::read::connections::ConnectionLimit;
use crate::read::window::WindowConfig;
use crate::stats::STATS_FILE;
pub use crate::storage::Storage;
pub use attr::{Attr, Owner};
use handles::{DirSlot, DirSnapshot, Handle, Handles};
use inode::{InodeTable, Kind, ROOT};
pub use revalidate::Invalidate;

/// Virtual folders never change while mounted: the kernel may trust them for a long time.
const VIRTUAL_TTL: Duration = Duration::from_secs(24 * 3600);
/// Never tell the kernel 0 (it would ask again for every `stat`).
const MIN_TTL: Duration = Duration::from_secs(1);
/// Size probes (files listed without a size) in flight at once, across the mount.
const SIZE_PROBES: usize = 8;
/// Entries `readdir` prepares at a time: about what one reply of the kernel's holds (4 KiB of
/// readdirplus entries is 20-25), with room for bigger buffers.
const READDIR_BATCH: usize = 64;

#[derive(Debug, Clone)]
pub struct FsConfig {
    pub owner: Owner,
    pub dir_ttl: Duration,
    pub negative_ttl: Duration,
    pub link_margin: Duration,
    pub block_size: u64,
    pub memory_limit: usize,
    pub window: WindowConfig,
    /// Parallel ranged requests per open file; 0 keeps each driver's own limit.
    pub connections_per_file: usize,
    /// The disk cache, when `[cache] dir` is set.
    pub disk: Option<Arc<DiskCache>>,
    /// Listings persisted across restarts, when there is a directory for them.
    pub store: Option<Arc<MetaStore>>,
}

pub enum Lookup {
    Found {
        attr: Attr,
        ttl: Duration,
    },
    /// The name does not exist; the kernel may remember that for `ttl`.
    Missing {
        ttl: Duration,
    },
}

/// One entry of a `readdir` reply.
pub struct DirItem<'a> {
    pub offset: u64,
    pub name: &'a str,
    pub attr: Attr,
    pub ttl: Duration,
}

pub struct Opened {
    pub fh: u64,
    /// Bypass the page cache (the telemetry file, whose size changes under the kernel).
    pub direct_io: bool,
    /// The kernel may keep pages it cached for this file: its version has not changed.
    pub keep_cache: bool,
}

pub struct StatFs {
    pub total: u64,
    pub used: u64,
    pub files: u64,
}

pub struct Fs {
    storages: Vec<Arc<Storage>>,
    inodes: Mutex<InodeTable>,
    meta: MetaCache,
    listing: KeyedLock<DirKey>,
    sizing: KeyedLock<FileKey>,
    size_probes: tokio::sync::Semaphore,
    links: Arc<LinkCache>,
    reader: Reader,
    /// One connection limit per file being read, shared by its handles.
    connections: Mutex<std::collections::HashMap<FileKey, std::sync::Weak<ConnectionLimit>>>,
    handles: Handles,
    /// Per folder inode, the digest of the listing the kernel last opened (see `opendir`).
    dir_digests: Mutex<std::collections::HashMap<u64, u64>>,
    background: revalidate::Background,
    config: FsConfig,
    /// Shown as the time of what has none (virtual folders, links without a time), not 1970.
    started: SystemTime,
}

/// Folders whose last listing digest is remembered; past this the memory is simply cleared
/// (the kernel then re-reads each folder once).
const MAX_DIR_DIGESTS: usize = 100_000;

/// An open folder.
#[derive(Debug)]
pub struct OpenedDir {
    pub fh: u64,
    /// The listing is what the kernel saw at the previous `opendir` of this folder.
    pub unchanged: bool,
}

impl Fs {
    pub fn new(storages: Vec<Storage>, config: FsConfig) -> Self {
        let mut inodes = InodeTable::new();
        let storages: Vec<Arc<Storage>> = storages.into_iter().map(Arc::new).collect();
        for (i, s) in storages.iter().enumerate() {
            inodes.add_storage(&s.path, i, s.driver.root());
        }
        Fs {
            inodes: Mutex::new(inodes),
            meta: MetaCache::new(config.dir_ttl, config.negative_ttl),
            listing: KeyedLock::default(),
            sizing: KeyedLock::default(),
            size_probes: tokio::sync::Semaphore::new(SIZE_PROBES),
            links: Arc::new(LinkCache::new(config.link_margin)),
            reader: Reader::new(BlockCache::new(config.memory_limit, config.block_size as usize), config.window),
            connections: Mutex::default(),
            handles: Handles::default(),
            dir_digests: Mutex::default(),
            background: revalidate::Background::default(),
            storages,
            config,
            started: SystemTime::now(),
        }
    }

    pub fn storages(&self) -> &[Arc<Storage>] {
        &self.storages
    }

    /// Log in to every storage, concurrently; failures are recorded (and logged) per storage.
    pub async fn login_all(&self) -> Vec<Result<()>> {
        join_all(self.storages.iter().map(|s| s.login())).await
    }

    /// List every reachable storage's root (so the first `ls` after mounting is instant, and
    /// so readiness means something); the number of entries found.
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

    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Lookup> {
        if parent == ROOT && name == STATS_FILE {
            return Ok(Lookup::Found { attr: self.stats_attr(), ttl: MIN_TTL });
        }
        let node = self.inodes.lock().unwrap().get(parent)?.clone();
        match node.kind {
            Kind::Virtual { children } => match children.get(name) {
                Some(&ino) => {
                    let attr = self.getattr_virtual(ino)?;
                    self.inodes.lock().unwrap().add_lookup(ino);
                    Ok(Lookup::Found { attr, ttl: VIRTUAL_TTL })
                }
                None => Ok(Lookup::Missing { ttl: VIRTUAL_TTL }),
            },
            Kind::Stats => Err(Error::NotDir),
            Kind::Remote { entry, .. } if !entry.is_dir => Err(Error::NotDir),
            Kind::Remote { storage, entry } => {
                let key = (storage, entry.id.clone());
                if let Some(ttl) = self.meta.negative(&key, name) {
                    return Ok(Lookup::Missing { ttl });
                }
                let (children, ttl) = self.list(storage, &entry).await?;
                let Some(index) = children.position(name) else {
                    self.meta.put_negative(key, name);
                    return Ok(Lookup::Missing { ttl: self.meta.negative_ttl() });
                };
                let child = self.with_size(storage, children[index].clone()).await?;
                let number = children.numbers(|n| self.inodes.lock().unwrap().reserve(n)) + index as u64;
                let mut inodes = self.inodes.lock().unwrap();
                let kind = Kind::Remote { storage, entry: child.clone() };
                let ino = inodes.upsert_numbered(parent, name, kind, Some(number));
                inodes.add_lookup(ino);
                Ok(Lookup::Found { attr: self.remote_attr(ino, &child), ttl })
            }
        }
    }

    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.lock().unwrap().forget(ino, n);
    }

    /// Attributes, refreshed from the parent's listing once that listing has expired.
    pub async fn getattr(&self, ino: u64) -> Result<(Attr, Duration)> {
        let node = self.inodes.lock().unwrap().get(ino)?.clone();
        let (storage, entry) = match &node.kind {
            Kind::Remote { storage, entry } => (storage, entry),
            Kind::Stats => return Ok((self.stats_attr(), MIN_TTL)),
            Kind::Virtual { .. } => return Ok((self.getattr_virtual(ino)?, VIRTUAL_TTL)),
        };
        let parent = self.inodes.lock().unwrap().get(node.parent).map(|p| p.kind.clone());
        let (entry, ttl) = match parent {
            Ok(Kind::Remote { storage: ps, entry: parent_entry }) if ino != ROOT && ps == *storage => {
                let (children, ttl) = self.list(*storage, &parent_entry).await?;
                let fresh = children.named(&node.name).ok_or(Error::NotFound)?;
                let fresh = self.with_size(*storage, fresh.clone()).await?;
                if fresh != *entry {
                    self.inodes.lock().unwrap().upsert(
                        node.parent,
                        &node.name,
                        Kind::Remote { storage: *storage, entry: fresh.clone() },
                    );
                }
                (fresh, ttl)
            }
            // A storage root: its attributes are the driver's, and do not change.
            _ => (entry.clone(), VIRTUAL_TTL),
        };
        Ok((self.remote_attr(ino, &entry), ttl.max(MIN_TTL)))
    }

    /// Open a folder: a handle on a snapshot of its listing, and whether the listing is the
    /// one the kernel saw at the previous `opendir` (then its cached copy is still right).
    pub async fn opendir(&self, ino: u64) -> Result<OpenedDir> {
        let node = self.inodes.lock().unwrap().get(ino)?.clone();
        let mut fixed = vec![(".".to_string(), ino), ("..".to_string(), node.parent)];
        let remote = match node.kind {
            Kind::Virtual { children } => {
                fixed.extend(children);
                None
            }
            Kind::Remote { entry, .. } if !entry.is_dir => return Err(Error::NotDir),
            Kind::Stats => return Err(Error::NotDir),
            Kind::Remote { storage, entry } => Some(self.list(storage, &entry).await?.0),
        };
        let snapshot = DirSnapshot { fixed, remote };
        let digest = snapshot.digest();
        let unchanged = {
            let mut seen = self.dir_digests.lock().unwrap();
            if seen.len() >= MAX_DIR_DIGESTS {
                seen.clear();
            }
            seen.insert(ino, digest) == Some(digest)
        };
        Ok(OpenedDir { fh: self.handles.insert(Handle::Dir { ino, snapshot }), unchanged })
    }

    /// Hand the folder's entries from `offset` on to `fill` until it reports the reply buffer
    /// full. With `plus` (readdirplus) each accepted entry counts as a kernel lookup.
    ///
    /// Entries go out [`READDIR_BATCH`] at a time (unknown sizes in a batch are learned
    /// concurrently): a reply holds a few dozen entries, so each call costs what it sends, not
    /// what is left of the folder.
    pub async fn readdir(&self, fh: u64, offset: u64, plus: bool, mut fill: impl FnMut(DirItem) -> bool) -> Result<()> {
        let handle = self.handles.get(fh)?;
        let Handle::Dir { ino, snapshot } = &*handle else { return Err(Error::NotDir) };
        let storage = match &self.inodes.lock().unwrap().get(*ino)?.kind {
            Kind::Remote { storage, .. } => Some(*storage),
            Kind::Virtual { .. } | Kind::Stats => None,
        };
        let fixed = snapshot.fixed.len();
        let base = snapshot.remote.as_ref().map(|l| l.numbers(|n| self.inodes.lock().unwrap().reserve(n)));
        let number = |i: usize| base.map(|b| b + (i - fixed) as u64);
        let mut start = offset as usize;
        while start < snapshot.len() {
            let end = (start + READDIR_BATCH).min(snapshot.len());
            // Sizes must be real before the kernel sees them: learn the unknown ones, concurrently.
            let sized: Vec<Option<Result<Entry>>> = join_all((start..end).map(|i| async move {
                match (snapshot.get(i), storage) {
                    (Some(DirSlot::Remote(e)), Some(s)) if plus && e.size.is_none() => {
                        Some(self.with_size(s, e.clone()).await)
                    }
                    _ => None,
                }
            }))
            .await;
            for (i, sized) in (start..end).zip(sized) {
                let Some(slot) = snapshot.get(i) else { break };
                let (name, attr, ttl) = match (slot, sized) {
                    (DirSlot::Fixed(name, target), _) => (name, self.getattr_virtual_or_remote(target)?, VIRTUAL_TTL),
                    (DirSlot::Remote(e), Some(Err(err))) => {
                        tracing::warn!(name = %e.name, error = %err, "could not learn the size; entry hidden");
                        continue;
                    }
                    // Plain readdir: a number and a type are all the kernel takes.
                    (DirSlot::Remote(e), None) if !plus => {
                        let known = self.inodes.lock().unwrap().child(*ino, &e.name);
                        let child = known.or(number(i)).expect("a remote folder's entry");
                        (e.name.as_str(), self.remote_attr(child, e), self.config.dir_ttl)
                    }
                    (DirSlot::Remote(e), sized) => {
                        let entry = match sized {
                            Some(Ok(sized)) => sized,
                            _ => e.clone(),
                        };
                        let attr = self.remote_attr(0, &entry);
                        let kind = Kind::Remote { storage: storage.expect("remote child of a remote folder"), entry };
                        let child = self.inodes.lock().unwrap().upsert_numbered(*ino, &e.name, kind, number(i));
                        (e.name.as_str(), Attr { ino: child, ..attr }, self.config.dir_ttl)
                    }
                };
                let item = DirItem { offset: i as u64 + 1, name, attr, ttl };
                if fill(item) {
                    return Ok(());
                }
                if plus && i >= 2 {
                    self.inodes.lock().unwrap().add_lookup(attr.ino);
                }
            }
            start = end;
        }
        Ok(())
    }

    pub fn releasedir(&self, fh: u64) {
        self.handles.remove(fh);
    }

    /// Space across the storages that report a quota (cached: see [`Storage::quota`]).
    pub async fn statfs(&self) -> StatFs {
        let quotas = join_all(self.storages.iter().map(|s| s.quota())).await;
        let (total, used) = quotas.into_iter().flatten().fold((0, 0), |(t, u), q| (t + q.total, u + q.used));
        StatFs { total, used: used.min(total), files: self.inodes.lock().unwrap().len() as u64 }
    }

    /// Walk an absolute path from the root (for `ls` and `cat` without FUSE).
    pub async fn resolve(&self, path: &str) -> Result<u64> {
        let mut ino = ROOT;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = match self.lookup(ino, part).await? {
                Lookup::Found { attr, .. } => attr.ino,
                Lookup::Missing { .. } => return Err(Error::NotFound),
            };
        }
        Ok(ino)
    }

    /// The telemetry report: a line per storage, and the block cache's use of its budget.
    pub fn stats_report(&self) -> String {
        let mut out = String::new();
        for s in &self.storages {
            out.push_str(&s.stats.line(&s.path));
            out.push('\n');
        }
        let (used, in_flight) = self.reader.cache_usage();
        out.push_str(&format!(
            "block_cache used_bytes={used} in_flight_bytes={in_flight} budget_bytes={} open_handles={} inodes={}\n",
            self.config.memory_limit,
            self.handles.len(),
            self.inodes.lock().unwrap().len(),
        ));
        if let Some(disk) = &self.config.disk {
            out.push_str(&format!("disk_cache stored_bytes={}\n", disk.stored_bytes()));
        }
        out
    }

    /// Forget cached listings, restored ones included (SIGHUP): the next lookups ask the
    /// drivers again, as soon as the kernel's own entry TTLs (at most `dir_cache_time`) run out.
    pub fn drop_dir_caches(&self) {
        self.meta.clear();
        self.dir_digests.lock().unwrap().clear();
        if let Some(store) = &self.config.store {
            store.forget_restored();
        }
    }

    /// Let the disk cache finish its writes and write its block maps, and write the listing
    /// store (when the mount or a command ends).
    pub async fn flush(&self) {
        if let Some(disk) = &self.config.disk {
            disk.settle().await;
        }
        if let Some(store) = self.config.store.clone() {
            let _ = tokio::task::spawn_blocking(move || store.flush()).await;
        }
    }

    fn stats_attr(&self) -> Attr {
        let mut attr = self.config.owner.attr(inode::STATS, false, self.stats_report().len() as u64, SystemTime::now());
        attr.perm &= 0o444;
        attr
    }

    fn remote_attr(&self, ino: u64, entry: &Entry) -> Attr {
        let mtime = if entry.mtime == SystemTime::UNIX_EPOCH { self.started } else { entry.mtime };
        self.config.owner.attr(ino, entry.is_dir, entry.size.unwrap_or(0), mtime)
    }

    fn getattr_virtual(&self, ino: u64) -> Result<Attr> {
        self.getattr_virtual_or_remote(ino)
    }

    /// Attributes from what the table holds, without asking anyone.
    fn getattr_virtual_or_remote(&self, ino: u64) -> Result<Attr> {
        let inodes = self.inodes.lock().unwrap();
        let node = inodes.get(ino)?;
        Ok(match &node.kind {
            Kind::Virtual { .. } => self.config.owner.attr(ino, true, 0, self.started),
            Kind::Remote { entry, .. } => self.remote_attr(ino, entry),
            Kind::Stats => self.stats_attr(),
        })
    }
}
