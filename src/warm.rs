//! `panmount warm CONFIG [PATH]`: list every folder of the storages (or of the subtree at PATH)
//! through the core, without mounting, so the listing store holds the whole tree and the next
//! mount serves it at once (a systemd `ExecStartPre=`, or a nightly timer).
//!
//! Progress goes to stderr: one line rewritten in place on a terminal, a plain line every
//! [`PLAIN_EVERY`] otherwise (journald and log files do not want carriage returns); no crate
//! is needed for that. The summary (folders, entries, listing calls, seconds) goes to stdout.
//! Exit 0 when every storage was walked, 1 naming the storages that failed, 2 for a config
//! without a place to keep listings.
//!
//! Folders whose listing changed since the store's are told to the `[[notify]]` hooks, as a
//! mount would (see [`notifier`]).
//!
//! Warm primes the store before a mount starts: a mount that is running keeps its own copy of
//! the store in memory and writes it back, so what warm wrote meanwhile would be replaced.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::app::{AppError, build_fs};
use crate::config::{Config, ConfigError};
use crate::fs::WalkCount;
use crate::notify::Notifier;

const PLAIN_EVERY: Duration = Duration::from_secs(5);
const TTY_EVERY: Duration = Duration::from_millis(200);

pub async fn run(config: &Config, path: Option<&str>) -> Result<(), AppError> {
    if crate::app::store_dir(config).is_none() {
        return Err(AppError::Config(ConfigError {
            file: config.file.clone(),
            line: None,
            key: Some("state_dir".into()),
            message: "warm keeps listings in `state_dir` or `[cache] dir`; set one of them".into(),
        }));
    }
    let fs = build_fs(config)?;
    let notifier = notifier(config, &fs);
    let path = path.unwrap_or("/");
    let starts = fs.walk_starts(path).await.map_err(|e| AppError::Failed(format!("{path}: {e}")))?;
    let started = Instant::now();
    let count = WalkCount::default();
    let progress = progress(&count, started);
    let walks = starts.into_iter().map(|(i, dir)| {
        let (fs, count) = (&fs, &count);
        async move {
            let storage = &fs.storages()[i];
            storage.login().await?;
            fs.walk(i, dir, count)
                .await
                .map_err(|e| crate::error::Error::Remote(format!("storage {}: {e}", storage.path)))
        }
    });
    let results = tokio::select! {
        results = join_all(walks) => results,
        _ = progress => unreachable!("the progress display runs until the walk ends"),
    };
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    fs.flush().await;
    if let Some(notifier) = notifier {
        notifier.finish().await;
    }
    let calls: u64 = fs.storages().iter().map(|s| s.stats.listings.load(Ordering::Relaxed)).sum();
    println!(
        "warmed {} folders, {} entries: {calls} listing calls in {:.1} s",
        count.folders.load(Ordering::Relaxed),
        count.entries.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    let failed: Vec<String> = results.into_iter().filter_map(Result::err).map(|e| e.to_string()).collect();
    if failed.is_empty() { Ok(()) } else { Err(AppError::Failed(failed.join("; "))) }
}

/// The `[[notify]]` hooks told of the folders a walk finds changed. A hook needs to know where
/// the mount is seen: its `path_prefix`, else the config's `mountpoint` (warm has no mount).
fn notifier(config: &Config, fs: &crate::fs::Fs) -> Option<Arc<Notifier>> {
    let (hooks, unplaced): (Vec<_>, Vec<_>) =
        config.notify.iter().cloned().partition(|n| n.path_prefix.is_some() || config.mountpoint.is_some());
    for hook in unplaced {
        tracing::warn!("{}: no path_prefix and no mountpoint in the config; warm does not tell it", hook.table);
    }
    if hooks.is_empty() {
        return None;
    }
    let notifier = Notifier::start(&hooks, config.mountpoint.as_deref().unwrap_or(Path::new("/")));
    fs.set_folder_changed(notifier.clone());
    Some(notifier)
}

/// Report `count` on stderr until dropped.
async fn progress(count: &WalkCount, started: Instant) {
    let tty = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(if tty { TTY_EVERY } else { PLAIN_EVERY });
    tick.tick().await;
    loop {
        tick.tick().await;
        let line = format!(
            "warm: {} folders, {} entries, {} failed, {} s",
            count.folders.load(Ordering::Relaxed),
            count.entries.load(Ordering::Relaxed),
            count.failures.load(Ordering::Relaxed),
            started.elapsed().as_secs()
        );
        let mut err = std::io::stderr().lock();
        let _ = if tty { write!(err, "\r{line}\x1b[K") } else { writeln!(err, "{line}") };
        let _ = err.flush();
    }
}
