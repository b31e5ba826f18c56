//! Uploads (pikpak-protocol.md §8.7): init, bytes to the object store, wait for completion.
//!
//! 1. Init `POST files` with `UPLOAD_TYPE_RESUMABLE`, the size and the GCID. When the service
//!    already holds the content (or the file is empty) the new file is complete at once and no
//!    byte is sent (instant upload). A refused init is retried only after a rate limit
//!    (`PikPak::call`); code 8 (quota) is `Error::NoSpace` with nothing created.
//! 2. Otherwise the bytes go to the object store with the init's temporary credentials
//!    ([`super::store`]): one PUT up to [`SINGLE_PUT_MAX`], else a multipart upload of
//!    [`part_size`] parts, [`PARTS_IN_FLIGHT`] at a time, each read from the staging file at
//!    its offset. Expired credentials cannot be renewed for the same file: the pending file is
//!    trashed and the upload starts over with a new init (a few times at most).
//! 3. The service notices the object and flips the file to `PHASE_TYPE_COMPLETE`; we poll
//!    `files/{id}` for it, then check its size and GCID against the staged ones.
//!
//! A failure after init trashes the pending file and deletes its upload task, so nothing half
//! made stays behind; the core tries the whole upload again later when the error is transient.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::json;

use super::PikPak;
use super::api::{File, NewFile, UploadParams};
use super::store::{Body, Store, StoreError, xml_text};
use super::write::{PHASE_COMPLETE, Poll};
use crate::drivers::{Entry, PARTS_IN_FLIGHT, Progress, Staged, decode};
use crate::error::{Error, Result};

const MIB: u64 = 1 << 20;
/// Up to this size one PUT; above it multipart (what OpenList's OSS client does, §8.7).
pub const SINGLE_PUT_MAX: u64 = 10 * MIB;
/// Parts are at least this big (fewer requests, each signed and retried on its own) ...
const MIN_PART: u64 = 4 * MIB;
/// ... a large file's are about 1/[`PARTS_OF_A_LARGE_FILE`] of it, up to [`MAX_GROWN_PART`]:
/// each part waits a round trip before its bytes flow and climbs TCP slow start, so over the
/// benchmark's 60 ms path 4 MiB parts (0.2 s each at 20 MB/s) moved 1 GiB at about 0.6x of
/// eight connections' worth, and a part several times that long wastes far less ...
const PARTS_OF_A_LARGE_FILE: u64 = 64;
const MAX_GROWN_PART: u64 = 64 * MIB;
/// ... and there are at most about this many (OSS allows 10000; OpenList plans up to 1000).
const TARGET_PARTS: u64 = 1000;
/// New inits after the credentials expired mid-upload, before giving up (transiently).
const MAX_RESTARTS: u32 = 3;
/// How long the service may take to flip an uploaded file to COMPLETE.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(300);

/// The part size for a file of `size` bytes, in whole MiB: `size / 64` between 4 and 64 MiB,
/// and at least `size / 1000`.
pub fn part_size(size: u64) -> u64 {
    let mib = |n: u64| n.div_ceil(MIB).max(1).saturating_mul(MIB);
    let grown = mib(size.div_ceil(PARTS_OF_A_LARGE_FILE)).clamp(MIN_PART, MAX_GROWN_PART);
    grown.max(mib(size.div_ceil(TARGET_PARTS)))
}

/// The parts of a multipart upload: (part number from 1, offset, length).
pub fn plan(size: u64) -> Vec<(u32, u64, u64)> {
    let part = part_size(size);
    (0..size.div_ceil(part)).map(|i| (i as u32 + 1, i * part, part.min(size - i * part))).collect()
}

/// Why one attempt (one init's credentials) ended.
enum Attempt {
    Done(Entry),
    /// The credentials expired: init again.
    Expired,
    /// Only an instant upload was asked for, and the service does not have the content.
    NotHeld,
}

impl PikPak {
    pub(super) async fn upload_file(
        &self,
        parent: &Entry,
        name: &str,
        staged: &Staged,
        progress: &Progress,
    ) -> Result<Entry> {
        for restart in 0..=MAX_RESTARTS {
            progress.store(0, Ordering::Relaxed);
            if restart > 0 {
                tracing::debug!(restart, "upload credentials expired; starting over with a new init");
            }
            if let Attempt::Done(entry) = self.upload_attempt(parent, name, staged, progress, false).await? {
                return Ok(entry);
            }
        }
        Err(Error::Network(format!("upload credentials expired {} times in a row", MAX_RESTARTS + 1)))
    }

    /// A file made from content the service has, by its GCID (nothing sent); `None` when it
    /// does not have it (the pending file the init made goes to the trash, with its task).
    pub(super) async fn upload_by_hash(
        &self,
        parent: &Entry,
        name: &str,
        size: u64,
        hash: &str,
    ) -> Result<Option<Entry>> {
        let staged = Staged::by_hash(size, hash);
        match self.upload_attempt(parent, name, &staged, &Progress::new(0), true).await? {
            Attempt::Done(entry) => Ok(Some(entry)),
            Attempt::Expired | Attempt::NotHeld => Ok(None),
        }
    }

    async fn upload_attempt(
        &self,
        parent: &Entry,
        name: &str,
        staged: &Staged,
        progress: &Progress,
        instant_only: bool,
    ) -> Result<Attempt> {
        let body = json!({
            "kind": "drive#file",
            "name": name,
            "size": staged.size.to_string(),
            "hash": staged.hash.to_ascii_uppercase(),
            "upload_type": "UPLOAD_TYPE_RESUMABLE",
            "objProvider": { "provider": "UPLOAD_TYPE_UNKNOWN" },
            "parent_id": parent.id,
            "folder_type": "NORMAL",
        });
        let v = self.call(Method::POST, "/drive/v1/files", &[], Some(&body)).await?;
        let created: NewFile = decode("upload init", v)?;
        let file = created.file.ok_or_else(|| Error::InvalidResponse("the upload init has no file".into()))?;
        let task_id = created.task.map(|t| t.id).unwrap_or_default();
        if instant_only && file.phase != PHASE_COMPLETE {
            self.discard(&file.id, &task_id).await;
            return Ok(Attempt::NotHeld);
        }
        if file.name != name {
            self.clear_leftovers(parent, name, &file.id).await;
        }
        let result = self.finish_upload(&file, created.resumable.map(|r| r.params), staged, progress).await;
        match result {
            Ok(entry) => Ok(Attempt::Done(entry)),
            Err(e) => {
                self.discard(&file.id, &task_id).await;
                if e.expired { Ok(Attempt::Expired) } else { Err(e.error) }
            }
        }
    }

    /// Everything after init: the bytes (unless instant), completion, the check.
    async fn finish_upload(
        &self,
        file: &File,
        params: Option<UploadParams>,
        staged: &Staged,
        progress: &Progress,
    ) -> Result<Entry, StoreError> {
        let instant = file.phase == PHASE_COMPLETE;
        let done = if instant {
            tracing::debug!(size = staged.size, "instant upload: the service has the content");
            if file.hash.is_empty() || file.size.is_none() { self.detail(&file.id).await? } else { file.clone() }
        } else {
            let params = params.ok_or_else(|| Error::InvalidResponse("a pending upload without credentials".into()))?;
            let store = Store { http: &self.client.http, params: &params };
            if staged.size <= SINGLE_PUT_MAX {
                put_whole(&store, staged, progress).await?;
            } else {
                put_multipart(&store, staged, progress).await?;
            }
            self.wait_complete(&file.id).await?
        };
        if done.size != Some(staged.size) || !done.hash.eq_ignore_ascii_case(&staged.hash) {
            return Err(Error::Remote(format!(
                "PikPak stored {} bytes with GCID {:?}; {} bytes with GCID {} were uploaded (the copy was trashed)",
                done.size.map_or("?".into(), |s| s.to_string()),
                done.hash,
                staged.size,
                staged.hash
            ))
            .into());
        }
        Ok(Self::entry(&done))
    }

    /// The service stored the upload under another name: if what holds `name` is a file still
    /// pending (an upload killed mid-way, by an earlier run of ours: it is invisible in
    /// listings and never completes), it goes to the trash, so the core can rename the upload
    /// back. A complete file holding the name is the core's to replace.
    async fn clear_leftovers(&self, parent: &Entry, name: &str, keep: &str) {
        const PENDING: &str = r#"{"phase":{"eq":"PHASE_TYPE_PENDING"},"trashed":{"eq":false}}"#;
        let fetch = |token: String| async move {
            let query = [
                ("parent_id", parent.id.as_str()),
                ("limit", "100"),
                ("filters", PENDING),
                ("page_token", token.as_str()),
            ];
            let v = self.call(Method::GET, "/drive/v1/files", &query, None).await?;
            decode::<super::api::FileList>("file list", v)
        };
        let leftovers = super::collect_pages(&parent.id, fetch, |f| {
            (f.name == name && f.id != keep && f.phase != PHASE_COMPLETE).then(|| Self::entry(f))
        })
        .await;
        for leftover in leftovers.unwrap_or_default() {
            tracing::info!(name, "trashing a half-finished upload an earlier run left under this name");
            if let Err(e) = self.trash_id(&leftover.id).await {
                tracing::warn!(name, "cannot trash a half-finished upload: {e}");
            }
        }
    }

    /// Poll `files/{id}` until the service lists it complete.
    async fn wait_complete(&self, id: &str) -> Result<File> {
        let mut poll = Poll::new(COMPLETION_TIMEOUT);
        loop {
            let f = self.detail(id).await?;
            if f.phase == PHASE_COMPLETE {
                return Ok(f);
            }
            if !poll.wait().await {
                return Err(Error::Network(format!("the upload did not complete within {COMPLETION_TIMEOUT:?}")));
            }
        }
    }

    /// Remove what a failed upload left: the pending file (to the trash) and its upload task.
    /// Failures here are logged; the upload's own error is what the caller reports.
    async fn discard(&self, file_id: &str, task_id: &str) {
        if let Err(e) = self.trash_id(file_id).await {
            tracing::warn!(file_id, "cannot trash a failed upload's file: {e}");
        }
        if !task_id.is_empty() {
            let query = [("task_ids", task_id), ("delete_files", "false")];
            if let Err(e) = self.call(Method::DELETE, "/drive/v1/tasks", &query, None).await {
                tracing::warn!(task_id, "cannot delete a failed upload's task: {e}");
            }
        }
    }
}

async fn put_whole(store: &Store<'_>, staged: &Staged, progress: &Progress) -> Result<(), StoreError> {
    tracing::debug!(size = staged.size, "object store: one PUT");
    store.send(Method::PUT, &[], Body::File { path: &staged.path, offset: 0, len: staged.size }).await?;
    progress.store(staged.size, Ordering::Relaxed);
    Ok(())
}

async fn put_multipart(store: &Store<'_>, staged: &Staged, progress: &Progress) -> Result<(), StoreError> {
    let parts = plan(staged.size);
    tracing::debug!(size = staged.size, parts = parts.len(), "object store: multipart");
    let (_, init) = store.send(Method::POST, &[("uploads", None)], Body::Empty).await?;
    let upload_id = xml_text(&init, "UploadId")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::InvalidResponse("the multipart init has no UploadId".into()))?
        .to_owned();
    let id = upload_id.as_str();
    let sent = futures_util::stream::iter(parts)
        .map(|(number, offset, len)| async move {
            let n = number.to_string();
            let subs = [("partNumber", Some(n.as_str())), ("uploadId", Some(id))];
            let (headers, _) = store.send(Method::PUT, &subs, Body::File { path: &staged.path, offset, len }).await?;
            let etag = headers.get("etag").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            if etag.is_empty() {
                return Err(Error::InvalidResponse(format!("part {number} came back without an ETag")).into());
            }
            progress.fetch_add(len, Ordering::Relaxed);
            tracing::trace!(part = number, len, "part stored");
            Ok::<_, StoreError>((number, etag))
        })
        .buffer_unordered(PARTS_IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await;
    let mut etags = match sent {
        Ok(etags) => etags,
        Err(e) => {
            if !e.expired {
                let abort = store.send(Method::DELETE, &[("uploadId", Some(id))], Body::Empty).await;
                if let Err(a) = abort {
                    tracing::debug!("cannot abort the multipart upload: {}", a.error);
                }
            }
            return Err(e);
        }
    };
    etags.sort_by_key(|(n, _)| *n);
    let xml = complete_xml(&etags);
    // The answer is JSON on the real service (§8.7): not parsed.
    store.send(Method::POST, &[("uploadId", Some(id))], Body::Xml(&xml)).await?;
    Ok(())
}

/// The body of CompleteMultipartUpload.
fn complete_xml(etags: &[(u32, String)]) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let parts: String = etags
        .iter()
        .map(|(n, etag)| format!("<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>", escape(etag)))
        .collect();
    format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes() {
        assert_eq!(part_size(11 * MIB), 4 * MIB);
        assert_eq!(part_size(256 * MIB), 4 * MIB);
        assert_eq!(part_size(256 * MIB + 1), 5 * MIB);
        assert_eq!(part_size(1 << 30), 16 * MIB);
        assert_eq!(part_size(10 << 30), 64 * MIB);
        assert_eq!(part_size(100 << 30), 103 * MIB); // 1,000 parts of 102.4 MiB rounded up
        assert_eq!(part_size(u64::MAX / 2) % MIB, 0);
    }

    #[test]
    fn plans_cover_the_file_exactly() {
        for size in [SINGLE_PUT_MAX + 1, 12 * MIB, 40 * MIB, 4000 * MIB + 1, (10 << 30) + 7] {
            let parts = plan(size);
            assert!(parts.len() <= 1000, "{size}");
            let mut at = 0;
            for (i, (n, offset, len)) in parts.iter().enumerate() {
                assert_eq!((*n as usize, *offset), (i + 1, at));
                assert!(*len > 0 && *len <= part_size(size));
                at += len;
            }
            assert_eq!(at, size);
        }
        assert_eq!(plan(12 * MIB), [(1, 0, 4 * MIB), (2, 4 * MIB, 4 * MIB), (3, 8 * MIB, 4 * MIB)]);
        assert_eq!(plan(9 * MIB).last(), Some(&(3, 8 * MIB, MIB)));
    }

    #[test]
    fn completion_lists_parts_in_order() {
        let xml = complete_xml(&[(1, "\"A1\"".into()), (2, "\"B&2\"".into())]);
        assert_eq!(
            xml,
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"A1\"</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>\"B&amp;2\"</ETag></Part></CompleteMultipartUpload>"
        );
    }
}
