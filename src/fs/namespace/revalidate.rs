//! Stale-while-revalidate for listings restored from the store (`crate::cache::store`).
//!
//! After a restart the core answers from the listings an earlier run persisted, whatever their
//! age, so a library scan never waits on a cold cloud. Restored listings older than
//! `dir_cache_time` are listed again here, in the background: first those the kernel asked
//! for (a lookup or readdir served a stale listing), then the rest of the restored tree, from
//! each storage's root down. At most [`WORKERS`] run at once, each waits while any foreground
//! listing is in flight, and all go through the drivers, so their API rate limiters space them:
//! what a user waits for goes first.
//!
//! When a listing comes back different, the inode table takes the new entries (so an `open`
//! uses the new version, and the block cache never serves the old bytes) and the kernel is
//! told through [`Invalidate`]: the names removed, changed or added (a cached negative entry
//! must go too) and the changed files' inodes. The trait keeps fuser out of the core; the FUSE
//! layer implements it with fuser's `Notifier`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore, watch};

use super::Namespace;
use super::inode::{Kind, RemoteEntry};
use crate::cache::meta::{DirKey, Listing};
use crate::drivers::{Entry, EntryRef};
use crate::stats::StorageStats;

/// Background listings at once.
const WORKERS: usize = 2;

/// What the kernel must forget; implemented by the FUSE layer. Errors are the implementer's to
/// swallow: the kernel refuses notices about what it does not hold, and that is fine.
pub trait Invalidate: Send + Sync {
    /// The name `name` in the folder `parent` (a removed, changed or new entry).
    fn entry(&self, parent: u64, name: &str);
    /// The attributes and cached pages of `ino`.
    fn inode(&self, ino: u64);
}

enum Notice {
    Entry(u64, String),
    Inode(u64),
}

#[derive(Default)]
pub(super) struct Background {
    queue: Mutex<Queue>,
    wake: Notify,
    /// Foreground listings in flight; background ones wait for 0.
    foreground: watch::Sender<usize>,
    running: AtomicBool,
    invalidate: Mutex<Option<Arc<dyn Invalidate>>>,
}

#[derive(Default)]
struct Queue {
    asked: VecDeque<(usize, Entry)>,
    sweep: VecDeque<(usize, Entry)>,
    queued: HashSet<DirKey>,
}

/// Held while a foreground listing is in flight.
pub(super) struct Foreground<'a>(&'a watch::Sender<usize>);

impl Drop for Foreground<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Background {
    /// Whether stale restored listings may be served (someone will revalidate them).
    pub(super) fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Queue `dir` for a background listing (once; `asked` ones go before the sweep).
    pub(super) fn enqueue(&self, storage: usize, dir: &Entry, asked: bool) {
        let mut queue = self.queue.lock().unwrap();
        if !queue.queued.insert((storage, dir.id.clone())) {
            return;
        }
        let line = if asked { &mut queue.asked } else { &mut queue.sweep };
        line.push_back((storage, dir.clone()));
        drop(queue);
        self.wake.notify_one();
    }

    pub(super) fn foreground(&self) -> Foreground<'_> {
        self.foreground.send_modify(|n| *n += 1);
        Foreground(&self.foreground)
    }

    async fn next(&self) -> (usize, Entry) {
        loop {
            let woken = self.wake.notified();
            {
                let mut queue = self.queue.lock().unwrap();
                if let Some(job) = queue.asked.pop_front().or_else(|| queue.sweep.pop_front()) {
                    return job;
                }
            }
            woken.await;
        }
    }

    fn done(&self, key: &DirKey) {
        self.queue.lock().unwrap().queued.remove(key);
    }

    async fn foreground_idle(&self) {
        let _ = self.foreground.subscribe().wait_for(|n| *n == 0).await;
    }
}

impl Namespace {
    /// Serve stale restored listings from now on, revalidating them in the background, and
    /// write the store every few seconds. Once per mount, on its runtime.
    pub fn start_background(self: &Arc<Self>) {
        let Some(store) = self.store.clone() else { return };
        if self.background.running.swap(true, Ordering::Relaxed) {
            return;
        }
        self.queue_sweep();
        let namespace = self.clone();
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(WORKERS));
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                let (storage, dir) = namespace.background.next().await;
                let namespace = namespace.clone();
                tokio::spawn(async move {
                    namespace.revalidate(storage, dir).await;
                    drop(permit);
                });
            }
        });
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(crate::cache::store::FLUSH_EVERY);
            loop {
                tick.tick().await;
                let store = store.clone();
                let _ = tokio::task::spawn_blocking(move || store.flush()).await;
            }
        });
    }

    /// Where to send kernel invalidations (set once the FUSE session exists).
    pub fn set_invalidator(&self, invalidate: Arc<dyn Invalidate>) {
        *self.background.invalidate.lock().unwrap() = Some(invalidate);
    }

    /// Queue every restored folder reachable from a storage root, breadth first.
    fn queue_sweep(&self) {
        let Some(store) = &self.store else { return };
        for (i, s) in self.storages.iter().enumerate() {
            let restored = store.restored_dirs(i);
            let mut next = VecDeque::from([s.driver.root()]);
            let mut seen = HashSet::new();
            while let Some(dir) = next.pop_front() {
                let Some(entries) = restored.get(&dir.id) else { continue };
                if !seen.insert(dir.id.clone()) {
                    continue;
                }
                self.learn_paths(i, &dir.id, entries);
                next.extend(entries.iter().filter(|e| e.is_dir).map(|e| e.to_entry()));
                self.background.enqueue(i, &dir, false);
            }
        }
    }

    async fn revalidate(&self, storage: usize, dir: Entry) {
        let key = (storage, dir.id.clone());
        let store = self.store.as_ref().expect("started with a store");
        self.background.foreground_idle().await;
        let guard = self.listing.lock(key.clone()).await;
        // Fetched in the meantime, dropped by SIGHUP, or still fresh (its turn comes when a
        // lookup finds it stale): nothing to do.
        let stale = store.restored(storage, &dir.id).filter(|s| s.age() >= self.meta.dir_ttl());
        if let Some(old) = stale {
            let s = &self.storages[storage];
            // Background priority: the driver's rate limiter serves users' calls first.
            match crate::http::limit::background(self.fetch(storage, &dir)).await {
                Ok(new) => {
                    StorageStats::add(&s.stats.revalidations, 1);
                    if *new != *old.entries {
                        self.announce(storage, &dir.id, &old.entries, &new);
                    }
                }
                // The stored listing stays served (stale-if-error, logged once per outage).
                Err(err) => {
                    if let Err(err) = self.last_good(storage, &dir, err) {
                        tracing::warn!(storage = %s.path, folder = %dir.name, error = %err, "background listing failed; serving the stored one")
                    }
                }
            }
        }
        drop(guard);
        self.background.done(&key);
    }

    /// Tell the kernel to forget the attributes of `inodes` (off the runtime's workers).
    pub(super) fn invalidate_inodes(&self, inodes: Vec<u64>) {
        let Some(invalidate) = self.background.invalidate.lock().unwrap().clone() else { return };
        if inodes.is_empty() {
            return;
        }
        tokio::task::spawn_blocking(move || inodes.into_iter().for_each(|ino| invalidate.inode(ino)));
    }

    /// A folder's listing changed from `old` to `listing`: update the inodes the kernel holds
    /// and tell it what to forget. Every inode of the folder moves to the new listing, changed
    /// or not (an inode pointing into the old one would keep all of it in memory); a size
    /// learned from the server stays where the entry did not change.
    fn announce(&self, storage: usize, dir_id: &str, old: &Listing, listing: &Arc<Listing>) {
        let old: HashMap<&str, EntryRef> = old.iter_shown().collect();
        let new: HashMap<&str, (usize, EntryRef)> =
            listing.iter_shown().enumerate().map(|(i, (n, e))| (n, (i, e))).collect();
        let changed = |name: &str| new.get(name).map(|(_, e)| *e) != old.get(name).copied();
        let mut names: Vec<&str> = old.keys().copied().filter(|n| changed(n)).collect();
        names.extend(new.keys().filter(|n| !old.contains_key(*n)));
        tracing::debug!(storage = %self.storages[storage].path, changed = names.len(), "a stored listing changed");
        let mut notices = Vec::new();
        {
            let mut inodes = self.inodes.lock().unwrap();
            for parent in inodes.folders(storage, dir_id) {
                for (name, &(index, _)) in &new {
                    let Some(ino) = inodes.child(parent, name) else { continue };
                    let listed = matches!(
                        inodes.get(ino).map(|n| &n.kind),
                        Ok(Kind::Remote { entry: RemoteEntry::Listed { .. }, .. })
                    );
                    if listed || changed(name) {
                        let entry = RemoteEntry::Listed { listing: listing.clone(), index: index as u32 };
                        inodes.upsert(parent, name, Kind::Remote { storage, entry });
                    }
                    if changed(name) {
                        notices.push(Notice::Inode(ino));
                    }
                }
                notices.extend(names.iter().map(|name| Notice::Entry(parent, name.to_string())));
                notices.push(Notice::Inode(parent));
            }
        }
        let Some(invalidate) = self.background.invalidate.lock().unwrap().clone() else { return };
        // The kernel may take locks a request in flight holds: never block a runtime worker.
        tokio::task::spawn_blocking(move || {
            for notice in notices {
                match notice {
                    Notice::Entry(parent, name) => invalidate.entry(parent, &name),
                    Notice::Inode(ino) => invalidate.inode(ino),
                }
            }
        });
    }
}
