//! Listings: from the memory cache, from the persisted store, or from the driver (one call
//! per folder at a time); and sizes the provider did not list, learned from the server.

use std::sync::Arc;
use std::time::Duration;

use super::{Fs, MIN_TTL, names};
use crate::cache::meta::Listing;
use crate::drivers::Entry;
use crate::error::{Error, Result};
use crate::stats::StorageStats;

impl Fs {
    /// The listing of `dir`, from cache, from the store, or from the driver (one call per
    /// folder at a time).
    pub(super) async fn list(&self, storage: usize, dir: &Entry) -> Result<(Arc<Listing>, Duration)> {
        let key = (storage, dir.id.clone());
        if let Some(hit) = self.meta.dir(&key) {
            return Ok(hit);
        }
        if let Some(hit) = self.restored(storage, dir) {
            return Ok(hit);
        }
        let _foreground = self.background.foreground();
        let _guard = self.listing.lock(key.clone()).await;
        if let Some(hit) = self.meta.dir(&key) {
            return Ok(hit);
        }
        let entries = self.fetch(storage, dir).await?;
        Ok((entries, self.meta.dir_ttl()))
    }

    /// A listing an earlier run stored: while younger than the TTL, as a fresh one; older, only
    /// in a mount (which revalidates it in the background), for a second at a time.
    pub(super) fn restored(&self, storage: usize, dir: &Entry) -> Option<(Arc<Listing>, Duration)> {
        let stored = self.config.store.as_ref()?.restored(storage, &dir.id)?;
        let age = stored.age();
        if let Some(left) = self.meta.dir_ttl().checked_sub(age).filter(|l| !l.is_zero()) {
            self.meta.restore_dir((storage, dir.id.clone()), stored.entries.clone(), age);
            return Some((stored.entries, left));
        }
        if !self.background.running() {
            return None;
        }
        self.background.enqueue(storage, dir, true);
        Some((stored.entries, MIN_TTL))
    }

    /// List `dir` through the driver now, and remember the listing (cache and store). The
    /// caller holds the folder's listing lock.
    pub(super) async fn fetch(&self, storage: usize, dir: &Entry) -> Result<Arc<Listing>> {
        let s = &self.storages[storage];
        s.ensure_up().await?;
        StorageStats::add(&s.stats.listings, 1);
        tracing::debug!(storage = %s.path, folder = %dir.name, id = %dir.id, "listing");
        let mut entries = s.checked(s.driver.list(dir).await)?;
        names::make_showable(&mut entries);
        let entries = Arc::new(Listing::new(entries));
        self.meta.put_dir((storage, dir.id.clone()), entries.clone());
        if let Some(store) = &self.config.store {
            store.put(storage, &dir.id, entries.clone());
        }
        Ok(entries)
    }

    /// `entry` with its size known: from the listing, from the size cache, or from the server.
    pub(super) async fn with_size(&self, storage: usize, mut entry: Entry) -> Result<Entry> {
        if entry.is_dir {
            entry.size.get_or_insert(0);
            return Ok(entry);
        }
        if entry.size.is_some() {
            return Ok(entry);
        }
        if let Some(size) = self.meta.size(storage, &entry) {
            entry.size = Some(size);
            return Ok(entry);
        }
        let _guard = self.sizing.lock((storage, entry.id.clone())).await;
        if let Some(size) = self.meta.size(storage, &entry) {
            entry.size = Some(size);
            return Ok(entry);
        }
        let _permit = self.size_probes.acquire().await.map_err(|_| Error::internal("closed"))?;
        let s = &self.storages[storage];
        let driver = &s.driver;
        let key = (storage, entry.id.clone(), entry.version.clone());
        let mint = || {
            StorageStats::add(&s.stats.link_mints, 1);
            async { s.checked(driver.link(&entry).await) }
        };
        let link = self.links.get(&key, mint).await?;
        let size = match crate::http::range::probe_size(&s.http, &link).await {
            Err(Error::LinkRefused { .. }) => {
                self.links.invalidate(&key, &link);
                let link = self.links.get(&key, mint).await?;
                crate::http::range::probe_size(&s.http, &link).await?
            }
            other => other?,
        };
        self.meta.put_size(storage, &entry, size);
        entry.size = Some(size);
        Ok(entry)
    }
}
