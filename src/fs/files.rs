//! Files: opening one (its size made real, its connection limit shared with the file's other
//! handles) and reading it through the read path.

use std::sync::Arc;

use bytes::Bytes;

use super::handles::Handle;
use super::inode::Kind;
use super::{Fs, Opened};
use crate::cache::FileKey;
use crate::error::{Error, Result};
use crate::read::OpenFile;
use crate::read::connections::ConnectionLimit;
use crate::stats::StorageStats;

impl Fs {
    /// Open a file for reading (writes are refused: the mount is read-only).
    pub async fn open(&self, ino: u64, write: bool) -> Result<Opened> {
        if write {
            return Err(Error::ReadOnly);
        }
        let node = self.inodes.lock().unwrap().get(ino)?.clone();
        let (storage, entry) = match node.kind {
            Kind::Remote { storage, entry } => (storage, entry),
            Kind::Stats => {
                let report = bytes::Bytes::from(self.stats_report());
                return Ok(Opened {
                    fh: self.handles.insert(Handle::Stats(report)),
                    direct_io: true,
                    keep_cache: false,
                });
            }
            Kind::Virtual { .. } => return Err(Error::IsDir),
        };
        if entry.is_dir {
            return Err(Error::IsDir);
        }
        let s = &self.storages[storage];
        s.ensure_up().await?;
        let entry = self.with_size(storage, entry).await?;
        let size = entry.size.expect("with_size sets the size");
        let keep_cache = {
            let mut inodes = self.inodes.lock().unwrap();
            let node = inodes.get_mut(ino)?;
            let keep = node.cached_version.as_deref() == Some(entry.version.as_str());
            node.cached_version = Some(entry.version.clone());
            keep
        };
        let file = OpenFile::new(storage, s.clone(), entry, size, self.config.block_size, self.links.clone());
        let limit = match self.config.connections_per_file {
            0 => s.driver.max_connections(),
            n => n,
        };
        let connections = self.connection_limit(file.key(), limit);
        let file = file.with_limits(connections, self.config.disk.clone());
        let reader = Arc::new(self.reader.open(Arc::new(file)));
        Ok(Opened { fh: self.handles.insert(Handle::File(reader)), direct_io: false, keep_cache })
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

    pub fn release(&self, fh: u64) {
        self.handles.remove(fh);
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
