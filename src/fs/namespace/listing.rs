//! Listings: from the memory cache, from the persisted store, or from the driver (one call
//! per folder at a time); and sizes the provider did not list, learned from the server.
//!
//! A listing never gets worse because of a failure (stale-if-error): when listing a folder
//! fails and an earlier listing of it is known (expired in memory, or in the store), that one
//! is served for [`STALE_TTL`] more, and listing is tried again after that. An error becomes
//! "no entries" nowhere; without an earlier listing it is the caller's error (EIO). Errors
//! that are answers (the folder is gone: `ENOENT`) are passed on, not papered over.

use std::sync::Arc;
use std::time::Duration;

use super::{MIN_TTL, Namespace};
use crate::cache::FileKey;
use crate::cache::meta::Listing;
use crate::drivers::Entry;
use crate::error::{Error, Result};
use crate::stats::StorageStats;

/// How long a listing served because listing failed is served before listing is tried again
/// (at most `dir_cache_time`): short, so a recovered provider is seen soon, but not so short
/// that every access of a scan waits on a provider that is down.
pub(super) const STALE_TTL: Duration = Duration::from_secs(10);

impl Namespace {
    /// The listing of `dir` as the mount shows it: the provider's, with the pending files
    /// (`super::overlay`) over it.
    pub(super) async fn list(&self, storage: usize, dir: &Entry) -> Result<(Arc<Listing>, Duration)> {
        let (listing, ttl) = self.list_remote(storage, dir).await?;
        Ok((self.overlay.merge(&(storage, dir.id.clone()), listing), ttl))
    }

    /// The provider's listing of `dir`, from cache, from the store, or from the driver (one
    /// call per folder at a time).
    pub(super) async fn list_remote(&self, storage: usize, dir: &Entry) -> Result<(Arc<Listing>, Duration)> {
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
        match self.fetch(storage, dir).await {
            Ok(entries) => Ok((entries, self.meta.dir_ttl())),
            Err(err) => self.last_good(storage, dir, err),
        }
    }

    /// Listing `dir` failed with `err`: the last good listing, served for [`STALE_TTL`], or
    /// the error when there is none (or when the error is an answer, such as `ENOENT`).
    pub(super) fn last_good(&self, storage: usize, dir: &Entry, err: Error) -> Result<(Arc<Listing>, Duration)> {
        let key = (storage, dir.id.clone());
        let last = self.meta.last_dir(&key).or_else(|| {
            let store = self.store.as_ref()?;
            Some(store.restored(storage, &dir.id)?.entries)
        });
        let Some(entries) = last.filter(|_| !err.is_expected()) else { return Err(err) };
        self.storages[storage].serving_stale(&err);
        let ttl = STALE_TTL.min(self.meta.dir_ttl());
        self.meta.restore_dir(key, entries.clone(), self.meta.dir_ttl() - ttl);
        Ok((entries, ttl.max(MIN_TTL)))
    }

    /// A listing an earlier run stored: while younger than the TTL, as a fresh one; older, only
    /// in a mount (which revalidates it in the background), for a second at a time.
    pub(super) fn restored(&self, storage: usize, dir: &Entry) -> Option<(Arc<Listing>, Duration)> {
        let stored = self.store.as_ref()?.restored(storage, &dir.id)?;
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

    /// List `dir` through the driver now, and remember the listing (cache and store); a
    /// listing other than the last one known is a change (`super::changes`). The caller holds
    /// the folder's listing lock.
    pub(super) async fn fetch(&self, storage: usize, dir: &Entry) -> Result<Arc<Listing>> {
        let s = &self.storages[storage];
        s.ensure_up().await?;
        StorageStats::add(&s.stats.listings, 1);
        tracing::debug!(storage = %s.path, folder = %dir.name, id = %dir.id, "listing");
        let entries = s.checked(s.driver.list(dir).await)?;
        s.listed();
        // Unchanged: the listing already held is kept, so the inodes pointing into it
        // (`inode::RemoteEntry`) do not keep a second copy of the folder alive.
        let key = (storage, dir.id.clone());
        let last = self.meta.last_dir(&key).or_else(|| self.store.as_ref()?.last(storage, &dir.id));
        let (entries, changed) = match last {
            Some(last) if last.holds(&entries) => (last, false),
            last => {
                let changed = last.is_some_and(|last| super::changes::differs(&last, &entries));
                (Arc::new(Listing::new(entries)), changed)
            }
        };
        self.meta.put_dir(key, entries.clone());
        if let Some(store) = &self.store {
            store.put(storage, &dir.id, entries.clone());
        }
        self.learn_paths(storage, &dir.id, &entries);
        if changed {
            self.folder_changed(storage, &dir.id);
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
        let s = &self.storages[storage];
        let key = FileKey::new(&s.path, &entry);
        if let Some(size) = self.meta.size(&key) {
            entry.size = Some(size);
            return Ok(entry);
        }
        let _guard = self.sizing.lock(key.clone()).await;
        if let Some(size) = self.meta.size(&key) {
            entry.size = Some(size);
            return Ok(entry);
        }
        let _permit = self.size_probes.acquire().await.map_err(|_| Error::internal("closed"))?;
        let driver = &s.driver;
        let mint = || {
            StorageStats::add(&s.stats.link_mints, 1);
            async { s.minted(driver.link(&entry).await) }
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
        self.meta.put_size(key, size);
        entry.size = Some(size);
        Ok(entry)
    }
}
