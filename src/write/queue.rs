//! The upload workers: a bounded pool that takes queued uploads in order, hands each to its
//! driver, settles the name and place it landed under, and retries failures with back-off.
//!
//! After the driver's `upload` returns, the file may not be where the user left it: it may
//! have been renamed or moved while it was uploading (the record says where it belongs now),
//! or the provider may have stored it under another name because the name was taken (PikPak
//! appends `(1)`). Then the file that holds the name (the one this write replaces) goes to the
//! trash and the upload is renamed to it: the user gets what rename(2) and `O_TRUNC` promise,
//! never a silent duplicate. A folder holding the name is left alone and the duplicate is
//! reported.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Phase, Settle, Upload, Writes};
use crate::drivers::{Entry, Progress, Staged, Writable};
use crate::error::{Error, Result};
use crate::stats::StorageStats;
use crate::storage::Storage;

/// Uploads running at once, across storages. A small file costs several round trips (two API
/// calls and a PUT on PikPak, four and a PUT on 123pan) and no bandwidth, so many overlap:
/// 1,000 files of 4 KiB into 123pan over a 60 ms path took 100 s with 3 at once. PikPak's
/// own API pacing (`drivers::pikpak::client`) still spaces its calls, so its 429 on bursts
/// of uploads (OpenList#229) stays rare; 123pan's bans are reported for 100+ uploads at once.
const WORKERS: usize = 8;
/// Of those, uploads of files over [`LARGE`] at once: each already runs
/// `drivers::PARTS_IN_FLIGHT` parts, and more would only split the bandwidth.
pub(super) const LARGE_AT_ONCE: usize = 3;
const LARGE: u64 = 16 << 20;
/// Attempts of an upload that keeps failing transiently before it is failed for good.
const MAX_ATTEMPTS: u32 = 6;
/// Back-off after the first failed attempt, doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(120);
/// Wait before trying again on a storage that is down (each try asks it to log in again only
/// as often as `crate::storage` allows).
const DOWN_BACKOFF: Duration = Duration::from_secs(15);

pub(super) fn spawn_workers(writes: &Arc<Writes>) {
    for _ in 0..WORKERS {
        let writes = writes.clone();
        tokio::spawn(async move {
            loop {
                let upload = next(&writes).await;
                work(&writes, &upload).await;
            }
        });
    }
}

async fn next(writes: &Writes) -> Arc<Upload> {
    loop {
        let notified = writes.queued.notified();
        let id = writes.queue.lock().unwrap().pop_front();
        match id.and_then(|id| writes.get(&id)) {
            Some(upload) => {
                // Reopened for writing since it was queued: its last close queues it again.
                let taken = upload.phase.send_if_modified(|p| {
                    let queued = *p == Phase::Queued;
                    if queued {
                        *p = Phase::Uploading;
                    }
                    queued
                });
                if taken {
                    return upload;
                }
            }
            None => notified.await,
        }
    }
}

async fn work(writes: &Arc<Writes>, upload: &Arc<Upload>) {
    let storage = &writes.storages[upload.storage];
    let record = upload.record();
    let path = record.shown_path();
    let _large = if record.size > LARGE { writes.large.acquire().await.ok() } else { None };
    let started = Instant::now();
    // What the provider gets is at least this version of the staged file (writes may go on
    // while it is read: then it is uploaded again, see below).
    let version = upload.staging.version();
    StorageStats::add(&storage.stats.uploads_started, 1);
    tracing::info!(path = %path, size = record.size, "upload started");
    let progress = Arc::new(Progress::new(0));
    let reporter = tokio::spawn(report_progress(writes.clone(), upload.id.clone(), progress.clone()));
    // Uploads share the providers' rate limits with reads, and reads keep priority.
    let result = crate::http::limit::background(upload_once(writes, upload, version, &progress)).await;
    reporter.abort();
    writes.journal.clear_running(&upload.id);
    let sent = progress.load(Ordering::Relaxed);
    StorageStats::add(&storage.stats.bytes_uploaded, sent);
    match result {
        Ok(entry) => {
            let record = upload.record();
            StorageStats::add(&storage.stats.uploads_done, 1);
            if sent == 0 && record.size > 0 {
                StorageStats::add(&storage.stats.uploads_instant, 1);
                tracing::info!(path = %record.shown_path(), size = record.size, "uploaded instantly: the provider had the content");
            } else {
                let secs = started.elapsed().as_secs_f64();
                tracing::info!(path = %record.shown_path(), size = record.size, secs = format!("{secs:.1}"), "uploaded");
            }
            if upload.staging.has_writers() || upload.staging.version() != version {
                interim(writes, upload, entry, version).await;
            } else {
                upload.sent.fetch_max(version, Ordering::SeqCst);
                writes.land(upload, &entry);
            }
        }
        Err(_) if upload.cancelled.load(Ordering::SeqCst) => {
            tracing::info!(path = %path, "upload of a deleted file stopped");
            writes.forget(upload);
        }
        Err(err) => failed(writes, upload, err).await,
    }
}

/// The upload landed while a handle still writes to the file (an `fsync` started it), or
/// after writes it did not read: the copy is kept aside and the file stays pending. The last
/// close shows that copy when nothing changed since, or uploads again, and the newer copy
/// replaces it ([`upload_once`]).
async fn interim(writes: &Arc<Writes>, upload: &Arc<Upload>, entry: Entry, version: u64) {
    {
        let record = upload.record.lock().unwrap();
        *upload.interim.lock().unwrap() = Some((entry, record.parent_id.clone()));
        upload.settled.store(false, Ordering::SeqCst);
    }
    upload.sent.fetch_max(version, Ordering::SeqCst);
    upload.phase.send_if_modified(|p| {
        let uploading = *p == Phase::Uploading;
        if uploading {
            *p = Phase::Writing;
        }
        uploading
    });
    // The last writer may have closed meanwhile, finding the upload still running.
    if !upload.staging.has_writers() {
        let _ = writes.enqueue(upload).await;
    }
}

async fn failed(writes: &Arc<Writes>, upload: &Arc<Upload>, err: Error) {
    let storage = &writes.storages[upload.storage];
    // A storage that is down (its login refused) comes back by itself or when the user fixes
    // the account: its uploads wait for it, however long, without using up their attempts.
    let down = matches!(err, Error::StorageDown { .. });
    let record = {
        let mut record = upload.record.lock().unwrap();
        record.attempts += u32::from(!down);
        record.last_error = Some(err.to_string());
        record.failed = !down && (!err.is_transient() || record.attempts >= MAX_ATTEMPTS);
        record.clone()
    };
    if let Err(put) = writes.put_record(record.clone()).await {
        tracing::error!(path = %record.shown_path(), error = %put, "cannot update the upload journal");
    }
    if record.failed {
        StorageStats::add(&storage.stats.uploads_failed, 1);
        tracing::error!(
            path = %record.shown_path(), attempts = record.attempts, error = %err,
            "upload failed for good; its staged copy is kept (see panmount uploads)"
        );
        upload.phase.send_replace(Phase::Failed(err.to_string()));
        writes.drained.notify_waiters();
        return;
    }
    let backoff = if down {
        DOWN_BACKOFF
    } else {
        (FIRST_BACKOFF * 2u32.pow(record.attempts.saturating_sub(1).min(10))).min(MAX_BACKOFF)
    };
    tracing::warn!(path = %record.shown_path(), attempt = record.attempts, error = %err, retry_in_secs = backoff.as_secs(), "upload failed; will retry");
    upload.phase.send_replace(Phase::Writing);
    let (writes, upload) = (writes.clone(), upload.clone());
    tokio::spawn(async move {
        tokio::time::sleep(backoff).await;
        writes.retry(&upload).await;
    });
}

/// Upload `version` of the staged file (or what the provider has of it already) and settle it.
async fn upload_once(writes: &Writes, upload: &Upload, version: u64, progress: &Progress) -> Result<Entry> {
    let storage = &writes.storages[upload.storage];
    storage.ensure_up().await?;
    let writable = storage.writer()?;
    let record = upload.record();
    // What an `fsync` or a provider's copy put there is this very version: only its name and
    // place are left to settle.
    let current = upload.interim.lock().unwrap().take_if(|_| upload.sent.load(Ordering::SeqCst) >= version);
    let (mut entry, mut at) = match current {
        Some(landed) => landed,
        None => (send(storage, writable, upload, &record, progress).await?, record.parent_id.clone()),
    };
    // Renamed while this ran? Settle again, until the record stays as it was. Deleted? Trash.
    loop {
        if upload.cancelled.load(Ordering::SeqCst) {
            return Err(trash_deleted(writable, &record, &entry).await);
        }
        let want = upload.record();
        entry = settle(writes, &at, entry, &want).await?;
        match upload.settle_if_unchanged(&want.parent_id, &want.name) {
            Settle::Done => return Ok(entry),
            Settle::Changed => at = want.parent_id,
            Settle::Cancelled => return Err(trash_deleted(writable, &record, &entry).await),
        }
    }
}

/// The staged bytes to the provider (by hash alone for a provider's copy), replacing what an
/// earlier `fsync` sent.
async fn send(
    storage: &Storage,
    writable: &dyn Writable,
    upload: &Upload,
    record: &super::Record,
    progress: &Progress,
) -> Result<Entry> {
    let parent = Entry::root_folder(&record.parent_id);
    let entry = match &record.copied_from {
        Some(from) => {
            let hash = &from.hash.value;
            let made = storage.checked(writable.upload_by_hash(&parent, &record.name, record.size, hash).await)?;
            made.ok_or_else(|| {
                Error::Remote(format!(
                    "the provider no longer has the content copied from {} (hash {hash})",
                    from.entry.name
                ))
            })?
        }
        None => {
            let hash = match record.hash.clone() {
                Some(hash) => hash,
                // Writes came out of order: hash the staged bytes now (blocking reads of a local file).
                None => tokio::task::block_in_place(|| upload.staging.hash_from_file(writable))?,
            };
            let staged = Staged { path: upload.staging.path.clone(), size: upload.staging.size(), hash };
            storage.checked(writable.upload(&parent, &record.name, &staged, progress).await)?
        }
    };
    // The copy an `fsync` sent earlier is replaced by this one.
    let earlier = upload.interim.lock().unwrap().take();
    if let Some((old, _)) = earlier
        && old.id != entry.id
        && let Err(err) = writable.trash(&old).await
    {
        tracing::warn!(path = %record.shown_path(), error = %err, "cannot trash the copy an fsync sent; replacing it by name");
    }
    Ok(entry)
}

/// The file was deleted while it uploaded: what landed goes to the trash.
async fn trash_deleted(writable: &dyn crate::drivers::Writable, record: &super::Record, entry: &Entry) -> Error {
    if let Err(err) = writable.trash(entry).await {
        tracing::warn!(path = %record.shown_path(), error = %err, "cannot trash the upload of a deleted file");
    }
    Error::NotFound
}

/// Put the landed `entry` (in `uploaded_to`) where the record says the file is now, under its
/// name, replacing the file that holds that name.
async fn settle(writes: &Writes, uploaded_to: &str, entry: Entry, want: &super::Record) -> Result<Entry> {
    let storage = writes.storages.iter().find(|s| s.path == want.storage).ok_or(Error::NotFound)?;
    let writable = storage.writer()?;
    if entry.name == want.name && uploaded_to == want.parent_id {
        return Ok(entry);
    }
    let target = Entry::root_folder(&want.parent_id);
    let holder = storage
        .checked(storage.driver.list(&target).await)?
        .into_iter()
        .find(|e| e.name == want.name && e.id != entry.id);
    match holder {
        Some(folder) if folder.is_dir => {
            tracing::warn!(path = %want.shown_path(), stored_as = %entry.name, "a folder holds the name; the upload keeps the provider's name");
            return Ok(entry);
        }
        Some(old) => {
            tracing::debug!(path = %want.shown_path(), "trashing the file this upload replaces");
            storage.checked(writable.trash(&old).await)?;
        }
        None => {}
    }
    storage.checked(writable.rename(&entry, &Entry::root_folder(uploaded_to), &target, &want.name).await)
}

async fn report_progress(writes: Arc<Writes>, id: String, progress: Arc<Progress>) {
    let pid = std::process::id();
    loop {
        let sent = progress.load(Ordering::Relaxed);
        let journal = writes.journal.clone();
        let id = id.clone();
        let _ = tokio::task::spawn_blocking(move || journal.set_running(&id, super::Running { pid, sent })).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
