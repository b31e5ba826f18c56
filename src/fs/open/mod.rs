//! The open files: handles, and reading a file through the read path (its connection limit
//! shared with the file's other handles, its links minted through the link cache).
//!
//! Apart from the namespace (`super::namespace`), which decides what a name is: this side is
//! handed a file's entry with its size at open, and never looks an inode up. The write path
//! adds writers here without touching the namespace.

pub mod handles;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use super::{FsConfig, Storage};
use crate::cache::FileKey;
use crate::cache::blocks::BlockCache;
use crate::cache::disk::DiskCache;
use crate::cache::link::LinkCache;
use crate::drivers::Entry;
use crate::error::{Error, Result};
use crate::fs::namespace::DirSnapshot;
use crate::read::connections::ConnectionLimit;
use crate::read::{OpenFile, Reader};
use crate::stats::StorageStats;
use handles::{Handle, Handles};

pub struct OpenFiles {
    handles: Handles,
    reader: Reader,
    links: Arc<LinkCache>,
    /// One connection limit per file being read, shared by its handles.
    connections: Mutex<HashMap<FileKey, Weak<ConnectionLimit>>>,
    block_size: u64,
    /// Parallel ranged requests per open file; 0 keeps each driver's own limit.
    connections_per_file: usize,
    disk: Option<Arc<DiskCache>>,
}

impl OpenFiles {
    pub fn new(config: &FsConfig, links: Arc<LinkCache>) -> Self {
        OpenFiles {
            handles: Handles::default(),
            reader: Reader::new(BlockCache::new(config.memory_limit, config.block_size as usize), config.window),
            links,
            connections: Mutex::default(),
            block_size: config.block_size,
            connections_per_file: config.connections_per_file,
            disk: config.disk.clone(),
        }
    }

    /// Open `entry` (of the storage `s`, number `storage`), whose size is `size`, for reading.
    pub fn open_file(&self, storage: usize, s: &Arc<Storage>, entry: Entry, size: u64) -> u64 {
        let file = OpenFile::new(storage, s.clone(), entry, size, self.block_size, self.links.clone());
        let limit = match self.connections_per_file {
            0 => s.driver.max_connections(),
            n => n,
        };
        let connections = self.connection_limit(file.key(), limit);
        let file = file.with_limits(connections, self.disk.clone());
        let reader = Arc::new(self.reader.open(Arc::new(file)));
        self.handles.insert(Handle::File(reader))
    }

    /// A handle on a snapshot of the telemetry report.
    pub fn open_stats(&self, report: Bytes) -> u64 {
        self.handles.insert(Handle::Stats(report))
    }

    /// A handle on a pending file's staging file.
    pub fn open_staged(&self, upload: Arc<crate::write::Upload>, writer: bool) -> u64 {
        self.handles.insert(Handle::Staged { upload, writer })
    }

    /// A handle on the folder `ino` as `opendir` saw it.
    pub fn open_dir(&self, ino: u64, snapshot: DirSnapshot) -> u64 {
        self.handles.insert(Handle::Dir { ino, snapshot })
    }

    pub fn handle(&self, fh: u64) -> Result<Arc<Handle>> {
        self.handles.get(fh)
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes> {
        let handle = self.handles.get(fh)?;
        let reader = match &*handle {
            Handle::File(reader) => reader,
            Handle::Stats(report) => {
                let start = (offset as usize).min(report.len());
                return Ok(report.slice(start..(start + size as usize).min(report.len())));
            }
            Handle::Dir { .. } => return Err(Error::IsDir),
            Handle::Staged { .. } => return Err(Error::internal("a staged file is read through the write path")),
        };
        let stats = &reader.file.stats;
        tracing::trace!(fh, offset, size, "read");
        let result = self.reader.read(reader, offset, size).await;
        match &result {
            Ok(bytes) => StorageStats::add(&stats.bytes_served, bytes.len() as u64),
            Err(_) => StorageStats::add(&stats.read_errors, 1),
        }
        result
    }

    /// Close a file or folder handle; the handle, for what the caller must finish.
    pub fn release(&self, fh: u64) -> Option<Arc<Handle>> {
        self.handles.remove(fh)
    }

    /// Handles open.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The block cache's bytes held and in flight.
    pub fn cache_usage(&self) -> (usize, usize) {
        self.reader.cache_usage()
    }

    fn connection_limit(&self, key: &FileKey, limit: usize) -> Arc<ConnectionLimit> {
        let mut all = self.connections.lock().unwrap();
        if let Some(connections) = all.get(key).and_then(|w| w.upgrade()) {
            return connections;
        }
        all.retain(|_, w| w.strong_count() > 0);
        let connections = ConnectionLimit::new(limit);
        all.insert(key.clone(), Arc::downgrade(&connections));
        connections
    }
}
