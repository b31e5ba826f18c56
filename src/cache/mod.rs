//! Caches of the fs core: folder listings and negative names (`meta`), download links
//! (`link`), file blocks (`blocks`), and listings kept across restarts (`store`). Each memory
//! cache is bounded and keyed by [`FileKey`] where it holds something of a file; each single-flights its misses so that a burst of identical kernel
//! requests costs one remote call.

pub mod blocks;
pub mod disk;
mod key;
pub mod link;
pub mod meta;
pub mod store;

pub use key::FileKey;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Per-key async locks: the single-flight primitive. Whoever holds a key's guard does the
/// remote call and fills the cache; the others wait, then find the cache filled.
/// Entries are removed when the last holder lets go, so the map stays as small as the set of
/// keys in flight.
pub struct KeyedLock<K> {
    locks: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

pub struct KeyGuard<'a, K: Eq + Hash + Clone> {
    owner: &'a KeyedLock<K>,
    key: K,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<K: Eq + Hash + Clone> Default for KeyedLock<K> {
    fn default() -> Self {
        KeyedLock { locks: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash + Clone> KeyedLock<K> {
    pub async fn lock(&self, key: K) -> KeyGuard<'_, K> {
        let lock = self.locks.lock().unwrap().entry(key.clone()).or_default().clone();
        let guard = lock.clone().lock_owned().await;
        KeyGuard { owner: self, key, lock, _guard: Some(guard) }
    }
}

impl<K: Eq + Hash + Clone> Drop for KeyGuard<'_, K> {
    fn drop(&mut self) {
        self._guard = None;
        let mut locks = self.owner.locks.lock().unwrap();
        // Two references: the map's and ours. Anyone else waiting holds a third.
        if Arc::strong_count(&self.lock) == 2 {
            locks.remove(&self.key);
        }
    }
}
