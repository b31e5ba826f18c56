//! Wiring: config -> drivers -> core -> FUSE, and the `check`, `ls` and `cat` commands, which
//! use the same core without FUSE. Errors end as an exit code: 2 for a config or usage mistake
//! (the message names the file and key), 1 for anything else (the message names the storage).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::cache::disk::DiskCache;
use crate::cache::store::MetaStore;
use crate::cli::ByteRange;
use crate::config::{Config, ConfigError, format_size};
use crate::drivers::{self, BuildContext};
use crate::error::Error;
use crate::fs::{Fs, FsConfig, Owner, Storage};
use crate::fuse::{self, MountOptions};
use crate::http::HttpClient;
use crate::read::window::WindowConfig;

/// Cached blocks are this large. Consecutive blocks are fetched by one request, so the size
/// does not set the request count of sequential reads; it sets what a random read and a
/// scanner's look at a file cost: with 64 KiB a 4 KiB read fetches 64 KiB and the 6 KiB
/// tail an MP4 probe reads fetches at most 64 KiB (256 KiB blocks cost ffprobe scans 2x).
pub const BLOCK_SIZE: u64 = 64 << 10;
/// The read-ahead window a stream starts with, once it has shown itself a stream (see
/// `STREAM_AFTER`): fetched as 8 parts of 2 MiB at once, so that every connection a reader may
/// use (`read::connections::READER_STREAMS`) starts at once. Over a real round trip each new
/// connection climbs TCP slow start for several round trips before it reaches the CDN's
/// per-connection speed; starting all eight together overlaps those climbs (a 4 MiB start, 4
/// parts of 1 MiB, opened the other four one window doubling later: 121.8 against 126.0 MB/s
/// over 2 GiB on the benchmark's 60 ms path, medians of 3). It doubles with every half window
/// consumed while reading stays sequential.
pub const INITIAL_WINDOW: u64 = 16 << 20;
/// The smallest cap `max_read_ahead_mb` may set (a smaller initial window follows it).
pub const MIN_WINDOW_CAP: u64 = 4 << 20;
/// Bytes a run from a file's start reads before it counts as a stream and gets read-ahead:
/// more than a media scanner reads of a header (see `read::window`).
pub const STREAM_AFTER: u64 = 1 << 20;
/// The largest read-ahead request (`read::window::Window::part`): every request waits a round
/// trip for its first byte, a small part of 8 MiB's transfer time.
pub const READ_AHEAD_STEP: u64 = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl AppError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Config(_) | AppError::Usage(_) => 2,
            AppError::Failed(_) => 1,
        }
    }
}

/// Build every storage's driver and the core, with the listings earlier runs stored. Fails only
/// on configuration mistakes.
pub fn build_fs(config: &Config) -> Result<Fs, AppError> {
    let mut storages = Vec::new();
    for storage in &config.storages {
        let proxy = storage.options.str("proxy")?;
        let http = HttpClient::new(proxy.as_deref()).map_err(|e| storage.options.error("proxy", e.to_string()))?;
        let ctx = BuildContext { http: http.clone(), state_dir: config.state_dir.clone() };
        let driver = drivers::build(storage, &ctx)?;
        let traffic = crate::budget::Meter::for_storage(storage, config.state_dir.as_deref());
        storages.push(Storage::new(storage.path.clone(), driver, http).read_only(storage.read_only).traffic(traffic));
    }
    let mut fs_config = fs_config(config);
    if let Some(dir) = &config.cache.dir {
        let disk = DiskCache::open(dir, config.cache.max_size, BLOCK_SIZE).map_err(|e| {
            AppError::Config(ConfigError {
                file: config.file.clone(),
                line: None,
                key: Some("cache.dir".into()),
                message: format!("cannot use {} as the disk cache: {e}", dir.display()),
            })
        })?;
        fs_config.disk = Some(disk);
    }
    fs_config.store = store_dir(config).map(|dir| {
        let keys = config.storages.iter().map(crate::cache::store::storage_key).collect();
        Arc::new(MetaStore::open(dir, keys))
    });
    Ok(Fs::new(storages, fs_config))
}

/// Where listings persist: with the disk cache when there is one (bulk, disposable data),
/// else in `state_dir`; nowhere without either.
pub fn store_dir(config: &Config) -> Option<&Path> {
    config.cache.dir.as_deref().or(config.state_dir.as_deref())
}

fn fs_config(config: &Config) -> FsConfig {
    let cache = &config.cache;
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let memory_limit = (cache.memory_limit_mb.max(8) << 20) as usize;
    // Read-ahead in flight may take at most half of the memory budget (`read::Reader::read`).
    let max_window =
        (cache.max_read_ahead_mb << 20).clamp(MIN_WINDOW_CAP, (memory_limit as u64 / 2).max(MIN_WINDOW_CAP));
    FsConfig {
        owner: Owner {
            uid: config.fuse.uid.unwrap_or(uid),
            gid: config.fuse.gid.unwrap_or(gid),
            umask: config.fuse.umask,
        },
        dir_ttl: cache.dir_cache_time,
        negative_ttl: cache.negative_cache_time,
        link_margin: cache.link_expiry_margin,
        block_size: BLOCK_SIZE,
        memory_limit,
        window: WindowConfig {
            initial: INITIAL_WINDOW.min(max_window),
            max: max_window,
            stream_after: STREAM_AFTER,
            step: READ_AHEAD_STEP,
        },
        connections_per_file: cache.connections_per_file as usize,
        disk: None,
        store: None,
    }
}

/// `panmount mount`: serve until SIGINT/SIGTERM (or an external unmount), then unmount.
pub fn mount(rt: &tokio::runtime::Runtime, mut config: Config, mountpoint: Option<PathBuf>) -> Result<(), AppError> {
    let mountpoint = mountpoint.or_else(|| config.mountpoint.clone()).ok_or_else(|| {
        AppError::Config(ConfigError {
            file: config.file.clone(),
            line: None,
            key: Some("mountpoint".into()),
            message: "no mount point: set `mountpoint` in the config or pass --mountpoint".into(),
        })
    })?;
    // Inside the runtime: the disk cache starts its map flusher there.
    let _runtime = rt.enter();
    let fs = Arc::new(build_fs(&config)?);
    // The drivers took what they need: a tree of links may be tens of MB of text.
    for storage in &mut config.storages {
        storage.options.values.clear();
    }
    serve(rt, fs, &mountpoint, &config)
}

/// Log in, mount, and wait for a signal. Shared by `mount` and `demo`.
pub fn serve(rt: &tokio::runtime::Runtime, fs: Arc<Fs>, mountpoint: &Path, config: &Config) -> Result<(), AppError> {
    crate::service::status("logging in");
    // Before the background sweep starts: it learns the paths of the folders it revalidates.
    let notifier = (!config.notify.is_empty()).then(|| {
        let _runtime = rt.enter();
        let notifier = crate::notify::Notifier::start(&config.notify, mountpoint);
        fs.set_folder_changed(notifier.clone());
        notifier
    });
    // Stored listings are served from now on (revalidated in the background when stale).
    rt.block_on(async { fs.start_background() });
    let results = rt.block_on(fs.login_all());
    let down = results.iter().filter(|r| r.is_err()).count();
    if down > 0 && down == results.len() {
        tracing::warn!("no storage is reachable; mounting anyway, their folders answer EIO until they are");
    }
    let entries = rt.block_on(fs.warm_roots());
    let writable = start_writes(rt, &fs, config)?;
    let options = MountOptions {
        read_only: !writable,
        allow_other: config.fuse.allow_other,
        read_ahead_kb: config.cache.kernel_read_ahead_kb,
        direct_io: config.cache.direct_io,
        fsname: fsname(config),
    };
    let mounted = fuse::mount(fs.clone(), rt.handle().clone(), mountpoint, &options)
        .map_err(|e| AppError::Failed(fuse::mount::mount_error(&e, mountpoint, config.fuse.allow_other)))?;
    fs.set_invalidator(mounted.invalidator());
    tracing::info!(mountpoint = %mountpoint.display(), storages = config.storages.len(), "mounted");
    let up = results.len() - down;
    crate::service::ready(&format!(
        "{} storages ({up} up), {entries} entries at their roots, mounted at {}",
        results.len(),
        mountpoint.display()
    ));
    let reason = rt.block_on(wait_for_stop(&mounted, &fs));
    tracing::info!("{reason}; unmounting");
    crate::service::stopping();
    for line in fs.stats_report().lines() {
        tracing::info!("{line}");
    }
    let pending = fs.pending_uploads();
    if pending > 0 {
        tracing::info!(count = pending, "uploads not finished; they resume at the next start");
    }
    let unmounted = mounted.unmount().map_err(|e| AppError::Failed(format!("unmount {}: {e}", mountpoint.display())));
    rt.block_on(fs.flush());
    if let Some(notifier) = notifier {
        rt.block_on(notifier.finish());
    }
    unmounted
}

/// Bytes staged and not yet uploaded past which writers wait for uploads to drain.
const STAGING_BUDGET: u64 = 10 << 30;

/// Where staged files and the upload journal live: beside the listings (`[cache] dir`, else
/// `state_dir`).
pub fn uploads_dir(config: &Config) -> Option<PathBuf> {
    store_dir(config).map(|dir| dir.join("uploads"))
}

/// Turn writes on when some storage takes them; whether any does. Staged files must survive a
/// restart, so a writable storage needs a folder for them: a config error otherwise.
fn start_writes(rt: &tokio::runtime::Runtime, fs: &Arc<Fs>, config: &Config) -> Result<bool, AppError> {
    let Some(writable) = fs.storages().iter().find(|s| s.writer().is_ok()) else { return Ok(false) };
    let config_error = |message: String| {
        AppError::Config(ConfigError { file: config.file.clone(), line: None, key: Some("cache.dir".into()), message })
    };
    let Some(dir) = uploads_dir(config) else {
        return Err(config_error(format!(
            "storage {} takes writes, which are staged on disk until uploaded: set `dir` in [cache] or              `state_dir` (or `read_only = true` on the storage, or mount with --read-only)",
            writable.path
        )));
    };
    let writes = crate::write::Writes::open(&dir, fs.storages().to_vec(), STAGING_BUDGET)
        .map_err(|e| config_error(format!("cannot keep staged uploads in {}: {e}", dir.display())))?;
    rt.block_on(async { fs.start_writes(writes) });
    Ok(true)
}

/// `panmount uploads`: the journal's uploads, whether a mount runs or not.
pub async fn uploads(config: &Config, watch: bool) -> Result<(), AppError> {
    let Some(dir) = uploads_dir(config) else {
        println!("no uploads: neither [cache] dir nor state_dir is set, so nothing can be staged");
        return Ok(());
    };
    let journal = crate::write::Journal::at(&dir);
    loop {
        let records = journal.records();
        let failed = records.iter().filter(|r| r.failed).count();
        print!("{}", crate::write::report::table(&journal, &records));
        // Failed uploads stay until a restart tries them again: watching them changes nothing.
        if !watch || records.iter().all(|r| r.failed) {
            return if failed > 0 {
                Err(AppError::Failed(format!(
                    "{failed} upload(s) failed for good; their staged copies are in {}",
                    dir.display()
                )))
            } else {
                Ok(())
            };
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!();
    }
}

fn fsname(config: &Config) -> String {
    match config.storages.as_slice() {
        [one] => format!("panmount:{}", one.driver),
        _ => "panmount".to_string(),
    }
}

/// Serve until SIGINT/SIGTERM or an external unmount; SIGHUP drops the directory caches.
async fn wait_for_stop(mounted: &fuse::Mounted, fs: &Fs) -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        return "cannot listen for signals";
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut watchdog = crate::service::Watchdog::from_env();
    loop {
        tokio::select! {
            _ = term.recv() => return "SIGTERM",
            _ = int.recv() => return "SIGINT",
            _ = hup.recv() => {
                fs.drop_dir_caches();
                tracing::info!("SIGHUP: directory caches dropped");
            }
            _ = tick.tick() => {
                if mounted.is_finished() {
                    return "unmounted from outside";
                }
                watchdog.tick();
            }
        }
    }
}

/// `panmount stats`: the running mount's telemetry, read from its hidden stats file.
pub fn stats(mountpoint: &Path) -> Result<(), AppError> {
    let path = mountpoint.join(crate::stats::STATS_FILE);
    let report = std::fs::read_to_string(&path)
        .map_err(|e| AppError::Failed(format!("{}: not a running panmount mount point ({e})", mountpoint.display())))?;
    print!("{report}");
    Ok(())
}

/// `panmount check`: one row per storage; Ok only if all are ok.
pub async fn check(config: &Config) -> Result<(), AppError> {
    let fs = build_fs(config)?;
    let mut failed = 0;
    println!("{:<24} {:<14} {:<6} {:>8}  QUOTA / ERROR", "PATH", "DRIVER", "STATUS", "ENTRIES");
    for (i, storage) in fs.storages().iter().enumerate() {
        let row = async {
            storage.login().await?;
            let ino = fs.resolve(&storage.path).await?;
            let fh = fs.opendir(ino).await?.fh;
            let mut count = 0usize;
            fs.readdir(fh, 2, false, |_| {
                count += 1;
                false
            })
            .await?;
            fs.releasedir(fh);
            let quota = storage.driver.quota().await?;
            Ok::<_, Error>((count, quota))
        };
        let driver = &config.storages[i].driver;
        // Read from the persisted count: nothing is downloaded for it.
        let traffic = storage.traffic.summary().map_or(String::new(), |t| format!("; {t}"));
        match row.await {
            Ok((count, quota)) => {
                let quota = quota
                    .map_or("-".to_string(), |q| format!("{} used of {}", format_size(q.used), format_size(q.total)));
                println!("{:<24} {:<14} {:<6} {:>8}  {quota}{traffic}", storage.path, driver, "ok", count);
            }
            Err(err) => {
                failed += 1;
                println!("{:<24} {:<14} {:<6} {:>8}  {err}{traffic}", storage.path, driver, "error", "-");
            }
        }
    }
    fs.flush().await;
    if failed > 0 {
        return Err(AppError::Failed(format!("{failed} of {} storages failed", fs.storages().len())));
    }
    Ok(())
}

/// `panmount ls`.
pub async fn ls(config: &Config, path: &str, long: bool) -> Result<(), AppError> {
    let fs = build_fs(config)?;
    let fail = |e: Error| AppError::Failed(format!("{path}: {e}"));
    let ino = fs.resolve(path).await.map_err(fail)?;
    let (attr, _) = fs.getattr(ino).await.map_err(fail)?;
    let mut rows = Vec::new();
    if attr.is_dir {
        let fh = fs.opendir(ino).await.map_err(fail)?.fh;
        fs.readdir(fh, 2, long, |item| {
            rows.push((item.name.to_string(), item.attr));
            false
        })
        .await
        .map_err(fail)?;
        fs.releasedir(fh);
    } else {
        rows.push((path.rsplit('/').next().unwrap_or(path).to_string(), attr));
    }
    fs.flush().await;
    let mut out = std::io::stdout().lock();
    for (name, attr) in rows {
        let line = if long {
            let kind = if attr.is_dir { 'd' } else { '-' };
            let secs = attr.mtime.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            format!("{kind}{} {:>14} {} {name}", mode_string(attr.perm), attr.size, crate::time::utc_minute(secs))
        } else if attr.is_dir {
            format!("{name}/")
        } else {
            name
        };
        if writeln!(out, "{line}").is_err() {
            break; // stdout closed (`| head`)
        }
    }
    Ok(())
}

/// `panmount cat`: bytes to stdout through the mount's read path.
pub async fn cat(config: &Config, path: &str, range: Option<ByteRange>) -> Result<(), AppError> {
    let fs = build_fs(config)?;
    let fail = |e: Error| AppError::Failed(format!("{path}: {e}"));
    let ino = fs.resolve(path).await.map_err(fail)?;
    let opened = fs.open(ino, false, false).await.map_err(fail)?;
    let (attr, _) = fs.getattr(ino).await.map_err(fail)?;
    let (start, end) = match range {
        None => (0, attr.size),
        Some(r) if r.start >= attr.size && attr.size > 0 || (r.start > 0 && attr.size == 0) => {
            return Err(AppError::Failed(format!(
                "{path}: range starts at {} but the file has {} bytes",
                r.start, attr.size
            )));
        }
        Some(r) => (r.start, r.end.map_or(attr.size, |e| (e + 1).min(attr.size))),
    };
    let mut out = std::io::stdout().lock();
    let mut offset = start;
    while offset < end {
        let want = (end - offset).min(1 << 20) as u32;
        let bytes = fs.read(opened.fh, offset, want).await.map_err(fail)?;
        if bytes.is_empty() {
            return Err(AppError::Failed(format!("{path}: file ended at {offset}, expected {end} bytes")));
        }
        out.write_all(&bytes).map_err(|e| AppError::Failed(format!("stdout: {e}")))?;
        offset += bytes.len() as u64;
    }
    out.flush().map_err(|e| AppError::Failed(format!("stdout: {e}")))?;
    let _ = fs.release(opened.fh).await;
    fs.flush().await;
    Ok(())
}

fn mode_string(perm: u16) -> String {
    (0..9).map(|i| if perm & (0o400 >> i) != 0 { b"rwx"[i % 3] as char } else { '-' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(crate::time::utc_minute(0), "1970-01-01 00:00");
        assert_eq!(crate::time::utc_minute(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(crate::time::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(mode_string(0o755), "rwxr-xr-x");
    }

    fn window_of(cache: &str) -> WindowConfig {
        let text = format!(
            "mountpoint = \"/mnt\"\n\n[cache]\n{cache}\n\n[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\n\
             origin_urls = \"1:0:http://127.0.0.1/a\"\n"
        );
        fs_config(&Config::parse(&text, std::path::Path::new("t.toml")).unwrap()).window
    }

    /// A stream's first window opens every connection a reader may use at once (see
    /// `INITIAL_WINDOW`): over a real round trip the slow starts overlap.
    #[test]
    fn the_first_window_uses_every_stream_of_a_reader() {
        let config = window_of("");
        let window = crate::read::window::Window::new(config);
        let parts = config.initial / window.part(config);
        assert_eq!(parts, crate::read::connections::READER_STREAMS as u64);
        assert!(config.initial <= config.max);
    }

    #[test]
    fn a_small_read_ahead_cap_also_caps_the_first_window() {
        let config = window_of("max_read_ahead_mb = 6");
        assert_eq!((config.initial, config.max), (6 << 20, 6 << 20));
        let config = window_of("max_read_ahead_mb = 1");
        assert_eq!((config.initial, config.max), (MIN_WINDOW_CAP, MIN_WINDOW_CAP));
    }
}
