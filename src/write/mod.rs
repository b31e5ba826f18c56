//! The write path's own state: staging files, the durable journal, and the upload queue.
//!
//! Below the fs core and above the drivers (`crate::drivers::Writable`): the core decides what
//! a name is and shows pending files over the listings; this module keeps their bytes and gets
//! them to the provider. The promise it keeps (INTERFACE.md, "Writing"): a file whose `close`
//! returned 0 reaches the provider whatever happens next. So at the first `close` after writes
//! ([`Writes::commit`]) the staging file is fsynced and its [`Record`] written atomically before
//! the call returns; the upload starts when the last writer has gone ([`Writes::release`]); a
//! bounded pool of workers ([`queue`]) drains the queue with back-off, and [`Writes::replay`]
//! finds every record again at the next start. A failure for good keeps the staging file and
//! the record (named in the log and in `panmount uploads`); panmount never deletes it.
//!
//! Staging has a budget ([`Writes::write`] waits while uploads drain), and a write that would
//! not fit the storage's known quota is `ENOSPC` before any byte is sent.

pub mod journal;
mod queue;
pub mod report;
pub mod staging;
pub mod times;
mod upload;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::drivers::{Entry, Writable};
use crate::error::{Error, Result};
use crate::stats::StorageStats;
use crate::storage::Storage;
pub use journal::{CopiedFrom, Journal, Record, Running};
use staging::Staging;
use times::Times;
use upload::Settle;
pub use upload::{Phase, Upload, pending_id, upload_of};

/// Runs `f` when dropped (also when the future holding it is dropped).
fn scopeguard<F: FnMut() -> usize>(f: F) -> impl Drop {
    struct Guard<F: FnMut() -> usize>(F);
    impl<F: FnMut() -> usize> Drop for Guard<F> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    Guard(f)
}

/// What the fs core does when an upload lands: show the provider's entry instead of the
/// pending one, and keep the time `utimens` set.
pub trait Landing: Send + Sync {
    fn landed(&self, upload: &Upload, record: &Record, entry: &Entry);
}

pub struct Writes {
    journal: Journal,
    storages: Vec<Arc<Storage>>,
    uploads: Mutex<HashMap<String, Arc<Upload>>>,
    queue: Mutex<VecDeque<String>>,
    queued: Notify,
    /// Bytes staged and not yet landed may exceed this only for the file being written alone.
    budget: u64,
    drained: Notify,
    landing: OnceLock<Arc<dyn Landing>>,
    /// Uploads of large files running (see `queue::LARGE_AT_ONCE`).
    large: tokio::sync::Semaphore,
    pub times: Times,
}

impl Writes {
    /// The write path with its journal in `dir` (created when missing).
    pub fn open(dir: &Path, storages: Vec<Arc<Storage>>, budget: u64) -> std::io::Result<Arc<Writes>> {
        Ok(Arc::new(Writes {
            journal: Journal::open(dir)?,
            storages,
            uploads: Mutex::default(),
            queue: Mutex::default(),
            queued: Notify::new(),
            budget,
            drained: Notify::new(),
            landing: OnceLock::new(),
            large: tokio::sync::Semaphore::new(queue::LARGE_AT_ONCE),
            times: Times::load(dir.with_file_name("times.json")),
        }))
    }

    /// Load what earlier runs left: every record becomes a queued upload again (failed ones
    /// too: a restart is the user's way to retry), staging files without a record are removed.
    /// Returns the uploads, for the fs core to show. Records of storages no longer in the
    /// config are kept on disk and left alone.
    pub fn replay(&self) -> Vec<Arc<Upload>> {
        let records = self.journal.records();
        let orphans = self.journal.remove_orphans(&records);
        if orphans > 0 {
            tracing::info!(count = orphans, "removed staging files of writes never closed");
        }
        let mut out = Vec::new();
        for mut record in records {
            let Some(storage) = self.storages.iter().position(|s| s.path == record.storage) else {
                tracing::warn!(path = %record.shown_path(), "pending upload for a storage not in the config; left in the journal");
                continue;
            };
            let staging = match Staging::reopen(self.journal.staging_path(&record.id), record.size, record.hash.clone())
            {
                Ok(s) => s,
                Err(err) => {
                    tracing::error!(path = %record.shown_path(), error = %err, "cannot resume an upload; left in the journal");
                    continue;
                }
            };
            record.failed = false;
            if staging.size() != record.size {
                record.size = staging.size();
                record.hash = None;
            }
            let upload = Arc::new(Upload::new(record.id.clone(), storage, staging, record, Phase::Queued));
            upload.journaled.store(true, Ordering::SeqCst);
            self.uploads.lock().unwrap().insert(upload.id.clone(), upload.clone());
            out.push(upload);
        }
        if !out.is_empty() {
            tracing::info!(count = out.len(), "resuming uploads not finished by an earlier run");
        }
        out
    }

    /// Start the workers (and queue what [`Self::replay`] found). Once, on the mount's runtime.
    pub fn start(self: &Arc<Self>, landing: Arc<dyn Landing>) {
        let _ = self.landing.set(landing);
        let mut ids: Vec<String> = self
            .uploads
            .lock()
            .unwrap()
            .values()
            .filter(|u| u.phase() == Phase::Queued)
            .map(|u| u.id.clone())
            .collect();
        ids.sort();
        self.queue.lock().unwrap().extend(ids);
        queue::spawn_workers(self);
    }

    /// The storage's write capability, or `EROFS`.
    pub fn writable(&self, storage: usize) -> Result<&dyn Writable> {
        self.storages[storage].writer()
    }

    /// A new file `name` (the provider's name) in the folder `parent_id` of `storage`, open
    /// for writing (one writer).
    pub fn create(&self, storage: usize, parent_id: &str, parent_path: &str, name: &str) -> Result<Arc<Upload>> {
        let writable = self.writable(storage)?;
        let id = journal::new_id();
        let staging = Staging::create(self.journal.staging_path(&id), writable.hasher())?;
        staging.add_writer();
        let record = Record {
            id: id.clone(),
            storage: self.storages[storage].path.clone(),
            parent_id: parent_id.to_string(),
            parent_path: parent_path.to_string(),
            name: name.to_string(),
            size: 0,
            hash: None,
            mtime_ns: None,
            attempts: 0,
            last_error: None,
            failed: false,
            created: crate::time::unix_now(),
            copied_from: None,
        };
        let upload = Arc::new(Upload::new(id.clone(), storage, staging, record, Phase::Writing));
        self.uploads.lock().unwrap().insert(id, upload.clone());
        Ok(upload)
    }

    /// Open a pending file for writing again. `None` when its upload has begun: the caller
    /// then stages a new copy, which replaces this one when it lands.
    pub fn reopen(&self, upload: &Arc<Upload>) -> Option<Arc<Upload>> {
        let mut phase = None;
        upload.phase.send_if_modified(|p| {
            let free = matches!(p, Phase::Writing | Phase::Queued | Phase::Failed(_));
            if free {
                upload.staging.add_writer();
                *p = Phase::Writing;
                phase = Some(());
            }
            free
        });
        phase.map(|()| upload.clone())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Upload>> {
        self.uploads.lock().unwrap().get(id).cloned()
    }

    /// Every upload not landed yet.
    pub fn pending(&self) -> Vec<Arc<Upload>> {
        self.uploads.lock().unwrap().values().cloned().collect()
    }

    /// Write `data` at `offset`: `ENOSPC` past the storage's known free space, and a wait
    /// while staging is over its budget and other uploads can drain it.
    pub async fn write(&self, upload: &Arc<Upload>, offset: u64, data: Bytes) -> Result<()> {
        let end = offset + data.len() as u64;
        if end > upload.staging.size() {
            self.check_quota(upload, end).await?;
            self.wait_for_budget(upload).await;
        }
        let up = upload.clone();
        tokio::task::spawn_blocking(move || up.staging.write(offset, &data))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
    }

    /// Make `upload` (a new file, nothing written) a copy of `from`, `size` bytes, by the
    /// provider: an instant upload by the source's hash, now. True when the provider had the
    /// content (the copy is on the provider and shown when the last writer closes, as after
    /// an `fsync`); false when it does not, or when the copy could not be asked for: the
    /// caller then copies the bytes. `ENOSPC` when it would not fit.
    pub async fn provider_copy(&self, upload: &Arc<Upload>, from: CopiedFrom, size: u64) -> Result<bool> {
        let storage = &self.storages[upload.storage];
        let writable = storage.writer()?;
        if writable.hash_kind() != from.hash.kind || upload.staging.size() != 0 || upload.is_copy() {
            return Ok(false);
        }
        self.check_quota(upload, size).await?;
        let record = upload.record();
        let parent = Entry::root_folder(&record.parent_id);
        let made = writable.upload_by_hash(&parent, &record.name, size, &from.hash.value).await;
        let entry = match storage.checked(made) {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(false),
            Err(err @ Error::NoSpace(_)) => return Err(err),
            Err(err) => {
                tracing::warn!(path = %record.shown_path(), error = %err, "the provider could not copy the file; copying its bytes");
                return Ok(false);
            }
        };
        let (up, hash) = (upload.clone(), from.hash.value.clone());
        tokio::task::spawn_blocking(move || up.staging.copied(size, hash))
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        {
            let mut record = upload.record.lock().unwrap();
            record.size = size;
            record.hash = Some(from.hash.value.clone());
            record.copied_from = Some(from);
            *upload.interim.lock().unwrap() = Some((entry.clone(), record.parent_id.clone()));
        }
        upload.sent.fetch_max(upload.staging.version(), Ordering::SeqCst);
        if upload.cancelled.load(Ordering::SeqCst) && upload.interim.lock().unwrap().take().is_some() {
            // Deleted while the provider copied: the copy goes too.
            let _ = writable.trash(&entry).await;
        }
        StorageStats::add(&storage.stats.provider_copies, 1);
        StorageStats::add(&storage.stats.bytes_copied_by_provider, size);
        tracing::info!(path = %record.shown_path(), size, "copied by the provider: no byte downloaded or uploaded");
        Ok(true)
    }

    /// The bytes of a copy made by the provider are staged now (`materialize` in the fs
    /// core): from here on it is a file like any other, uploaded from its staging file.
    pub async fn materialized(&self, upload: &Arc<Upload>) -> Result<()> {
        let record = {
            let mut record = upload.record.lock().unwrap();
            record.copied_from = None;
            record.clone()
        };
        if upload.journaled.load(Ordering::SeqCst) { self.put_record(record).await } else { Ok(()) }
    }

    /// Set the staged size (`truncate`).
    pub async fn truncate(&self, upload: &Arc<Upload>, size: u64) -> Result<()> {
        if size > upload.staging.size() {
            self.check_quota(upload, size).await?;
        }
        let up = upload.clone();
        tokio::task::spawn_blocking(move || up.staging.truncate(size))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
    }

    pub async fn read(&self, upload: &Arc<Upload>, offset: u64, size: u32) -> Result<Bytes> {
        let up = upload.clone();
        let bytes = tokio::task::spawn_blocking(move || up.staging.read(offset, size as usize))
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        Ok(Bytes::from(bytes))
    }

    /// A `close` (FUSE flush): make what was written durable and recorded, before the call
    /// returns. Nothing to do when nothing was written since the last commit.
    pub async fn commit(&self, upload: &Arc<Upload>) -> Result<()> {
        // A file deleted while open keeps its bytes for its handles, but nothing is recorded.
        let version = upload.staging.version();
        if version == upload.staging.committed() || upload.cancelled.load(Ordering::SeqCst) {
            return Ok(());
        }
        let (up, journal) = (upload.clone(), self.journal.clone());
        tokio::task::spawn_blocking(move || {
            up.staging.sync()?;
            let record = {
                let mut record = up.record.lock().unwrap();
                record.size = up.staging.size();
                record.clone()
            };
            journal.put(&record).map_err(staging::io)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        upload.journaled.store(true, Ordering::SeqCst);
        upload.staging.set_committed(version);
        Ok(())
    }

    /// A handle open for writing closed. The last one commits what is left, finishes the hash
    /// and queues the upload.
    pub async fn release(&self, upload: &Arc<Upload>) -> Result<()> {
        if !upload.staging.remove_writer() {
            return Ok(());
        }
        self.commit(upload).await?;
        self.enqueue(upload).await
    }

    /// Queue the upload of what is staged now (the last writer left, or `fsync`).
    async fn enqueue(&self, upload: &Arc<Upload>) -> Result<()> {
        if upload.cancelled.load(Ordering::SeqCst) {
            return Ok(());
        }
        let up = upload.clone();
        let hash = tokio::task::spawn_blocking(move || up.staging.finish_hash())
            .await
            .map_err(|e| Error::internal(e.to_string()))?;
        let changed = {
            let mut record = upload.record.lock().unwrap();
            let changed = record.hash != hash || record.size != upload.staging.size();
            record.hash = hash;
            record.size = upload.staging.size();
            changed.then(|| record.clone())
        };
        if let Some(record) = changed {
            self.put_record(record).await?;
        }
        if upload.sent.load(Ordering::SeqCst) == upload.staging.version() {
            // An `fsync` sent these very bytes: show that copy, if it is still where the
            // record says (else the next upload, instant, puts it there).
            let mut interim = upload.interim.lock().unwrap();
            if let Some((entry, parent_id)) = interim.as_ref()
                && matches!(upload.settle_if_unchanged(parent_id, &entry.name), Settle::Done)
            {
                let (entry, _) = interim.take().expect("checked above");
                drop(interim);
                self.land(upload, &entry);
                return Ok(());
            }
        }
        let queued = upload.phase.send_if_modified(|p| {
            let idle = matches!(p, Phase::Writing | Phase::Failed(_));
            if idle {
                *p = Phase::Queued;
            }
            idle
        });
        if queued {
            self.queue.lock().unwrap().push_back(upload.id.clone());
            self.queued.notify_one();
        }
        Ok(())
    }

    /// The provider's `entry` is this file now: shown in place of the pending one, and the
    /// upload is done.
    fn land(&self, upload: &Upload, entry: &Entry) {
        if let Some(landing) = self.landing.get() {
            landing.landed(upload, &upload.record(), entry);
        }
        upload.phase.send_replace(Phase::Landed);
        self.forget(upload);
    }

    /// `fsync`: what was written so far reaches the provider before this returns (`EIO` when
    /// that failed for good). A handle still open for writing keeps writing; the file stays
    /// pending until its last close, which uploads what came after (or shows this copy).
    ///
    /// What counts is the staging version the provider has, not whether this descriptor's
    /// writes were already recorded: a `close` of another descriptor of the file (a forked
    /// child's copy closing on exec, say) commits them too, and must not make `fsync` a no-op.
    pub async fn sync(&self, upload: &Arc<Upload>) -> Result<()> {
        self.commit(upload).await?;
        let target = upload.staging.version();
        if upload.sent.load(Ordering::SeqCst) < target {
            let queued = upload.phase.send_if_modified(|p| {
                let writing = *p == Phase::Writing;
                if writing {
                    *p = Phase::Queued;
                }
                writing
            });
            if queued {
                self.queue.lock().unwrap().push_back(upload.id.clone());
                self.queued.notify_one();
            }
        }
        upload.syncing.fetch_add(1, Ordering::SeqCst);
        let _done = scopeguard(|| upload.syncing.fetch_sub(1, Ordering::SeqCst));
        let mut phase = upload.phase.subscribe();
        loop {
            if upload.sent.load(Ordering::SeqCst) >= target {
                return Ok(());
            }
            match &*phase.borrow_and_update() {
                Phase::Landed | Phase::Cancelled => return Ok(()),
                Phase::Failed(err) => return Err(Error::Remote(format!("upload failed: {err}"))),
                _ => {}
            }
            if phase.changed().await.is_err() {
                return Ok(());
            }
        }
    }

    /// The file was renamed or moved before it landed: only the journal changes. `NotFound`
    /// when it has landed meanwhile ([`Upload::is_settled`]).
    pub async fn rename(&self, upload: &Arc<Upload>, parent_id: &str, parent_path: &str, name: &str) -> Result<()> {
        let record = {
            let mut record = upload.record.lock().unwrap();
            if upload.is_settled() {
                return Err(Error::NotFound);
            }
            record.parent_id = parent_id.to_string();
            record.parent_path = parent_path.to_string();
            record.name = name.to_string();
            record.clone()
        };
        if !upload.journaled.load(Ordering::SeqCst) {
            // Never closed yet: its first close records it, under the new name.
            return Ok(());
        }
        self.put_record(record).await
    }

    /// `utimens` on a pending file: kept in its record, and for the file once it lands.
    /// `NotFound` when it has landed meanwhile ([`Upload::is_settled`]).
    pub async fn set_mtime(&self, upload: &Arc<Upload>, mtime: SystemTime) -> Result<()> {
        let ns = mtime.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        let record = {
            let mut record = upload.record.lock().unwrap();
            if upload.is_settled() {
                return Err(Error::NotFound);
            }
            record.mtime_ns = Some(ns);
            record.clone()
        };
        if !upload.journaled.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.put_record(record).await
    }

    /// The file was deleted before it landed: its upload stops (a copy that lands anyway is
    /// trashed) and its staging file goes. False when it has landed meanwhile
    /// ([`Upload::is_settled`]): the caller deletes the provider's file instead.
    pub fn cancel(&self, upload: &Arc<Upload>) -> bool {
        {
            let _record = upload.record.lock().unwrap();
            if upload.is_settled() {
                return false;
            }
            upload.cancelled.store(true, Ordering::SeqCst);
        }
        let uploading = upload.phase() == Phase::Uploading;
        upload.phase.send_replace(Phase::Cancelled);
        if let Some((entry, _)) = upload.interim.lock().unwrap().take() {
            // An `fsync` had sent it while it was open: that copy goes to the trash.
            let storage = self.storages[upload.storage].clone();
            tokio::spawn(async move {
                let trashed = match storage.writer() {
                    Ok(writable) => writable.trash(&entry).await,
                    Err(err) => Err(err),
                };
                if let Err(err) = trashed {
                    tracing::warn!(name = %entry.name, error = %err, "cannot trash the synced copy of a deleted file");
                }
            });
        }
        if !uploading {
            self.forget(upload);
        }
        true
    }

    /// After a failed attempt's back-off: queue the upload again, unless a writer reopened it
    /// and no `fsync` waits (its close queues it).
    async fn retry(&self, upload: &Arc<Upload>) {
        if !upload.staging.has_writers() || upload.syncing.load(Ordering::SeqCst) > 0 {
            let _ = self.enqueue(upload).await;
        }
    }

    fn forget(&self, upload: &Upload) {
        self.uploads.lock().unwrap().remove(&upload.id);
        self.journal.remove(&upload.id);
        self.drained.notify_waiters();
    }

    async fn put_record(&self, record: Record) -> Result<()> {
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || journal.put(&record).map_err(staging::io))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
    }

    async fn check_quota(&self, upload: &Upload, size: u64) -> Result<()> {
        let Some(quota) = self.storages[upload.storage].quota().await else { return Ok(()) };
        let staged_elsewhere: u64 = self
            .pending()
            .iter()
            .filter(|u| u.storage == upload.storage && u.id != upload.id)
            .map(|u| u.staging.size())
            .sum();
        let free = quota.total.saturating_sub(quota.used).saturating_sub(staged_elsewhere);
        if quota.total > 0 && size > free {
            return Err(Error::NoSpace(format!(
                "{} needs {size} bytes; the drive has {free} free",
                upload.record().shown_path()
            )));
        }
        Ok(())
    }

    /// Wait while the bytes staged and not landed exceed the budget, unless this file is the
    /// only one staged (then nothing could drain).
    async fn wait_for_budget(&self, upload: &Upload) {
        loop {
            let drained = self.drained.notified();
            let (total, others) = {
                let uploads = self.uploads.lock().unwrap();
                let total: u64 = uploads.values().map(|u| u.staging.size()).sum();
                (total, uploads.values().any(|u| u.id != upload.id && u.phase() != Phase::Writing))
            };
            if total <= self.budget || !others {
                return;
            }
            tracing::debug!(total, budget = self.budget, "staging over budget; waiting for uploads to drain");
            let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
        }
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }
}
