//! Library refresh hooks (`[[notify]]`): media servers see no inotify event for a file that
//! appears in the cloud, so new episodes would wait for a full library scan. The core tells a
//! [`Notifier`] which folders changed (`crate::fs::FolderChanged`: a re-listing that differs,
//! a change made through the mount landing); the notifier asks each configured server to scan
//! just those folders, or runs a command with them.
//!
//! - Debounced and batched: a burst of changes (a season copied in, a revalidation sweep) makes
//!   one request per target, with every distinct folder, once no change came for [`QUIET`] or
//!   [`MAX_WAIT`] after the first (a steady trickle still gets through). Not a config key: a
//!   media server needs no finer timing than seconds.
//! - Paths are rewritten from the mount point to where the server sees the mount
//!   (`path_prefix`): `/mnt/pan` + `/pikpak/TV` with `/media/pan` gives `/media/pan/pikpak/TV`.
//! - Never in the way: [`FolderChanged::changed`] only queues the path; each target is served
//!   by its own task, so a server that is down delays no read and no other target. A failed
//!   delivery (no connection, a non-2xx answer, [`REQUEST_TIMEOUT`], a command failing) is
//!   logged and tried again after each of [`RETRY_AFTER`]; after the last the paths are
//!   dropped with one error line (the next change of those folders is told again). Batches
//!   that queue up meanwhile are merged into the next attempt. A process about to exit (an
//!   unmount, `warm`) sends what it gathered at once and waits at most [`FINISH_LIMIT`].
//! - Secrets stay out of logs: keys and tokens go in headers, and the URL is logged without
//!   credentials or query.

mod deliver;
mod plex;
#[cfg(all(test, feature = "sim"))]
mod tests;
mod wire;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::NotifyConfig;
use crate::fs::FolderChanged;
use deliver::Hook;

/// A batch is sent once no change came for this long...
pub const QUIET: Duration = Duration::from_secs(2);
/// ...or this long after its first change.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// One HTTP request's limit (connecting included).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A `command` hook is killed after this long (a failure).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Waits before the attempts after a failed one: four attempts in all, over about 2.5 minutes
/// (a media server restarting is back by then).
pub const RETRY_AFTER: [Duration; 3] = [Duration::from_secs(5), Duration::from_secs(30), Duration::from_secs(120)];

/// How long a process about to exit waits for the hooks: enough for a server that is up, and
/// a stop is not held up by one that is not (a media server started after the mount, as it
/// should be, is down during an `ExecStartPre=` warm).
pub const FINISH_LIMIT: Duration = Duration::from_secs(5);

/// The waits of a notifier (the constants above; tests shorten them).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub quiet: Duration,
    pub max_wait: Duration,
    pub request_timeout: Duration,
    pub command_timeout: Duration,
    pub retry_after: [Duration; 3],
}

pub const TIMING: Timing = Timing {
    quiet: QUIET,
    max_wait: MAX_WAIT,
    request_timeout: REQUEST_TIMEOUT,
    command_timeout: COMMAND_TIMEOUT,
    retry_after: RETRY_AFTER,
};

/// Collects changed folders and hands them, batched, to one task per target.
pub struct Notifier {
    changed: mpsc::UnboundedSender<Message>,
}

enum Message {
    Changed(String),
    /// Send what is gathered now; answer once every target has delivered it (or given up).
    Flush(oneshot::Sender<()>),
}

/// What a target's task is handed.
enum Work {
    Batch(BTreeSet<String>),
    /// Answer once everything handed before is delivered (or given up).
    Flush(oneshot::Sender<()>),
}

impl FolderChanged for Notifier {
    fn changed(&self, mount_path: &str) {
        let _ = self.changed.send(Message::Changed(mount_path.to_owned()));
    }
}

impl Notifier {
    /// Start the targets of `configs` for a mount at `mountpoint`, on the current runtime.
    pub fn start(configs: &[NotifyConfig], mountpoint: &Path) -> Arc<Notifier> {
        Self::with_timing(configs, mountpoint, TIMING)
    }

    pub fn with_timing(configs: &[NotifyConfig], mountpoint: &Path, timing: Timing) -> Arc<Notifier> {
        let targets = configs
            .iter()
            .map(|config| {
                let prefix = config.path_prefix.as_deref().unwrap_or(mountpoint).to_string_lossy().into_owned();
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(Hook::new(config.target.clone(), prefix, timing).serve(rx));
                tx
            })
            .collect();
        let (changed, rx) = mpsc::unbounded_channel();
        tokio::spawn(batches(rx, targets, timing));
        Arc::new(Notifier { changed })
    }

    /// Deliver what is gathered without waiting for quiet, and return once every target has
    /// delivered it or given up.
    pub async fn flush(&self) {
        let (done, delivered) = oneshot::channel();
        if self.changed.send(Message::Flush(done)).is_ok() {
            let _ = delivered.await;
        }
    }

    /// [`Self::flush`] before the process exits (`warm`, an unmount), for at most
    /// [`FINISH_LIMIT`]: a server that is down must not hold up a stop.
    pub async fn finish(&self) {
        if tokio::time::timeout(FINISH_LIMIT, self.flush()).await.is_err() {
            tracing::warn!("the media servers did not take the changed folders within {FINISH_LIMIT:?}; not told");
        }
    }
}

/// Gather changed paths into batches (see the module doc) and hand each to every target.
async fn batches(
    mut messages: mpsc::UnboundedReceiver<Message>,
    targets: Vec<mpsc::UnboundedSender<Work>>,
    timing: Timing,
) {
    while let Some(message) = messages.recv().await {
        let mut batch = BTreeSet::new();
        let mut flush = None;
        match message {
            Message::Changed(path) => {
                batch.insert(path);
            }
            Message::Flush(done) => flush = Some(done),
        }
        let deadline = Instant::now() + timing.max_wait;
        while flush.is_none() {
            let until = (Instant::now() + timing.quiet).min(deadline);
            match tokio::time::timeout_at(until, messages.recv()).await {
                Ok(Some(Message::Changed(path))) => {
                    batch.insert(path);
                }
                Ok(Some(Message::Flush(done))) => flush = Some(done),
                Ok(None) | Err(_) => break,
            }
        }
        if !batch.is_empty() {
            for target in &targets {
                let _ = target.send(Work::Batch(batch.clone()));
            }
        }
        if let Some(done) = flush {
            let delivered: Vec<_> = targets
                .iter()
                .map(|target| {
                    let (tx, rx) = oneshot::channel();
                    let _ = target.send(Work::Flush(tx));
                    rx
                })
                .collect();
            tokio::spawn(async move {
                futures_util::future::join_all(delivered).await;
                let _ = done.send(());
            });
        }
    }
}

/// `mount_path` (a folder's path in the mount) as the server sees it under `prefix`.
pub fn rewrite(prefix: &str, mount_path: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    match (prefix, mount_path) {
        ("", "/") => "/".to_owned(),
        (_, "/") => prefix.to_owned(),
        _ => format!("{prefix}{mount_path}"),
    }
}
