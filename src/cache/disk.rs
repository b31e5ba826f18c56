//! The disk cache (opt-in, `[cache] dir`): file blocks kept on disk across restarts, so that
//! re-reads and a media library's re-scan after a reboot cost no downloads.
//!
//! - One sparse data file per (storage, file id, version) and a small block map beside it. The
//!   version is part of the name, so a changed file never serves old bytes: its new version
//!   starts empty and the old one ages out.
//! - The map holds a 64-bit digest of every stored block. A block is served from disk only if
//!   its digest matches what is read back, so a crash between writing data and map, a torn
//!   write or a damaged disk costs a download, never wrong bytes.
//! - Maps are written atomically (temp file, rename) at most every `FLUSH_EVERY` and when the
//!   mount stops; a crash loses at most the blocks stored since, which are fetched again.
//! - Whole files are evicted least-recently-used when the total passes `max_size`, or when
//!   the filesystem's free space would fall under 5% of its size (at most 2 GiB): a cache on
//!   a shared disk must not fill it. With nothing left to evict a block is simply not stored.
//!
//! File IO runs on tokio's blocking pool; the FUSE-facing tasks never wait on a disk syscall
//! while holding a lock.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::FileKey;
use bytes::Bytes;
use md5::{Digest, Md5};

const MAGIC: &[u8; 8] = b"PMDC0001";
const FLUSH_EVERY: Duration = Duration::from_secs(2);

pub struct DiskCache {
    dir: PathBuf,
    max_size: u64,
    block_size: u64,
    /// Free and total bytes of the cache's filesystem (statvfs; replaced in tests).
    space: fn(&Path) -> Option<(u64, u64)>,
    index: Mutex<Index>,
    /// Stores handed to the blocking pool and not yet written.
    pending: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache").field("dir", &self.dir).field("max_size", &self.max_size).finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Index {
    files: HashMap<String, FileMap>,
    /// Bytes of stored blocks, over all files.
    total: u64,
    /// A logical clock for least-recently-used eviction.
    tick: u64,
}

impl Index {
    /// Drop the least recently used file other than `keep` from the index: its name (its files
    /// are the caller's to remove, outside the lock) and the bytes it held.
    fn evict_oldest(&mut self, keep: &str) -> Option<(String, u64)> {
        let oldest = self.files.iter().filter(|(n, _)| n.as_str() != keep).min_by_key(|(_, m)| m.last_used)?.0.clone();
        let map = self.files.remove(&oldest)?;
        self.total -= map.stored;
        Some((oldest, map.stored))
    }
}

struct FileMap {
    size: u64,
    /// Digest of each stored block; 0 = not stored.
    digests: Vec<u64>,
    stored: u64,
    last_used: u64,
    dirty: bool,
}

impl DiskCache {
    /// Open (creating) the cache at `dir` and load the maps it holds. A flusher task writes
    /// dirty maps every `FLUSH_EVERY` while the cache is alive.
    pub fn open(dir: &Path, max_size: u64, block_size: u64) -> io::Result<Arc<Self>> {
        Self::open_with(dir, max_size, block_size, filesystem_space)
    }

    fn open_with(
        dir: &Path,
        max_size: u64,
        block_size: u64,
        space: fn(&Path) -> Option<(u64, u64)>,
    ) -> io::Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        let mut index = Index::default();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let Some(stem) = name.strip_suffix(".map") else {
                if name.ends_with(".tmp") {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            };
            match load_map(&path, block_size) {
                Ok(mut map) if dir.join(format!("{stem}.data")).exists() => {
                    index.tick += 1;
                    map.last_used = index.tick;
                    index.total += map.stored;
                    index.files.insert(stem.to_string(), map);
                }
                _ => remove_pair(dir, stem),
            }
        }
        // Data files whose map is gone cannot be trusted.
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".data")) {
                if !index.files.contains_key(stem) {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        tracing::info!(dir = %dir.display(), files = index.files.len(), bytes = index.total, "disk cache opened");
        let cache = Arc::new(DiskCache {
            dir: dir.to_path_buf(),
            max_size,
            block_size,
            space,
            index: Mutex::new(index),
            pending: Default::default(),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(flusher(Arc::downgrade(&cache)));
        }
        Ok(cache)
    }

    pub fn has(&self, file: &FileKey, index: u64) -> bool {
        let idx = self.index.lock().unwrap();
        idx.files.get(&name(file.as_str())).is_some_and(|m| m.digests.get(index as usize).is_some_and(|d| *d != 0))
    }

    /// The stored block, if its digest still matches.
    pub async fn read(self: &Arc<Self>, file: &FileKey, index: u64, len: usize) -> Option<Bytes> {
        let (name, want) = {
            let mut idx = self.index.lock().unwrap();
            idx.tick += 1;
            let tick = idx.tick;
            let name = name(file.as_str());
            let map = idx.files.get_mut(&name)?;
            map.last_used = tick;
            (name, *map.digests.get(index as usize)?)
        };
        if want == 0 {
            return None;
        }
        let this = self.clone();
        let offset = index * self.block_size;
        let block = tokio::task::spawn_blocking(move || {
            let file = File::open(this.dir.join(format!("{name}.data"))).ok()?;
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, offset).ok()?;
            if digest(&buf) == want {
                Some(Bytes::from(buf))
            } else {
                tracing::warn!(block = index, "disk cache block failed its digest; fetching it again");
                this.forget_block(&name, index);
                None
            }
        });
        block.await.ok().flatten()
    }

    /// Keep a block fetched from the network (in the background).
    pub fn store(self: &Arc<Self>, file: &FileKey, file_size: u64, index: u64, bytes: Bytes) {
        let this = self.clone();
        let name = name(file.as_str());
        self.pending.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::task::spawn_blocking(move || {
            if let Err(err) = this.write_block(&name, file_size, index, &bytes) {
                tracing::debug!(error = %err, "disk cache: could not store a block");
            }
            this.pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }

    /// Wait (bounded) for stores in flight, then write the maps: for the end of a mount or a
    /// command, so what was downloaded is there next time.
    pub async fn settle(self: &Arc<Self>) {
        for _ in 0..500 {
            if self.pending.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || this.flush()).await;
    }

    fn write_block(&self, name: &str, file_size: u64, index: u64, bytes: &[u8]) -> io::Result<()> {
        // What must be freed so that this block leaves the filesystem its floor of free space.
        let mut short = (self.space)(&self.dir)
            .map_or(0, |(free, total)| (free_floor(total) + bytes.len() as u64).saturating_sub(free));
        let mut victims = Vec::new();
        if short > 0 {
            let mut idx = self.index.lock().unwrap();
            while short > 0 {
                let Some((oldest, stored)) = idx.evict_oldest(name) else { break };
                short = short.saturating_sub(stored.max(1));
                victims.push(oldest);
            }
        }
        for victim in victims.drain(..) {
            remove_pair(&self.dir, &victim);
        }
        if short > 0 {
            tracing::debug!(dir = %self.dir.display(), "disk cache: the disk is nearly full; block not stored");
            return Ok(());
        }
        let data = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .mode(0o600)
            .open(self.dir.join(format!("{name}.data")))?;
        data.write_all_at(bytes, index * self.block_size)?;
        {
            let mut idx = self.index.lock().unwrap();
            idx.tick += 1;
            let tick = idx.tick;
            let blocks = file_size.div_ceil(self.block_size) as usize;
            let map = idx.files.entry(name.to_string()).or_insert_with(|| FileMap {
                size: file_size,
                digests: vec![0; blocks],
                stored: 0,
                last_used: tick,
                dirty: true,
            });
            let Some(slot) = map.digests.get_mut(index as usize) else { return Ok(()) };
            let added = if *slot == 0 { bytes.len() as u64 } else { 0 };
            *slot = digest(bytes);
            map.stored += added;
            map.dirty = true;
            map.last_used = tick;
            idx.total += added;
            while idx.total > self.max_size {
                let Some((oldest, _)) = idx.evict_oldest(name) else { break };
                victims.push(oldest);
            }
        }
        for victim in victims {
            remove_pair(&self.dir, &victim);
        }
        Ok(())
    }

    fn forget_block(&self, name: &str, index: u64) {
        let mut idx = self.index.lock().unwrap();
        let block_size = self.block_size;
        if let Some(map) = idx.files.get_mut(name) {
            if let Some(slot) = map.digests.get_mut(index as usize) {
                if *slot != 0 {
                    *slot = 0;
                    let len = (map.size - index * block_size).min(block_size);
                    map.stored -= len;
                    map.dirty = true;
                    idx.total -= len;
                }
            }
        }
    }

    /// Write every changed map (atomically). Called periodically and when the mount stops.
    pub fn flush(&self) {
        let dirty: Vec<(String, Vec<u8>)> = {
            let mut idx = self.index.lock().unwrap();
            idx.files
                .iter_mut()
                .filter(|(_, m)| m.dirty)
                .map(|(n, m)| {
                    m.dirty = false;
                    (n.clone(), encode_map(m, self.block_size))
                })
                .collect()
        };
        for (name, bytes) in dirty {
            let path = self.dir.join(format!("{name}.map"));
            let tmp = self.dir.join(format!("{name}.map.tmp"));
            let written =
                File::create(&tmp).and_then(|mut f| f.write_all(&bytes)).and_then(|()| std::fs::rename(&tmp, &path));
            if let Err(err) = written {
                tracing::debug!(error = %err, "disk cache: could not write a block map");
            }
        }
    }

    pub fn stored_bytes(&self) -> u64 {
        self.index.lock().unwrap().total
    }
}

async fn flusher(cache: Weak<DiskCache>) {
    loop {
        tokio::time::sleep(FLUSH_EVERY).await;
        let Some(cache) = cache.upgrade() else { return };
        let _ = tokio::task::spawn_blocking(move || cache.flush()).await;
    }
}

/// File names are digests of the key: the key holds the provider's id and version, which may
/// contain anything.
fn name(file: &str) -> String {
    Md5::digest(file.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// 64 bits of MD5, never 0 (0 marks an absent block).
fn digest(bytes: &[u8]) -> u64 {
    let d = Md5::digest(bytes);
    u64::from_le_bytes(d[..8].try_into().unwrap()) | 1
}

fn encode_map(map: &FileMap, block_size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + 8 * map.digests.len());
    out.extend_from_slice(MAGIC);
    for n in [block_size, map.size, map.digests.len() as u64] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    for d in &map.digests {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out
}

fn load_map(path: &Path, block_size: u64) -> io::Result<FileMap> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad block map");
    let word = |i: usize| bytes.get(8 + 8 * i..16 + 8 * i).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    if bytes.get(..8) != Some(MAGIC) || word(0) != Some(block_size) {
        return Err(bad());
    }
    let (size, n) = (word(1).ok_or_else(bad)?, word(2).ok_or_else(bad)? as usize);
    if n as u64 != size.div_ceil(block_size) || bytes.len() != 32 + 8 * n {
        return Err(bad());
    }
    let digests: Vec<u64> = (0..n).map(|i| word(3 + i).unwrap()).collect();
    let stored = digests
        .iter()
        .enumerate()
        .filter(|(_, d)| **d != 0)
        .map(|(i, _)| (size - i as u64 * block_size).min(block_size))
        .sum();
    Ok(FileMap { size, digests, stored, last_used: 0, dirty: false })
}

/// Free space the cache leaves its filesystem: 5% of it, at most 2 GiB.
fn free_floor(total: u64) -> u64 {
    (total / 20).min(2 << 30)
}

fn filesystem_space(dir: &Path) -> Option<(u64, u64)> {
    let path = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str())).ok()?;
    // SAFETY: statvfs fills the struct we pass; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(path.as_ptr(), &mut st) } == 0)
        .then(|| (st.f_bavail as u64 * st.f_frsize as u64, st.f_blocks as u64 * st.f_frsize as u64))
}

fn remove_pair(dir: &Path, stem: &str) {
    let _ = std::fs::remove_file(dir.join(format!("{stem}.map")));
    let _ = std::fs::remove_file(dir.join(format!("{stem}.data")));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(text: &str) -> FileKey {
        FileKey::for_tests(text)
    }

    const BS: u64 = 16;

    #[tokio::test]
    async fn blocks_survive_a_restart_and_damage_is_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path(), 1 << 20, BS).unwrap();
        cache.store(&k("s\0f\0v1"), 40, 0, Bytes::from(vec![7u8; 16]));
        cache.store(&k("s\0f\0v1"), 40, 2, Bytes::from(vec![9u8; 8]));
        cache.settle().await;
        assert!(cache.has(&k("s\0f\0v1"), 0) && !cache.has(&k("s\0f\0v1"), 1) && cache.has(&k("s\0f\0v1"), 2));
        assert!(!cache.has(&k("s\0f\0v2"), 0), "another version is another file");
        drop(cache);

        let cache = DiskCache::open(dir.path(), 1 << 20, BS).unwrap();
        assert_eq!(cache.stored_bytes(), 24);
        assert_eq!(&cache.read(&k("s\0f\0v1"), 2, 8).await.unwrap()[..], &[9u8; 8]);
        // Damage the data file: the block fails its digest and is forgotten.
        let data = dir.path().join(format!("{}.data", name("s\0f\0v1")));
        let f = OpenOptions::new().write(true).open(&data).unwrap();
        f.write_all_at(&[0u8; 4], 0).unwrap();
        assert!(cache.read(&k("s\0f\0v1"), 0, 16).await.is_none());
        assert!(!cache.has(&k("s\0f\0v1"), 0));
    }

    #[tokio::test]
    async fn evicts_least_recently_used_files_past_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path(), 40, BS).unwrap();
        for f in ["a", "b", "c"] {
            cache.store(&k(f), 16, 0, Bytes::from(vec![1u8; 16]));
            cache.settle().await;
        }
        assert!(cache.stored_bytes() <= 40);
        assert!(!cache.has(&k("a"), 0) && cache.has(&k("b"), 0) && cache.has(&k("c"), 0));
        assert!(!dir.path().join(format!("{}.data", name("a"))).exists());
    }

    /// Free bytes the fake filesystem reports (of 1000 in all: the floor is 50).
    static FREE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1000);

    fn fake_space(_: &Path) -> Option<(u64, u64)> {
        Some((FREE.load(std::sync::atomic::Ordering::SeqCst), 1000))
    }

    #[tokio::test]
    async fn a_nearly_full_disk_evicts_old_files_or_stores_nothing() {
        use std::sync::atomic::Ordering::SeqCst;
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open_with(dir.path(), 1 << 20, BS, fake_space).unwrap();
        for f in ["a", "b"] {
            cache.store(&k(f), 16, 0, Bytes::from(vec![1u8; 16]));
            cache.settle().await;
        }
        // 60 bytes free: storing 16 more would leave 44, under the floor of 50: "a" goes.
        FREE.store(60, SeqCst);
        cache.store(&k("c"), 16, 0, Bytes::from(vec![1u8; 16]));
        cache.settle().await;
        assert!(!cache.has(&k("a"), 0) && cache.has(&k("b"), 0) && cache.has(&k("c"), 0));
        // Nothing else to evict and no room: the block is not stored, and nothing breaks.
        FREE.store(10, SeqCst);
        cache.store(&k("c"), 32, 1, Bytes::from(vec![2u8; 16]));
        cache.settle().await;
        assert!(!cache.has(&k("c"), 1));
        FREE.store(1000, SeqCst);
    }

    #[test]
    fn a_damaged_map_is_dropped_with_its_data() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.map"), b"garbage").unwrap();
        std::fs::write(dir.path().join("x.data"), b"data").unwrap();
        std::fs::write(dir.path().join("y.data"), b"orphan").unwrap();
        let cache = DiskCache::open(dir.path(), 100, BS).unwrap();
        assert_eq!(cache.stored_bytes(), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
