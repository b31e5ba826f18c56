//! PikPak's [`Writable`]: folders, rename and move, trash (pikpak-protocol.md §8.1–§8.4);
//! uploads live in [`super::upload`], the GCID in [`super::gcid`].
//!
//! - mkdir: `POST files` with `kind: drive#folder`.
//! - rename in place: `PATCH files/{id}`. A move: `files:batchMove`, then the task is polled
//!   until `PHASE_TYPE_COMPLETE`; the service renames a colliding name to `name(1)`, so the
//!   moved file is read back and renamed to the wanted name when it differs (the core made
//!   that name free first). A rename right after a move may be refused with code 9
//!   `file_rename_uncompleted`: tried again a few times.
//! - trash: `files:batchTrash` and its task. Never `batchDelete`: whatever panmount removes
//!   stays recoverable in the provider's trash.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};

use super::PikPak;
use super::api::{BatchReply, File, NewFile, Task};
use super::client::Fault;
use super::gcid::GcidHasher;
use crate::drivers::{ContentHasher, Entry, HashKind, Progress, Staged, Writable, decode};
use crate::error::{Error, Result};

/// How long a batch task (move, trash) may take before we give up; the service usually answers
/// COMPLETE within a second (rclone sleeps 500 ms, then polls).
const TASK_TIMEOUT: Duration = Duration::from_secs(120);
/// Polling starts fast (the simulator and small moves finish at once) and slows down to this.
const POLL_MAX: Duration = Duration::from_secs(2);
const POLL_FIRST: Duration = Duration::from_millis(100);
/// Tries of a rename refused with `file_rename_uncompleted` (rclone retries it too).
const RENAME_TRIES: u32 = 5;
pub(super) const PHASE_COMPLETE: &str = "PHASE_TYPE_COMPLETE";
const PHASE_ERROR: &str = "PHASE_TYPE_ERROR";

/// Sleeps between polls: `POLL_FIRST` doubling to `POLL_MAX`, until `timeout` has been spent.
pub(super) struct Poll {
    next: Duration,
    spent: Duration,
    timeout: Duration,
}

impl Poll {
    pub(super) fn new(timeout: Duration) -> Self {
        Poll { next: POLL_FIRST, spent: Duration::ZERO, timeout }
    }

    /// Sleep before the next poll; false once the time is spent.
    pub(super) async fn wait(&mut self) -> bool {
        if self.spent >= self.timeout {
            return false;
        }
        tokio::time::sleep(self.next).await;
        self.spent += self.next;
        self.next = (self.next * 2).min(POLL_MAX);
        true
    }
}

impl PikPak {
    /// A batch call (`files:batchMove`, `files:batchTrash`) on `ids`, waited for.
    async fn batch(&self, action: &str, body: Value) -> Result<()> {
        let v = self.call(Method::POST, &format!("/drive/v1/files:{action}"), &[], Some(&body)).await?;
        let reply: BatchReply = decode(action, v)?;
        self.wait_task(&reply.task_id, action).await
    }

    /// Poll `tasks/{id}` until it completes; a task that failed is an error with its message.
    /// An empty id (no task to wait for) is done.
    async fn wait_task(&self, task_id: &str, what: &str) -> Result<()> {
        if task_id.is_empty() {
            return Ok(());
        }
        let mut poll = Poll::new(TASK_TIMEOUT);
        loop {
            let v = self.call(Method::GET, &format!("/drive/v1/tasks/{task_id}"), &[], None).await?;
            let task: Task = decode("task", v)?;
            match task.phase.as_str() {
                PHASE_COMPLETE => return Ok(()),
                PHASE_ERROR => return Err(Error::Remote(format!("PikPak {what} failed: {}", task.message))),
                _ => {}
            }
            if !poll.wait().await {
                return Err(Error::Network(format!("PikPak {what} did not finish within {TASK_TIMEOUT:?}")));
            }
        }
    }

    /// The file as the service shows it now (`GET files/{id}`).
    pub(super) async fn detail(&self, id: &str) -> Result<File> {
        let v = self.call(Method::GET, &format!("/drive/v1/files/{id}"), &[], None).await?;
        decode("file detail", v)
    }

    /// `PATCH files/{id}` to `name`, tried again while the service says a move is unfinished.
    async fn patch_name(&self, id: &str, name: &str) -> Result<Entry> {
        let body = json!({ "name": name });
        let path = format!("/drive/v1/files/{id}");
        let mut poll = Poll::new(Duration::MAX);
        let mut tries = 0;
        loop {
            tries += 1;
            match self.call_api(Method::PATCH, &path, &[], Some(&body)).await {
                Ok(v) => return Ok(Self::entry(&decode::<File>("renamed file", v)?)),
                Err(e) if e.fault == Fault::RenameUncompleted && tries < RENAME_TRIES => {
                    tracing::debug!(id, tries, "rename refused while a move completes; trying again");
                    poll.wait().await;
                }
                Err(e) => return Err(e.error),
            }
        }
    }

    /// Move `id` to the trash and wait for it (best effort where a failure is already being
    /// reported: the caller logs).
    pub(super) async fn trash_id(&self, id: &str) -> Result<()> {
        self.batch("batchTrash", json!({ "ids": [id] })).await
    }
}

#[async_trait]
impl Writable for PikPak {
    async fn mkdir(&self, parent: &Entry, name: &str) -> Result<Entry> {
        let body = json!({ "kind": "drive#folder", "parent_id": parent.id, "name": name });
        let v = self.call(Method::POST, "/drive/v1/files", &[], Some(&body)).await?;
        let created: NewFile = decode("new folder", v)?;
        let folder = created.file.ok_or_else(|| Error::InvalidResponse("the new folder's reply has no file".into()))?;
        Ok(Self::entry(&folder))
    }

    async fn rename(&self, entry: &Entry, from: &Entry, to: &Entry, name: &str) -> Result<Entry> {
        if from.id == to.id {
            if entry.name == name {
                // The service refuses a rename to the same name (code 3): nothing to do.
                return Ok(entry.clone());
            }
            return self.patch_name(&entry.id, name).await;
        }
        self.batch("batchMove", json!({ "ids": [entry.id], "to": { "parent_id": to.id } })).await?;
        // Read the name back: a collision in the destination was renamed `name(1)`.
        let moved = self.detail(&entry.id).await?;
        if moved.name == name {
            return Ok(Self::entry(&moved));
        }
        tracing::debug!(id = %entry.id, "moved; now renaming");
        let renamed = self.patch_name(&entry.id, name).await;
        if let Err(e) = &renamed {
            // Not undone: say where the file is, since the caller's error names the wanted name.
            tracing::warn!(id = %entry.id, left_as = %moved.name, "moved, but not renamed: {e}");
        }
        renamed
    }

    async fn trash(&self, entry: &Entry) -> Result<()> {
        self.trash_id(&entry.id).await
    }

    fn hasher(&self) -> Box<dyn ContentHasher> {
        Box::new(GcidHasher::new())
    }

    fn hash_kind(&self) -> HashKind {
        HashKind::Gcid
    }

    async fn upload(&self, parent: &Entry, name: &str, staged: &Staged, progress: &Progress) -> Result<Entry> {
        self.upload_file(parent, name, staged, progress).await
    }

    async fn upload_by_hash(&self, parent: &Entry, name: &str, size: u64, hash: &str) -> Result<Option<Entry>> {
        PikPak::upload_by_hash(self, parent, name, size, hash).await
    }
}
