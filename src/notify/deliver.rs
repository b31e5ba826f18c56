//! One target's task: takes batches of changed folders, rewrites them to the server's paths,
//! and delivers them, retrying on failure (see the parent module's doc).

use std::collections::BTreeSet;
use std::process::Stdio;

use tokio::sync::mpsc;

use super::plex::{Plex, base};
use super::wire::MediaUpdated;
use super::{Timing, Work, rewrite};
use crate::config::NotifyTarget;

/// Why a delivery failed, for the log (never holds a secret).
#[derive(Debug)]
pub struct Failure(pub String);

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        let what = if e.is_timeout() { "timed out" } else { "failed" };
        // The URL is logged apart, without its query.
        Failure(format!("request {what}: {}", crate::error::Error::from(e)))
    }
}

/// A sent request's answer, when it is a 2xx.
pub fn check(sent: reqwest::Result<reqwest::Response>) -> Result<reqwest::Response, Failure> {
    let response = sent?;
    let status = response.status();
    if !status.is_success() {
        return Err(Failure(format!("answered {status}")));
    }
    Ok(response)
}

enum Target {
    /// Jellyfin and Emby share the API.
    Library {
        url: url::Url,
        api_key: String,
    },
    Plex(Plex),
    Command {
        argv: Vec<String>,
    },
}

pub struct Hook {
    kind: &'static str,
    /// The server's URL as logged: no credentials, no query.
    shown_url: String,
    target: Target,
    prefix: String,
    client: reqwest::Client,
    timing: Timing,
}

impl Hook {
    pub fn new(config: NotifyTarget, prefix: String, timing: Timing) -> Self {
        let kind = config.kind();
        let shown_url = config.url().map(shown).unwrap_or_default();
        let target = match config {
            NotifyTarget::Jellyfin { url, api_key } | NotifyTarget::Emby { url, api_key } => {
                Target::Library { url, api_key }
            }
            NotifyTarget::Plex { url, token } => Target::Plex(Plex::new(url, token)),
            NotifyTarget::Command { argv } => Target::Command { argv },
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("panmount/", env!("CARGO_PKG_VERSION")))
            .timeout(timing.request_timeout)
            .build()
            .unwrap_or_default();
        Hook { kind, shown_url, target, prefix, client, timing }
    }

    /// Deliver each batch of mount paths `work` brings, until it closes.
    pub async fn serve(mut self, mut work: mpsc::UnboundedReceiver<Work>) {
        let mut flushed = Vec::new();
        while let Some(next) = work.recv().await {
            let mut batch = match next {
                Work::Batch(batch) => batch,
                Work::Flush(done) => {
                    let _ = done.send(());
                    continue;
                }
            };
            // Batches that queued up while the last one was retried go together.
            while let Ok(more) = work.try_recv() {
                match more {
                    Work::Batch(more) => batch.extend(more),
                    Work::Flush(done) => flushed.push(done),
                }
            }
            let paths: BTreeSet<String> = batch.iter().map(|p| rewrite(&self.prefix, p)).collect();
            let paths: Vec<String> = paths.into_iter().collect();
            self.deliver(&paths).await;
            for done in flushed.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Send `paths`, retrying after each of `retry_after`.
    async fn deliver(&mut self, paths: &[String]) {
        tracing::info!(kind = self.kind, url = %self.shown_url, paths = paths.len(), "telling the media server which folders changed");
        let retries = self.timing.retry_after;
        for attempt in 0..=retries.len() {
            let Err(Failure(error)) = self.send(paths).await else { return };
            let Some(wait) = retries.get(attempt) else {
                tracing::error!(kind = self.kind, url = %self.shown_url, paths = paths.len(), error = %error, "library refresh failed {} times; these folders are not told", attempt + 1);
                return;
            };
            tracing::warn!(kind = self.kind, url = %self.shown_url, error = %error, "library refresh failed; trying again in {wait:?}");
            tokio::time::sleep(*wait).await;
        }
    }

    async fn send(&mut self, paths: &[String]) -> Result<(), Failure> {
        match &mut self.target {
            Target::Library { url, api_key } => {
                let request = self
                    .client
                    .post(format!("{}/Library/Media/Updated", base(url)))
                    .header("X-Emby-Token", api_key.as_str())
                    .json(&MediaUpdated::modified(paths));
                check(request.send().await).map(drop)
            }
            Target::Plex(plex) => plex.scan(&self.client, paths).await,
            Target::Command { argv } => run(argv, paths, self.timing.command_timeout).await,
        }
    }
}

/// Run `argv` with `paths` appended (no shell); a non-zero exit is a failure.
async fn run(argv: &[String], paths: &[String], limit: std::time::Duration) -> Result<(), Failure> {
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .args(paths)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Failure(format!("cannot run {}: {e}", argv[0])))?;
    match tokio::time::timeout(limit, child.wait()).await {
        Err(_) => Err(Failure(format!("{} still ran after {limit:?}; killed", argv[0]))),
        Ok(Err(e)) => Err(Failure(format!("waiting for {}: {e}", argv[0]))),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(Failure(format!("{} exited with {status}", argv[0]))),
    }
}

/// `url` for a log line: without user, password or query.
pub(super) fn shown(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.to_string()
}
