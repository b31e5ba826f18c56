//! Walking a tree to prime the listing store (`panmount warm`): every folder is listed through
//! the driver, never from a cache, exactly once, by the same path as a mount's listings, so
//! the driver's rate limiters apply and the store records each listing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::Namespace;
use super::inode::Kind;
use crate::cache::meta::Listing;
use crate::drivers::Entry;
use crate::error::{Error, Result};

/// Folders listed at once per storage. A rate-limited endpoint spaces them anyway; for the
/// others this hides some of each call's round trip without looking like a crawler.
const WALKERS: usize = 4;

/// What a walk has done so far (read by the progress display while it runs).
#[derive(Debug, Default)]
pub struct WalkCount {
    pub folders: AtomicU64,
    pub entries: AtomicU64,
    pub failures: AtomicU64,
}

impl Namespace {
    /// Where a walk of `path` (resolved to `ino`) starts: the folder itself, or the roots of
    /// the storages below a virtual folder.
    pub fn walk_starts(&self, ino: u64, path: &str) -> Result<Vec<(usize, Entry)>> {
        let kind = self.inodes.lock().unwrap().get(ino)?.kind.clone();
        match kind {
            Kind::Remote { storage, entry } if entry.view().is_dir => Ok(vec![(storage, entry.view().to_entry())]),
            Kind::Remote { .. } | Kind::Stats => Err(Error::NotDir),
            Kind::Virtual { .. } => {
                let prefix: String = path.split('/').filter(|p| !p.is_empty()).map(|p| format!("/{p}")).collect();
                let below = |p: &str| prefix.is_empty() || p == prefix || p.starts_with(&format!("{prefix}/"));
                let storages = self.storages.iter().enumerate().filter(|(_, s)| below(&s.path));
                Ok(storages.map(|(i, s)| (i, s.driver.root())).collect())
            }
        }
    }

    /// List `dir` and every folder below it through the driver. Failed folders are counted and
    /// skipped (with what is below them); the first failure is returned at the end.
    pub async fn walk(&self, storage: usize, dir: Entry, count: &WalkCount) -> Result<()> {
        let mut pending = vec![dir];
        let mut running = FuturesUnordered::new();
        let mut first_error = None;
        loop {
            while running.len() < WALKERS {
                let Some(dir) = pending.pop() else { break };
                running.push(self.relist(storage, dir));
            }
            let Some((dir, listed)) = running.next().await else { break };
            match listed {
                Ok(entries) => {
                    count.folders.fetch_add(1, Ordering::Relaxed);
                    count.entries.fetch_add(entries.len() as u64, Ordering::Relaxed);
                    pending.extend(entries.iter().filter(|e| e.is_dir).map(|e| e.to_entry()));
                }
                Err(err) => {
                    count.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(storage = %self.storages[storage].path, folder = %dir.name, error = %err, "cannot list");
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn relist(&self, storage: usize, dir: Entry) -> (Entry, Result<Arc<Listing>>) {
        let _guard = self.listing.lock((storage, dir.id.clone())).await;
        let listed = crate::http::limit::background(self.fetch(storage, &dir)).await;
        (dir, listed)
    }
}
