//! File blocks in memory, shared by every reader, with in-flight de-duplication.
//!
//! Blocks are keyed by (file, version, index), so a changed file never serves old bytes. The
//! cache is bounded by a byte budget and evicts least-recently-used blocks. A block being
//! fetched is registered as in flight: a second reader of the same block waits for the first
//! fetch instead of starting its own, which is what keeps two readers of one file (a media
//! server's scanner and its player) from downloading it twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lru::LruCache;
use tokio::sync::watch;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockKey {
    /// Storage, file id and version, joined: one allocation shared by all of a file's keys.
    pub file: Arc<str>,
    pub index: u64,
}

type Slot = watch::Receiver<Option<Result<Bytes>>>;

pub struct BlockCache {
    budget: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    blocks: LruCache<BlockKey, Bytes>,
    used: usize,
    in_flight: HashMap<BlockKey, Slot>,
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
    tx: Option<watch::Sender<Option<Result<Bytes>>>>,
}

impl BlockCache {
    pub fn new(budget_bytes: usize) -> Arc<Self> {
        Arc::new(BlockCache {
            budget: budget_bytes,
            inner: Mutex::new(Inner { blocks: LruCache::unbounded(), used: 0, in_flight: HashMap::new() }),
        })
    }

    pub fn claim(self: &Arc<Self>, key: BlockKey) -> Claim {
        let mut inner = self.inner.lock().unwrap();
        if let Some(bytes) = inner.blocks.get(&key) {
            return Claim::Ready(bytes.clone());
        }
        if let Some(slot) = inner.in_flight.get(&key) {
            return Claim::Pending(slot.clone());
        }
        let (tx, rx) = watch::channel(None);
        inner.in_flight.insert(key.clone(), rx);
        Claim::Fetch(Filler { cache: self.clone(), key, tx: Some(tx) })
    }

    /// Whether a block is cached or being fetched (used to plan read-ahead without claiming).
    pub fn is_present(&self, key: &BlockKey) -> bool {
        let inner = self.inner.lock().unwrap();
        inner.blocks.contains(key) || inner.in_flight.contains_key(key)
    }

    pub fn used_bytes(&self) -> usize {
        self.inner.lock().unwrap().used
    }

    fn finish(&self, key: &BlockKey, result: &Result<Bytes>) {
        let mut inner = self.inner.lock().unwrap();
        inner.in_flight.remove(key);
        if let Ok(bytes) = result {
            inner.used += bytes.len();
            if let Some(old) = inner.blocks.put(key.clone(), bytes.clone()) {
                inner.used -= old.len();
            }
            while inner.used > self.budget {
                match inner.blocks.pop_lru() {
                    Some((_, old)) => inner.used -= old.len(),
                    None => break,
                }
            }
        }
    }
}

impl Filler {
    /// A receiver that sees this block's outcome.
    pub fn subscribe(&self) -> Slot {
        self.tx.as_ref().expect("filler already used").subscribe()
    }

    pub fn complete(mut self, bytes: Bytes) {
        self.finish(Ok(bytes));
    }

    pub fn fail(mut self, err: Error) {
        self.finish(Err(err));
    }

    fn finish(&mut self, result: Result<Bytes>) {
        if let Some(tx) = self.tx.take() {
            self.cache.finish(&self.key, &result);
            let _ = tx.send(Some(result));
        }
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        self.finish(Err(Error::internal("block fetch abandoned")));
    }
}

/// Wait for a block someone is fetching.
pub async fn wait(mut slot: Slot) -> Result<Bytes> {
    match slot.wait_for(|v| v.is_some()).await {
        Ok(value) => value.clone().expect("checked by wait_for"),
        Err(_) => Err(Error::internal("block fetch abandoned")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> BlockKey {
        BlockKey { file: Arc::from("0:f:v"), index: i }
    }

    #[tokio::test]
    async fn second_claim_waits_for_the_first_fetch() {
        let cache = BlockCache::new(1 << 20);
        let Claim::Fetch(filler) = cache.claim(key(0)) else { panic!("expected fetch") };
        let Claim::Pending(slot) = cache.claim(key(0)) else { panic!("expected pending") };
        let waiter = tokio::spawn(wait(slot));
        filler.complete(Bytes::from_static(b"abc"));
        assert_eq!(&waiter.await.unwrap().unwrap()[..], b"abc");
        assert!(matches!(cache.claim(key(0)), Claim::Ready(b) if &b[..] == b"abc"));
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_dropping_a_filler_fails_waiters() {
        let cache = BlockCache::new(1 << 20);
        let Claim::Fetch(filler) = cache.claim(key(1)) else { panic!() };
        let slot = filler.subscribe();
        filler.fail(Error::LinkRefused { status: 403 });
        assert!(matches!(wait(slot).await, Err(Error::LinkRefused { .. })));
        let Claim::Fetch(filler) = cache.claim(key(1)) else { panic!("a failure must not be cached") };
        let slot = filler.subscribe();
        drop(filler);
        assert!(wait(slot).await.is_err());
    }

    #[test]
    fn stays_within_budget() {
        let cache = BlockCache::new(10);
        for i in 0..5 {
            let Claim::Fetch(f) = cache.claim(key(i)) else { panic!() };
            f.complete(Bytes::from(vec![0u8; 4]));
        }
        assert!(cache.used_bytes() <= 10);
        assert!(matches!(cache.claim(key(4)), Claim::Ready(_)));
        assert!(matches!(cache.claim(key(0)), Claim::Fetch(_)));
    }
}
