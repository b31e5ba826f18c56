//! Uploads (pan123-protocol.md §2.7): the presigned flow of the current web client.
//!
//! 1. `upload_request` with the MD5 (`etag`) and size. `Reuse: true`, or no `Key`, is an
//!    instant upload: the service made the file from content it has, and no byte is sent.
//!    `duplicate: 1` (keep both): a name that is taken makes the service store the upload under
//!    another name, and the core then trashes the old file and renames this one back. The
//!    protocol's overwrite (`duplicate: 2`) is not used: whether the file it replaces stays
//!    recoverable is unconfirmed, and nothing panmount replaces may be deleted for good.
//! 2. Otherwise the parts: [`plan`] follows the answer's `SliceSize` when it is sane (OpenList
//!    ignores it and uses 16 MiB, which is the fallback; what the service does with another
//!    size is unconfirmed, §7). Presigned URLs come from `s3_upload_object/auth` (one part) or
//!    `s3_repare_upload_parts_batch` (ten at a time, end exclusive); the parts go up
//!    [`PARTS_IN_FLIGHT`] at a time, streamed from the staging file with `Content-Length` and
//!    no authorization header, each retried with back-off. A 403 means the URL expired: the
//!    URLs of the parts not sent yet are fetched again, once for any number of parts that hit
//!    it together ([`Urls`]).
//! 3. `upload_complete/v2` makes the file; its `file_info` (whose `FileId` may differ from the
//!    ticket's) lacks `S3KeyFlag` and `UpdateAt` on the web, so `file/info` fills them in. The
//!    file is checked for size and MD5 against the staged ones, and a copy that does not match
//!    goes to the trash.
//!
//! A 0-byte file is reported to be refused by the service; its MD5 may also hit `Reuse`. Both
//! are handled: a refusal is a failed upload that says why.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::{StreamExt, TryStreamExt};
use serde_json::json;

use super::Pan123;
use super::api::{Completed, PresignedUrls, UploadTicket};
use super::write::{UPLOAD_REQUEST_PATH, file_id};
use crate::drivers::{Entry, PARTS_IN_FLIGHT, Progress, Staged};
use crate::error::{Error, Result};
use crate::http::retry::{Policy, retry};
use crate::http::status;

const MIB: u64 = 1 << 20;
/// OpenList's part size, used when the service suggests none (or an odd one).
const DEFAULT_PART: u64 = 16 * MIB;
/// A suggested part size outside these bounds is not taken.
const PART_BOUNDS: (u64, u64) = (MIB, 1 << 30);
/// The object store's limit on parts (S3's).
const MAX_PARTS: u64 = 10_000;
/// Presigned URLs asked for per batch call (OpenList's batch).
const URL_BATCH: u32 = 10;
/// Tries of one part after the first (OpenList gives each part 3 attempts).
const PART_RETRIES: u32 = 4;
/// Times the URLs may be fetched again within one upload before it fails (transiently).
const MAX_URL_REFRESHES: u32 = 5;
const UPLOAD_AUTH_PATH: &str = "/b/api/file/s3_upload_object/auth";
const PARTS_BATCH_PATH: &str = "/b/api/file/s3_repare_upload_parts_batch";
const COMPLETE_PATH: &str = "/b/api/file/upload_complete/v2";

/// The parts of a file of `size` bytes: (part number from 1, offset, length). At least one
/// part, even for an empty file.
pub fn plan(size: u64, suggested: Option<i64>) -> Vec<(u32, u64, u64)> {
    let part = suggested
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| (PART_BOUNDS.0..=PART_BOUNDS.1).contains(s))
        .unwrap_or(DEFAULT_PART)
        .max(size.div_ceil(MAX_PARTS));
    let count = size.div_ceil(part).max(1);
    (0..count).map(|i| (i as u32 + 1, i * part, part.min(size - i * part))).collect()
}

/// A failed part PUT: the error, and whether its URL had expired (403).
struct PartError {
    error: Error,
    expired: bool,
}

impl AsRef<Error> for PartError {
    fn as_ref(&self) -> &Error {
        &self.error
    }
}

/// The presigned URL of every part, and the refreshes that replace them after a 403.
struct Urls {
    by_part: Mutex<HashMap<u32, String>>,
    /// Bumped by each refresh: a part that failed with an older URL just takes the new one.
    generation: AtomicU32,
    refresh: tokio::sync::Mutex<()>,
    sent: Mutex<BTreeSet<u32>>,
}

impl Urls {
    fn get(&self, part: u32) -> Result<(String, u32)> {
        let generation = self.generation.load(Ordering::SeqCst);
        let url = self.by_part.lock().unwrap().get(&part).cloned();
        url.map(|u| (u, generation))
            .ok_or_else(|| Error::InvalidResponse(format!("123pan gave no upload URL for part {part}")))
    }
}

impl Pan123 {
    pub(super) async fn upload_file(
        &self,
        parent: &Entry,
        name: &str,
        staged: &Staged,
        progress: &Progress,
    ) -> Result<Entry> {
        progress.store(0, Ordering::Relaxed);
        let ticket = self.request_upload(parent, name, staged).await?;
        let done = if ticket.is_instant() {
            tracing::debug!(size = staged.size, "instant upload: the service has the content");
            self.reused(parent, name, &ticket, staged).await?
        } else {
            let parts = plan(staged.size, ticket.slice_size);
            tracing::debug!(size = staged.size, parts = parts.len(), "123pan upload: presigned parts");
            self.put_parts(&ticket, &parts, staged, progress).await?;
            let body = json!({
                "StorageNode": ticket.storage_node, "bucket": ticket.bucket, "fileId": ticket.file_id,
                "fileSize": staged.size, "isMultipart": parts.len() > 1, "key": ticket.key, "uploadId": ticket.upload_id,
            });
            let completed: Completed = self.client.act(COMPLETE_PATH, &body).await?;
            match completed.file_info {
                // As listed: what a read needs (`S3KeyFlag`) and the time are there.
                Some(file) if !file.s3_key_flag.is_empty() && !file.update_at.is_empty() => super::entry_of(&file),
                // The web's `file_info` has neither (§5): ask, so the entry is the one listings
                // will show (its version keys the caches and the times kept by panmount).
                Some(file) => self.info(file.file_id).await?,
                None => self.info(ticket.file_id).await?,
            }
        };
        self.check_stored(name, done, staged).await
    }

    /// A file made from content the service has, by its MD5 (nothing sent); `None` when it
    /// does not have it. Nothing is made then: the ticket is just not used (the file exists
    /// only once `upload_complete` is called).
    pub(super) async fn upload_by_hash(
        &self,
        parent: &Entry,
        name: &str,
        size: u64,
        hash: &str,
    ) -> Result<Option<Entry>> {
        let staged = Staged::by_hash(size, hash);
        let ticket = self.request_upload(parent, name, &staged).await?;
        if !ticket.is_instant() {
            return Ok(None);
        }
        let done = self.reused(parent, name, &ticket, &staged).await?;
        self.check_stored(name, done, &staged).await.map(Some)
    }

    /// `upload_request`: an instant upload, or the ticket for the parts.
    async fn request_upload(&self, parent: &Entry, name: &str, staged: &Staged) -> Result<UploadTicket> {
        let body = json!({
            "driveId": 0, "duplicate": 1, "etag": staged.hash, "fileName": name,
            "parentFileId": file_id(parent)?, "size": staged.size, "type": 0, "RequestSource": null,
        });
        self.client.act(UPLOAD_REQUEST_PATH, &body).await.map_err(|e| match e {
            Error::Remote(why) if staged.size == 0 => {
                Error::Remote(format!("123pan refused an empty file ({why}); it is known to refuse 0-byte uploads"))
            }
            other => other,
        })
    }

    /// The stored file has the staged size and MD5; else it goes to the trash and this fails.
    async fn check_stored(&self, name: &str, done: Entry, staged: &Staged) -> Result<Entry> {
        let etag = super::FileRef::of(&done).map(|f| f.etag).unwrap_or_default();
        if done.size != Some(staged.size) || !etag.eq_ignore_ascii_case(&staged.hash) {
            if let Err(e) = crate::drivers::Writable::trash(self, &done).await {
                tracing::warn!(name, "cannot trash an upload that came out wrong: {e}");
            }
            return Err(Error::Remote(format!(
                "123pan stored {} bytes with MD5 {etag:?}; {} bytes with MD5 {} were uploaded (the copy was trashed)",
                done.size.map_or("?".into(), |s| s.to_string()),
                staged.size,
                staged.hash
            )));
        }
        Ok(done)
    }

    /// The file an instant upload made: by the ticket's id, or (id 0, seen by RC) the newest
    /// file in `parent` with the content, under `name` or the name the service gave instead.
    async fn reused(&self, parent: &Entry, name: &str, ticket: &UploadTicket, staged: &Staged) -> Result<Entry> {
        if ticket.file_id != 0 {
            return self.info(ticket.file_id).await;
        }
        let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
        crate::drivers::Driver::list(self, parent)
            .await?
            .into_iter()
            .filter(|e| !e.is_dir && e.size == Some(staged.size) && e.name.starts_with(stem))
            .filter(|e| super::FileRef::of(e).is_ok_and(|f| f.etag.eq_ignore_ascii_case(&staged.hash)))
            .max_by_key(|e| e.id.parse::<i64>().unwrap_or(0))
            .ok_or_else(|| Error::InvalidResponse(format!("123pan reused content for {name:?} but does not list it")))
    }

    /// Every part to its presigned URL, [`PARTS_IN_FLIGHT`] at a time.
    async fn put_parts(
        &self,
        ticket: &UploadTicket,
        parts: &[(u32, u64, u64)],
        staged: &Staged,
        progress: &Progress,
    ) -> Result<()> {
        let numbers: Vec<u32> = parts.iter().map(|p| p.0).collect();
        let urls = Urls {
            by_part: Mutex::new(self.presign(ticket, &numbers, parts.len() == 1).await?),
            generation: AtomicU32::new(0),
            refresh: tokio::sync::Mutex::new(()),
            sent: Mutex::default(),
        };
        let urls = &urls;
        futures_util::stream::iter(parts.iter().copied())
            .map(|(number, offset, len)| async move {
                loop {
                    let (url, generation) = urls.get(number)?;
                    let policy = Policy::read("upload part", PART_RETRIES);
                    match retry(&policy, || self.put_part(&url, staged, offset, len)).await {
                        Ok(()) => break,
                        Err(e) if e.expired => self.refresh(ticket, urls, parts, generation).await?,
                        Err(e) => return Err(e.error),
                    }
                }
                urls.sent.lock().unwrap().insert(number);
                progress.fetch_add(len, Ordering::Relaxed);
                tracing::trace!(part = number, len, "part stored");
                Ok(())
            })
            .buffer_unordered(PARTS_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// New URLs for the parts not sent yet, after a 403 on a URL of `generation`; nothing when
    /// another part's 403 already brought newer ones.
    async fn refresh(
        &self,
        ticket: &UploadTicket,
        urls: &Urls,
        parts: &[(u32, u64, u64)],
        generation: u32,
    ) -> Result<()> {
        let _one_at_a_time = urls.refresh.lock().await;
        if urls.generation.load(Ordering::SeqCst) != generation {
            return Ok(());
        }
        if generation >= MAX_URL_REFRESHES {
            return Err(Error::Network(format!("the upload URLs were refused {} times", generation + 1)));
        }
        let left: Vec<u32> = {
            let sent = urls.sent.lock().unwrap();
            parts.iter().map(|p| p.0).filter(|n| !sent.contains(n)).collect()
        };
        tracing::debug!(parts = left.len(), "upload URLs expired; fetching new ones");
        let fresh = self.presign(ticket, &left, parts.len() == 1).await?;
        urls.by_part.lock().unwrap().extend(fresh);
        urls.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Presigned URLs for `numbers` (ascending): one `s3_upload_object/auth` call for an upload
    /// of a `single` part, else batches of [`URL_BATCH`] consecutive parts.
    async fn presign(&self, ticket: &UploadTicket, numbers: &[u32], single: bool) -> Result<HashMap<u32, String>> {
        let mut out = HashMap::new();
        let mut i = 0;
        while i < numbers.len() {
            let start = numbers[i];
            let mut end = start + 1;
            while i + 1 < numbers.len() && numbers[i + 1] == end && end - start < URL_BATCH {
                i += 1;
                end += 1;
            }
            i += 1;
            let body = json!({
                "StorageNode": ticket.storage_node, "bucket": ticket.bucket, "key": ticket.key,
                "partNumberEnd": end, "partNumberStart": start, "uploadId": ticket.upload_id,
            });
            let path = if single { UPLOAD_AUTH_PATH } else { PARTS_BATCH_PATH };
            let got: PresignedUrls = self.client.post_paced(path, &body).await?;
            for (number, url) in got.urls {
                if let Ok(n) = number.trim().parse::<u32>() {
                    out.insert(n, url);
                }
            }
        }
        Ok(out)
    }

    /// One PUT of a part's bytes to its presigned URL.
    async fn put_part(&self, url: &str, staged: &Staged, offset: u64, len: u64) -> Result<(), PartError> {
        let fail = |error: Error| PartError { error, expired: false };
        let body = crate::http::file_body(&staged.path, offset, len).await.map_err(fail)?;
        let response = self
            .upload_http
            .put(url)
            .header("Content-Length", len.to_string())
            .header("Referer", format!("{}/", super::client::WEB_ORIGIN))
            .body(body)
            .send()
            .await
            .map_err(|e| fail(e.into()))?;
        let code = response.status().as_u16();
        if status::is_success(code) {
            return Ok(());
        }
        tracing::debug!(status = code, "object store refused a part");
        if code == 403 {
            return Err(PartError {
                error: Error::Remote("the upload URL was refused (HTTP 403)".into()),
                expired: true,
            });
        }
        Err(fail(
            status::transient(code, response.headers())
                .unwrap_or_else(|| Error::Remote(format!("the object store refused a part: HTTP {code}"))),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_a_sane_slice_size_and_cover_the_file() {
        assert_eq!(plan(0, None), [(1, 0, 0)]);
        assert_eq!(plan(5, Some(16 * MIB as i64)), [(1, 0, 5)]);
        assert_eq!(plan(40 * MIB, None).len(), 3);
        assert_eq!(plan(40 * MIB, Some(32 * MIB as i64)), [(1, 0, 32 * MIB), (2, 32 * MIB, 8 * MIB)]);
        // Nonsense suggestions fall back to 16 MiB.
        assert_eq!(plan(40 * MIB, Some(10)).len(), 3);
        assert_eq!(plan(40 * MIB, Some(-1)).len(), 3);
        for size in [1, 16 * MIB, 16 * MIB + 1, 1 << 30, 200 << 30] {
            let parts = plan(size, None);
            assert!(parts.len() as u64 <= MAX_PARTS);
            let mut at = 0;
            for (i, (n, offset, len)) in parts.iter().enumerate() {
                assert_eq!((*n as usize, *offset), (i + 1, at));
                assert!(*len > 0);
                at += len;
            }
            assert_eq!(at, size);
        }
    }
}
