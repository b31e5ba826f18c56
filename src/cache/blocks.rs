//! File blocks in memory, shared by every reader, with in-flight de-duplication.
//!
//! Blocks are keyed by (file, version, index), so a changed file never serves old bytes. The
//! cache is bounded by a byte budget and evicts blocks already read before read-ahead nobody
//! has read yet (see `Pool`). A block being fetched is registered as in flight: a second
//! reader of the same block waits for the first fetch instead of starting its own, which is
//! what keeps two readers of one file (a media server's scanner and its player) from
//! downloading it twice.
//!
//! A reader waiting for a block being fetched does not wait for the whole block: bytes are
//! appended to the block's buffer as they arrive and each waiter is woken as soon as the
//! bytes it asked for are there, so the time to the first byte is the network's, not a
//! block's transfer time.
//!
//! The budget covers blocks being fetched too: each block in flight reserves a block's worth,
//! and finished blocks are evicted to make room, so read-ahead cannot push memory past it.
//!
//! The blocks of every file's head and tail (where media containers keep their headers and
//! indexes; the reader decides which) live in a separate *probe* pool, an eighth of the
//! budget, so that streaming one large file cannot evict what a library scan needs: a re-scan
//! is answered from memory.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lru::LruCache;
use tokio::sync::watch;

use super::FileKey;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub file: FileKey,
    pub index: u64,
}

/// A block being fetched: its bytes so far, and how far it got.
struct Progress {
    buf: Mutex<Vec<u8>>,
    state: watch::Sender<State>,
    /// A reader consumed the block while it was arriving: it joins the read queue when whole.
    consumed: std::sync::atomic::AtomicBool,
}

#[derive(Clone)]
enum State {
    /// This many bytes from the block's start are in `buf`.
    Receiving(usize),
    Done(Bytes),
    Failed(Error),
}

/// A waiter's view of a block being fetched.
#[derive(Clone)]
pub struct Slot {
    progress: Arc<Progress>,
}

pub struct BlockCache {
    budget: usize,
    /// What a block in flight reserves of the budget.
    block_size: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    main: Pool,
    probes: Pool,
    in_flight: HashMap<BlockKey, Slot>,
}

/// Blocks under a byte budget, in two queues: blocks nobody has read yet (read-ahead) and
/// blocks a reader has consumed. Room is made from the consumed ones first, oldest read first:
/// parallel parts of a stream's read-ahead complete interleaved, so one queue in completion
/// order would evict the first blocks of the later parts before the reader gets there (and
/// fetch them twice). Only when nothing read is left does unread read-ahead go, oldest first.
struct Pool {
    unread: LruCache<BlockKey, Bytes>,
    read: LruCache<BlockKey, Bytes>,
    used: usize,
    budget: usize,
}

impl Pool {
    fn new(budget: usize) -> Self {
        Pool { unread: LruCache::unbounded(), read: LruCache::unbounded(), used: 0, budget }
    }

    /// A block without changing its place in either queue.
    fn peek(&self, key: &BlockKey) -> Option<&Bytes> {
        self.read.peek(key).or_else(|| self.unread.peek(key))
    }

    /// A block, made the most recent of its queue.
    fn get(&mut self, key: &BlockKey) -> Option<&Bytes> {
        match self.read.contains(key) {
            true => self.read.get(key),
            false => self.unread.get(key),
        }
    }

    /// Add a block: to the read queue if a reader already consumed it (or it was there).
    fn put(&mut self, key: BlockKey, bytes: Bytes, reserved: usize, consumed: bool) {
        self.used += bytes.len();
        let old = match consumed || self.read.contains(&key) {
            true => self.read.put(key, bytes),
            false => self.unread.put(key, bytes),
        };
        if let Some(old) = old {
            self.used -= old.len();
        }
        self.shrink_to(self.budget.saturating_sub(reserved));
    }

    /// A reader has consumed this block: it joins the read queue (once: a re-read does not
    /// make it recent, so a stream's consumed blocks leave in the order they were read).
    fn consumed(&mut self, key: &BlockKey) {
        if let Some(bytes) = self.unread.pop(key) {
            self.read.put(key.clone(), bytes);
        }
    }

    fn shrink_to(&mut self, limit: usize) {
        while self.used > limit {
            match self.read.pop_lru().or_else(|| self.unread.pop_lru()) {
                Some((_, old)) => self.used -= old.len(),
                None => break,
            }
        }
    }
}

/// What a reader holds for one block.
pub enum Claim {
    Ready(Bytes),
    /// Someone else is fetching it.
    Pending(Slot),
    /// Ours to fetch: complete or fail the filler (dropping it fails the block).
    Fetch(Filler),
}

/// The duty to deliver one block.
pub struct Filler {
    cache: Arc<BlockCache>,
    pub key: BlockKey,
    probe: bool,
    progress: Arc<Progress>,
    finished: bool,
}

impl BlockCache {
    pub fn new(budget_bytes: usize, block_size: usize) -> Arc<Self> {
        let probes = budget_bytes / 8;
        Arc::new(BlockCache {
            budget: budget_bytes,
            block_size,
            inner: Mutex::new(Inner {
                main: Pool::new(budget_bytes - probes),
                probes: Pool::new(probes),
                in_flight: HashMap::new(),
            }),
        })
    }

    /// Claim a block; `probe` marks a file's first or last block (kept in the probe pool).
    pub fn claim(self: &Arc<Self>, key: BlockKey, probe: bool) -> Claim {
        let mut inner = self.inner.lock().unwrap();
        // A hit in the main pool does not make a block recent (see `Pool`; `consumed` does).
        if let Some(bytes) = inner.main.peek(&key) {
            return Claim::Ready(bytes.clone());
        }
        if let Some(bytes) = inner.probes.get(&key) {
            return Claim::Ready(bytes.clone());
        }
        if let Some(slot) = inner.in_flight.get(&key) {
            return Claim::Pending(slot.clone());
        }
        let progress = Arc::new(Progress {
            buf: Mutex::new(Vec::new()),
            state: watch::Sender::new(State::Receiving(0)),
            consumed: false.into(),
        });
        inner.in_flight.insert(key.clone(), Slot { progress: progress.clone() });
        let limit = inner.main.budget.saturating_sub(inner.in_flight.len() * self.block_size);
        inner.main.shrink_to(limit);
        Claim::Fetch(Filler { cache: self.clone(), key, probe, progress, finished: false })
    }

    /// A reader has consumed these blocks of the main pool: they go before unread read-ahead.
    pub fn consumed(&self, keys: impl Iterator<Item = BlockKey>) {
        let mut inner = self.inner.lock().unwrap();
        for key in keys {
            match inner.in_flight.get(&key) {
                Some(slot) => slot.progress.consumed.store(true, Ordering::Relaxed),
                None => inner.main.consumed(&key),
            }
        }
    }

    /// Bytes of cached blocks and bytes reserved by blocks in flight, at one moment.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap();
        (inner.main.used + inner.probes.used, inner.in_flight.len() * self.block_size)
    }

    pub fn used_bytes(&self) -> usize {
        let inner = self.inner.lock().unwrap();
        inner.main.used + inner.probes.used
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks being fetched right now, across all files.
    pub fn in_flight(&self) -> usize {
        self.inner.lock().unwrap().in_flight.len()
    }

    fn finish(&self, key: &BlockKey, probe: bool, result: &Result<Bytes>) {
        let mut inner = self.inner.lock().unwrap();
        let consumed = inner.in_flight.remove(key).is_some_and(|slot| slot.progress.consumed.load(Ordering::Relaxed));
        let reserved = inner.in_flight.len() * self.block_size;
        if let Ok(bytes) = result {
            let (pool, reserved) = if probe { (&mut inner.probes, 0) } else { (&mut inner.main, reserved) };
            pool.put(key.clone(), bytes.clone(), reserved, consumed);
        }
    }
}

impl Filler {
    /// A view for waiters of this block.
    pub fn subscribe(&self) -> Slot {
        Slot { progress: self.progress.clone() }
    }

    /// Bytes received so far (from the block's start).
    pub fn received(&self) -> usize {
        self.progress.buf.lock().unwrap().len()
    }

    /// Add the next bytes of the block (`block_len` long in all) and wake the waiters they
    /// satisfy.
    pub fn append(&self, bytes: &[u8], block_len: usize) {
        let len = {
            let mut buf = self.progress.buf.lock().unwrap();
            let have = buf.len();
            buf.reserve_exact(block_len.saturating_sub(have));
            buf.extend_from_slice(bytes);
            buf.len()
        };
        self.progress.state.send_replace(State::Receiving(len));
    }

    /// The block is whole: publish what was appended. Returns it (for the disk cache).
    pub fn complete_received(self) -> Bytes {
        let bytes = Bytes::from(std::mem::take(&mut *self.progress.buf.lock().unwrap()));
        self.complete(bytes.clone());
        bytes
    }

    pub fn complete(mut self, bytes: Bytes) {
        self.finish(Ok(bytes));
    }

    pub fn fail(mut self, err: Error) {
        self.finish(Err(err));
    }

    fn finish(&mut self, result: Result<Bytes>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.cache.finish(&self.key, self.probe, &result);
        self.progress.state.send_replace(match result {
            Ok(bytes) => State::Done(bytes),
            Err(err) => State::Failed(err),
        });
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        self.finish(Err(Error::internal("block fetch abandoned")));
    }
}

/// Wait for a whole block someone is fetching.
pub async fn wait(slot: Slot) -> Result<Bytes> {
    wait_range(slot, 0, usize::MAX).await
}

/// Wait until bytes `from..to` of a block being fetched have arrived (or the block is done:
/// then `to` is capped at its length) and return them.
pub async fn wait_range(slot: Slot, from: usize, to: usize) -> Result<Bytes> {
    let mut rx = slot.progress.state.subscribe();
    loop {
        let state = rx.borrow_and_update().clone();
        match state {
            State::Done(bytes) => {
                let to = to.min(bytes.len());
                return Ok(bytes.slice(from.min(to)..to));
            }
            State::Failed(err) => return Err(err),
            State::Receiving(n) if n >= to => {
                let buf = slot.progress.buf.lock().unwrap();
                // Empty if the filler just took the buffer to publish it: `Done` follows.
                if buf.len() >= to {
                    return Ok(Bytes::copy_from_slice(&buf[from..to]));
                }
            }
            State::Receiving(_) => {}
        }
        if rx.changed().await.is_err() {
            return Err(Error::internal("block fetch abandoned"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> BlockKey {
        BlockKey { file: FileKey::for_tests("0:f:v"), index: i }
    }

    #[tokio::test]
    async fn second_claim_waits_for_the_first_fetch() {
        let cache = BlockCache::new(1 << 20, 10);
        let Claim::Fetch(filler) = cache.claim(key(0), false) else { panic!("expected fetch") };
        let Claim::Pending(slot) = cache.claim(key(0), false) else { panic!("expected pending") };
        let waiter = tokio::spawn(wait(slot));
        filler.complete(Bytes::from_static(b"abc"));
        assert_eq!(&waiter.await.unwrap().unwrap()[..], b"abc");
        assert!(matches!(cache.claim(key(0), false), Claim::Ready(b) if &b[..] == b"abc"));
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_dropping_a_filler_fails_waiters() {
        let cache = BlockCache::new(1 << 20, 10);
        let Claim::Fetch(filler) = cache.claim(key(1), false) else { panic!() };
        let slot = filler.subscribe();
        filler.fail(Error::LinkRefused { status: 403 });
        assert!(matches!(wait(slot).await, Err(Error::LinkRefused { .. })));
        let Claim::Fetch(filler) = cache.claim(key(1), false) else { panic!("a failure must not be cached") };
        let slot = filler.subscribe();
        drop(filler);
        assert!(wait(slot).await.is_err());
    }

    #[tokio::test]
    async fn waiters_get_their_bytes_before_the_block_is_whole() {
        let cache = BlockCache::new(1 << 20, 10);
        let Claim::Fetch(filler) = cache.claim(key(7), false) else { panic!() };
        let head = tokio::spawn(wait_range(filler.subscribe(), 0, 4));
        let tail = tokio::spawn(wait_range(filler.subscribe(), 6, 10));
        filler.append(b"abcdef", 10);
        assert_eq!(&head.await.unwrap().unwrap()[..], b"abcd");
        assert!(!tail.is_finished());
        filler.append(b"ghij", 10);
        assert_eq!(&tail.await.unwrap().unwrap()[..], b"ghij");
        let whole = tokio::spawn(wait(filler.subscribe()));
        assert_eq!(&filler.complete_received()[..], b"abcdefghij");
        assert_eq!(&whole.await.unwrap().unwrap()[..], b"abcdefghij");
        assert!(matches!(cache.claim(key(7), false), Claim::Ready(b) if &b[..] == b"abcdefghij"));
    }

    #[test]
    fn probe_blocks_survive_streaming() {
        let cache = BlockCache::new(80, 10);
        let Claim::Fetch(f) = cache.claim(key(100), true) else { panic!() };
        f.complete(Bytes::from(vec![1u8; 10]));
        for i in 0..20 {
            let Claim::Fetch(f) = cache.claim(key(i), false) else { panic!() };
            f.complete(Bytes::from(vec![0u8; 10]));
        }
        assert!(cache.used_bytes() <= 80);
        assert!(matches!(cache.claim(key(100), false), Claim::Ready(_)), "the probe block is still there");
        assert!(matches!(cache.claim(key(0), false), Claim::Fetch(_)), "old streaming blocks were evicted");
    }

    #[test]
    fn blocks_in_flight_count_against_the_budget() {
        // Budget 80: probes 10, main 70; each block in flight reserves 10.
        let cache = BlockCache::new(80, 10);
        for i in 0..7 {
            let Claim::Fetch(f) = cache.claim(key(i), false) else { panic!() };
            f.complete(Bytes::from(vec![0u8; 10]));
        }
        assert_eq!(cache.used_bytes(), 70);
        let fillers: Vec<Filler> = (10..13)
            .map(|i| match cache.claim(key(i), false) {
                Claim::Fetch(f) => f,
                _ => panic!(),
            })
            .collect();
        assert!(cache.used_bytes() <= 40, "three blocks in flight made room: {}", cache.used_bytes());
        assert!(matches!(cache.claim(key(6), false), Claim::Ready(_)), "the newest block stays");
        assert!(matches!(cache.claim(key(0), false), Claim::Fetch(_)), "the oldest went first");
        drop(fillers);
    }

    #[test]
    fn read_ahead_outlives_blocks_already_read() {
        // Main pool 70: blocks 0..7 arrive; 0 and 1 are read, the rest is read-ahead.
        let cache = BlockCache::new(80, 10);
        for i in 0..7 {
            let Claim::Fetch(f) = cache.claim(key(i), false) else { panic!() };
            f.complete(Bytes::from(vec![0u8; 10]));
        }
        cache.consumed([key(1), key(0)].into_iter());
        for i in 7..9 {
            let Claim::Fetch(f) = cache.claim(key(i), false) else { panic!() };
            f.complete(Bytes::from(vec![0u8; 10]));
        }
        assert!(matches!(cache.claim(key(2), false), Claim::Ready(_)), "unread read-ahead stays");
        assert!(matches!(cache.claim(key(0), false), Claim::Fetch(_)), "what was read goes first");
        assert!(matches!(cache.claim(key(1), false), Claim::Fetch(_)));
    }

    #[test]
    fn a_block_read_while_it_arrived_counts_as_read() {
        // Main pool 70. Block 0 is read while in flight; blocks 1..8 are read-ahead.
        let cache = BlockCache::new(80, 10);
        let Claim::Fetch(first) = cache.claim(key(0), false) else { panic!() };
        cache.consumed([key(0)].into_iter());
        first.complete(Bytes::from(vec![0u8; 10]));
        for i in 1..8 {
            let Claim::Fetch(f) = cache.claim(key(i), false) else { panic!() };
            f.complete(Bytes::from(vec![0u8; 10]));
        }
        assert!(matches!(cache.claim(key(1), false), Claim::Ready(_)), "unread read-ahead stayed");
        assert!(matches!(cache.claim(key(0), false), Claim::Fetch(_)), "the read block went first");
    }

    #[test]
    fn stays_within_budget() {
        let cache = BlockCache::new(10, 1);
        for i in 0..5 {
            let Claim::Fetch(f) = cache.claim(key(i), false) else { panic!() };
            f.complete(Bytes::from(vec![0u8; 4]));
        }
        assert!(cache.used_bytes() <= 10);
        assert!(matches!(cache.claim(key(4), false), Claim::Ready(_)));
        assert!(matches!(cache.claim(key(0), false), Claim::Fetch(_)));
    }
}
