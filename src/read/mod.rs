//! The read path: from a kernel read (offset, size) to validated bytes.
//!
//! A file is read in fixed-size blocks through the shared [`BlockCache`]. Each read claims the
//! blocks it needs plus the read-ahead its [`Window`] asks for; blocks nobody else is fetching
//! are grouped into runs of consecutive blocks, each run split into parts of the window's
//! part size over up to the driver's connection limit, and each part fetched by one ranged
//! request in a spawned task (so an interrupted read does not waste a download, and read-ahead
//! runs in the background). The read then waits only for the blocks it needs.
//!
//! Every request pays a round trip before its first byte, and HTTP/1.1 sends a connection's
//! next request only once the last response has ended: a handle's request in its last round
//! trip hands its permit over to the next part waiting (`connections::ConnectionLimit::
//! hand_over`, up to `READER_OVERLAP` at a time), so the next part's round trip runs while the
//! last bytes of the previous one arrive. That costs a few connections more than
//! `READER_STREAMS` at the CDN, never more than the driver's per-file limit. A read's own
//! blocks lead their part, and reach the reader as they arrive; a cold read deep inside a
//! block is fetched from its offset first (`split`).
//!
//! The storage's traffic meter (`crate::budget`) has a say: past its soft mark no read-ahead is
//! claimed, and every request asks it first (`fetch`, `split`).

pub mod connections;
pub mod fetch;
mod split;
pub mod window;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

use crate::cache::FileKey;
use crate::cache::blocks::{self, BlockCache, BlockKey, Claim, Filler};
use crate::cache::disk::DiskCache;
use crate::cache::link::LinkCache;
use crate::drivers::{Driver, Entry};
use crate::error::Result;
use crate::http::HttpClient;
use crate::http::Link;
use crate::stats::StorageStats;
use crate::storage::Storage;
use connections::{ConnectionLimit, READER_OVERLAP, READER_STREAMS};
use window::{Window, WindowConfig};

/// A file's head and tail this long are kept in the block cache's probe pool: media
/// containers keep their headers and indexes there, and library scans read nothing else.
const PROBE_REGION: u64 = 1 << 20;

/// One file being read: what the fetch tasks need, shared by them and the handle.
pub struct OpenFile {
    pub storage: usize,
    pub storage_path: String,
    pub stats: Arc<StorageStats>,
    pub entry: Entry,
    pub size: u64,
    pub block_size: u64,
    /// Ranged requests that may run at once for this file, over all its handles.
    pub connections: Arc<ConnectionLimit>,
    pub driver: Arc<dyn Driver>,
    /// The storage, told when a link cannot be minted because its session died.
    owner: Arc<Storage>,
    pub links: Arc<LinkCache>,
    pub http: HttpClient,
    pub disk: Option<Arc<DiskCache>>,
    file_key: FileKey,
}

impl OpenFile {
    pub fn new(
        storage: usize,
        owner: Arc<Storage>,
        entry: Entry,
        size: u64,
        block_size: u64,
        links: Arc<LinkCache>,
    ) -> Self {
        let file_key = FileKey::new(&owner.path, &entry);
        let connections = ConnectionLimit::new(owner.driver.max_connections());
        OpenFile {
            storage,
            storage_path: owner.path.clone(),
            stats: owner.stats.clone(),
            entry,
            size,
            block_size,
            connections,
            driver: owner.driver.clone(),
            http: owner.http.clone(),
            owner,
            links,
            disk: None,
            file_key,
        }
    }

    /// Share `connections` (one limit per file across all its handles, since the limit is the
    /// CDN's, per link) and attach the disk cache.
    pub fn with_limits(mut self, connections: Arc<ConnectionLimit>, disk: Option<Arc<DiskCache>>) -> Self {
        self.connections = connections;
        self.disk = disk;
        self
    }

    pub fn key(&self) -> &FileKey {
        &self.file_key
    }

    pub async fn link(&self) -> Result<Arc<Link>> {
        self.links
            .get(&self.file_key, || {
                StorageStats::add(&self.stats.link_mints, 1);
                async { self.owner.minted(self.driver.link(&self.entry).await) }
            })
            .await
    }

    pub fn refused(&self, link: &Arc<Link>) {
        self.links.invalidate(&self.file_key, link);
    }

    fn block_key(&self, index: u64) -> BlockKey {
        BlockKey { file: self.file_key.clone(), index }
    }

    fn block_len(&self, index: u64) -> u64 {
        (self.size - index * self.block_size).min(self.block_size)
    }
}

/// The state of one open handle.
pub struct FileReader {
    pub file: Arc<OpenFile>,
    window: Mutex<Window>,
    /// Whether this handle counts in `streams`.
    streaming: std::sync::atomic::AtomicBool,
    /// This handle's requests in flight (`connections::READER_STREAMS`).
    requests: Arc<ConnectionLimit>,
    streams: Arc<AtomicUsize>,
}

impl Drop for FileReader {
    fn drop(&mut self) {
        if *self.streaming.get_mut() {
            self.streams.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

pub struct Reader {
    blocks: Arc<BlockCache>,
    window: WindowConfig,
    /// Handles reading as streams right now: they share the read-ahead budget.
    streams: Arc<AtomicUsize>,
}

impl Reader {
    pub fn new(blocks: Arc<BlockCache>, window: WindowConfig) -> Self {
        Reader { blocks, window, streams: Arc::default() }
    }

    pub fn open(&self, file: Arc<OpenFile>) -> FileReader {
        FileReader {
            file,
            window: Mutex::new(Window::new(self.window)),
            streaming: false.into(),
            requests: ConnectionLimit::with_overlap(READER_STREAMS, READER_OVERLAP),
            streams: self.streams.clone(),
        }
    }

    /// The window policy for one more read: streams share half of the memory budget, so the
    /// read-ahead of several readers never evicts what one of them has not read yet.
    fn window_config(&self) -> WindowConfig {
        let streams = self.streams.load(Ordering::Relaxed).max(1) as u64;
        let max = (self.blocks.budget() as u64 / 2 / streams)
            .clamp(window::MIN_PART * 2, self.window.max.max(window::MIN_PART * 2));
        WindowConfig { max, initial: self.window.initial.min(max), ..self.window }
    }

    /// Bytes of cached blocks, and what blocks being downloaded reserve of the budget, taken
    /// at one moment (apart, a claim in between, which evicts cached blocks to reserve its
    /// room, would count twice).
    pub fn cache_usage(&self) -> (usize, usize) {
        self.blocks.usage()
    }

    /// Up to `size` bytes at `offset`; fewer only at the end of the file.
    pub async fn read(&self, reader: &FileReader, offset: u64, size: u32) -> Result<Bytes> {
        let file = &reader.file;
        if offset >= file.size || size == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + size as u64).min(file.size);
        let bs = file.block_size;
        let (first, last) = (offset / bs, (end - 1) / bs);
        // Read-ahead backs off when the cache is busy: blocks in flight may take at most three
        // quarters of the memory budget, so prefetch never evicts what readers have not
        // consumed yet. What does not fit now is asked for again by the next read.
        // Past the traffic budget's soft mark nothing is fetched ahead (`crate::budget`).
        let room = match file.owner.traffic.read_ahead_allowed() {
            true => (self.blocks.budget() as u64 / 4 * 3).saturating_sub(self.blocks.in_flight() as u64 * bs),
            false => 0,
        };
        let config = self.window_config();
        let (ahead, part) = {
            let mut window = reader.window.lock().unwrap();
            let ahead = window.on_read(config, offset, end - offset, file.size).and_then(|r| {
                let capped = r.start..r.end.min(r.start.saturating_add(room));
                window.limit_frontier(capped.end);
                (capped.start < capped.end).then_some(capped)
            });
            let streaming = window.is_stream(config);
            if reader.streaming.swap(streaming, Ordering::Relaxed) != streaming {
                if streaming {
                    self.streams.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.streams.fetch_sub(1, Ordering::Relaxed);
                }
            }
            (ahead, window.part(config))
        };
        let last_wanted = ahead.as_ref().map_or(last, |r| last.max((r.end - 1) / bs));
        if let Some(r) = &ahead {
            tracing::trace!(file = %file.entry.name, offset, start = r.start, end = r.end, room, "read-ahead");
        }
        let probe = |index: u64| index * bs < PROBE_REGION || (index + 1) * bs + PROBE_REGION > file.size;

        // A cold read deep inside its block (no read-ahead: a seek) gets its bytes first.
        let split_at = (offset - first * bs >= split::SPLIT_AFTER && ahead.is_none()).then(|| offset - first * bs);
        let mut early = None;
        let mut needed = Vec::with_capacity((last - first + 1) as usize);
        let mut run: VecDeque<Filler> = VecDeque::new();
        let mut runs = Vec::new();
        for index in first..=last_wanted {
            let claim = self.blocks.claim(file.block_key(index), probe(index));
            if index <= last {
                let counter = match &claim {
                    Claim::Ready(_) => &file.stats.block_hits,
                    Claim::Pending(_) => &file.stats.block_joins,
                    Claim::Fetch(_) => &file.stats.block_misses,
                };
                StorageStats::add(counter, 1);
            }
            match claim {
                Claim::Fetch(filler) if file.disk.as_ref().is_some_and(|d| d.has(&file.file_key, index)) => {
                    if index <= last {
                        needed.push(Claim::Pending(filler.subscribe()));
                    }
                    runs.extend((!run.is_empty()).then(|| std::mem::take(&mut run)));
                    tokio::spawn(from_disk(file.clone(), filler, reader.requests.clone()));
                }
                Claim::Fetch(filler) if index == first && split_at.is_some() => {
                    needed.push(Claim::Pending(filler.subscribe()));
                    let split = split_at.unwrap();
                    let want = ((end - offset).min(file.block_len(first) - split)) as usize;
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    early = Some(rx);
                    tokio::spawn(split::fetch_split(file.clone(), filler, split, want, tx, reader.requests.clone()));
                }
                Claim::Fetch(filler) => {
                    if index <= last {
                        needed.push(Claim::Pending(filler.subscribe()));
                    }
                    run.push_back(filler);
                }
                other => {
                    if index <= last {
                        needed.push(other);
                    }
                    runs.extend((!run.is_empty()).then(|| std::mem::take(&mut run)));
                }
            }
        }
        runs.extend((!run.is_empty()).then_some(run));
        for run in runs {
            spawn_run(file, run, part, &reader.requests);
        }

        // Each block's part of the read, as soon as those bytes are there.
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        for (i, claim) in needed.into_iter().enumerate() {
            let index = first + i as u64;
            let block_start = index * bs;
            let from = (offset.max(block_start) - block_start) as usize;
            let to = (end.min(block_start + file.block_len(index)) - block_start) as usize;
            let part = match claim {
                Claim::Ready(bytes) if bytes.len() as u64 == file.block_len(index) => bytes.slice(from..to),
                Claim::Ready(_) => return Err(crate::error::Error::internal("block of the wrong length in cache")),
                Claim::Pending(slot) => match early.take() {
                    // The split read's own bytes, or the block once it is whole if that failed.
                    Some(rx) => match rx.await {
                        Ok(bytes) => bytes,
                        Err(_) => blocks::wait_range(slot, from, to).await?,
                    },
                    None => blocks::wait_range(slot, from, to).await?,
                },
                Claim::Fetch(_) => unreachable!("fetch claims were handed to runs"),
            };
            if part.len() != to - from {
                return Err(crate::error::Error::internal("block shorter than the file says"));
            }
            out.extend_from_slice(&part);
        }
        self.blocks.consumed((first..=last).map(|index| file.block_key(index)));
        Ok(out.freeze())
    }
}

/// Split a run into parts of about `part` bytes, at most as many as the handle and the file
/// may have in flight, and fetch each in the background.
fn spawn_run(file: &Arc<OpenFile>, mut run: VecDeque<Filler>, part: u64, requests: &Arc<ConnectionLimit>) {
    let most = (run.len() as u64 * file.block_size).div_ceil(part.max(1)) as usize;
    let parts = file.connections.limit().min(READER_STREAMS).min(most).clamp(1, run.len());
    let per_part = run.len().div_ceil(parts);
    while !run.is_empty() {
        let rest = run.split_off(per_part.min(run.len()));
        let part = std::mem::replace(&mut run, rest);
        tokio::spawn(fetch::fetch_run(file.clone(), part, requests.clone()));
    }
}

/// Deliver a block from the disk cache, or from the network if it failed its digest.
async fn from_disk(file: Arc<OpenFile>, filler: Filler, requests: Arc<ConnectionLimit>) {
    let index = filler.key.index;
    let len = file.block_len(index) as usize;
    let disk = file.disk.clone().expect("checked by the caller");
    match disk.read(&file.file_key, index, len).await {
        Some(bytes) => {
            StorageStats::add(&file.stats.disk_hits, 1);
            filler.complete(bytes);
        }
        None => fetch::fetch_run(file, VecDeque::from([filler]), requests).await,
    }
}
