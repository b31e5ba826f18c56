//! The filesystem core, behind async methods that return plain structs and [`Error`]. It never
//! sees fuser; the adapter in `crate::fuse` (and the `ls`/`cat` commands, which use this core
//! without FUSE) call it.
//!
//! Two halves, each owning its state: the [`namespace`] (inodes, listings, names, sizes:
//! what exists) and the [`open`] files (handles, readers, links, connection limits: what is
//! being read). `Fs` holds the storages and the configuration, hands each call to its half, and
//! passes between them only what one needs of the other: an `open` asks the namespace for the
//! file's entry and size, then the open files make a handle of it.

pub mod attr;
mod copy;
pub mod namespace;
pub mod open;
mod write;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;

use crate::cache::disk::DiskCache;
use crate::cache::link::LinkCache;
use crate::cache::store::MetaStore;
use crate::error::{Error, Result};
use crate::read::window::WindowConfig;
use crate::stats::STATS_FILE;
pub use crate::storage::Storage;
pub use attr::{Attr, Owner};
pub use namespace::FolderChanged;
use namespace::inode::{ROOT, STATS};
pub use namespace::revalidate::Invalidate;
pub use namespace::warm::WalkCount;
use namespace::{MIN_TTL, Namespace, Openable};
use open::OpenFiles;
use open::handles::Handle;

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

/// An open folder.
#[derive(Debug)]
pub struct OpenedDir {
    pub fh: u64,
    /// The listing is what the kernel saw at the previous `opendir` of this folder.
    pub unchanged: bool,
}

pub struct Fs {
    storages: Vec<Arc<Storage>>,
    namespace: Arc<Namespace>,
    files: OpenFiles,
    config: FsConfig,
}

impl Fs {
    pub fn new(storages: Vec<Storage>, config: FsConfig) -> Self {
        let storages: Vec<Arc<Storage>> = storages.into_iter().map(Arc::new).collect();
        let links = Arc::new(LinkCache::new(config.link_margin));
        Fs {
            namespace: Arc::new(Namespace::new(storages.clone(), &config, links.clone())),
            files: OpenFiles::new(&config, links),
            storages,
            config,
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
        self.namespace.warm_roots().await
    }

    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Lookup> {
        if parent == ROOT && name == STATS_FILE {
            return Ok(Lookup::Found { attr: self.stats_attr(), ttl: MIN_TTL });
        }
        self.namespace.lookup(parent, name).await
    }

    pub fn forget(&self, ino: u64, n: u64) {
        self.namespace.forget(ino, n);
    }

    /// Attributes, refreshed from the parent's listing once that listing has expired.
    pub async fn getattr(&self, ino: u64) -> Result<(Attr, Duration)> {
        if ino == STATS {
            return Ok((self.stats_attr(), MIN_TTL));
        }
        self.namespace.getattr(ino).await
    }

    /// Open a file: for reading, or for writing (staged: `truncate` starts it empty, else its
    /// content is fetched first).
    pub async fn open(&self, ino: u64, write: bool, truncate: bool) -> Result<Opened> {
        if write {
            return self.open_for_write(ino, truncate).await;
        }
        match self.namespace.openable(ino).await? {
            Openable::Stats => {
                let fh = self.files.open_stats(bytes::Bytes::from(self.stats_report()));
                Ok(Opened { fh, direct_io: true, keep_cache: false })
            }
            Openable::File { entry, .. } if crate::write::upload_of(&entry.id).is_some() => {
                let id = crate::write::upload_of(&entry.id).unwrap_or_default();
                let upload = self.namespace.writes()?.get(id).ok_or(Error::NotFound)?;
                Ok(Opened { fh: self.files.open_staged(upload, false), direct_io: false, keep_cache: false })
            }
            Openable::File { storage, entry, size, keep_cache } => {
                let fh = self.files.open_file(storage, &self.storages[storage], entry, size);
                Ok(Opened { fh, direct_io: false, keep_cache })
            }
        }
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<bytes::Bytes> {
        if let Ok(handle) = self.files.handle(fh)
            && let Handle::Staged { upload, .. } = &*handle
        {
            return self.read_staged(upload, offset, size).await;
        }
        self.files.read(fh, offset, size).await
    }

    /// Open a folder: a handle on a snapshot of its listing, and whether the listing is the
    /// one the kernel saw at the previous `opendir` (then its cached copy is still right).
    pub async fn opendir(&self, ino: u64) -> Result<OpenedDir> {
        let (snapshot, unchanged) = self.namespace.opendir(ino).await?;
        Ok(OpenedDir { fh: self.files.open_dir(ino, snapshot), unchanged })
    }

    /// Hand the folder's entries from `offset` on to `fill` until it reports the reply buffer
    /// full. With `plus` (readdirplus) each accepted entry counts as a kernel lookup.
    pub async fn readdir(&self, fh: u64, offset: u64, plus: bool, fill: impl FnMut(DirItem) -> bool) -> Result<()> {
        let handle = self.files.handle(fh)?;
        let Handle::Dir { ino, snapshot } = &*handle else { return Err(Error::NotDir) };
        self.namespace.readdir(*ino, snapshot, offset, plus, fill).await
    }

    pub fn releasedir(&self, fh: u64) {
        self.files.release(fh);
    }

    /// Uploads not landed yet (closed files waiting, running or failed).
    pub fn pending_uploads(&self) -> usize {
        self.namespace.writes().map(|w| w.pending().len()).unwrap_or(0)
    }

    /// Whether `ino` is in a storage that takes writes (for `access(W_OK)`).
    pub fn is_writable(&self, ino: u64) -> bool {
        let storage = match self.namespace.folder(ino) {
            Ok(folder) => folder.storage,
            Err(_) => match self.namespace.located(ino) {
                Ok((folder, ..)) => folder.storage,
                Err(_) => return false,
            },
        };
        self.namespace.writes().is_ok() && self.storages[storage].writer().is_ok()
    }

    /// Turn on writes for the storages that take them: their pending uploads (from the
    /// journal) are shown and resumed. Once per mount, on its runtime.
    pub fn start_writes(&self, writes: Arc<crate::write::Writes>) {
        let replayed = writes.replay();
        self.namespace.set_writes(writes.clone(), &replayed);
        writes.start(self.namespace.clone());
    }

    /// Space across the storages that report a quota (cached: see [`Storage::quota`]).
    pub async fn statfs(&self) -> StatFs {
        let quotas = join_all(self.storages.iter().map(|s| s.quota())).await;
        let (total, used) = quotas.into_iter().flatten().fold((0, 0), |(t, u), q| (t + q.total, u + q.used));
        StatFs { total, used: used.min(total), files: self.namespace.inode_count() as u64 }
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

    /// Where a walk of `path` (in the mount's namespace) starts: the folder itself, or the roots
    /// of the storages below a virtual folder.
    pub async fn walk_starts(&self, path: &str) -> Result<Vec<(usize, crate::drivers::Entry)>> {
        let ino = self.resolve(path).await?;
        self.namespace.walk_starts(ino, path)
    }

    /// List `dir` and every folder below it through the driver (`panmount warm`).
    pub async fn walk(&self, storage: usize, dir: crate::drivers::Entry, count: &WalkCount) -> Result<()> {
        self.namespace.walk(storage, dir, count).await
    }

    /// Serve stale restored listings from now on, revalidating them in the background, and
    /// write the store every few seconds. Once per mount, on its runtime.
    pub fn start_background(&self) {
        self.namespace.start_background();
        for s in &self.storages {
            s.traffic.start_saver();
        }
    }

    /// Where to send kernel invalidations (set once the FUSE session exists).
    pub fn set_invalidator(&self, invalidate: Arc<dyn Invalidate>) {
        self.namespace.set_invalidator(invalidate);
    }

    /// Whom to tell which folders changed on the provider (see [`FolderChanged`]).
    pub fn set_folder_changed(&self, listener: Arc<dyn FolderChanged>) {
        self.namespace.set_folder_changed(listener);
    }

    /// The telemetry report: a line per storage, and the block cache's use of its budget.
    pub fn stats_report(&self) -> String {
        let mut out = String::new();
        for s in &self.storages {
            out.push_str(&s.stats.line(&s.path));
            out.push_str(&s.traffic.stats_fields());
            out.push('\n');
        }
        let (used, in_flight) = self.files.cache_usage();
        out.push_str(&format!(
            "block_cache used_bytes={used} in_flight_bytes={in_flight} budget_bytes={} open_handles={} inodes={}\n",
            self.config.memory_limit,
            self.files.len(),
            self.namespace.inode_count(),
        ));
        if let Some(disk) = &self.config.disk {
            out.push_str(&format!("disk_cache stored_bytes={}\n", disk.stored_bytes()));
        }
        out
    }

    /// Forget cached listings, restored ones included (SIGHUP): the next lookups ask the
    /// drivers again, as soon as the kernel's own entry TTLs (at most `dir_cache_time`) run out.
    pub fn drop_dir_caches(&self) {
        self.namespace.drop_dir_caches();
    }

    /// Let the disk cache finish its writes and write its block maps, and write the listing
    /// store and the traffic counts (when the mount or a command ends).
    pub async fn flush(&self) {
        for s in &self.storages {
            let traffic = s.traffic.clone();
            let _ = tokio::task::spawn_blocking(move || traffic.save()).await;
        }
        if let Some(disk) = &self.config.disk {
            disk.settle().await;
        }
        if let Some(store) = self.config.store.clone() {
            let _ = tokio::task::spawn_blocking(move || store.flush()).await;
        }
    }

    fn stats_attr(&self) -> Attr {
        self.namespace.stats_attr(self.stats_report().len())
    }
}
