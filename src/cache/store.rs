//! Folder listings persisted across restarts, so a restarted mount serves the whole tree it had
//! listed before at once, and a media server's scan after a reboot does not wait on a cold
//! cloud listing (issue 6, "warm restarts").
//!
//! What is kept: for every folder the core listed, the driver's entries (names, ids, sizes,
//! mtimes, versions) and when they were fetched. Nothing else: download links (which carry
//! signatures) are not part of [`Entry`] and never reach this store, and neither do tokens.
//!
//! Where: one JSON file per storage, `<dir>/meta/<driver>-<16 hex>.json`, mode 0600, written
//! atomically ([`crate::state::write_atomic`]). `dir` is `[cache] dir` when set (bulk, disposable
//! data belongs with the disk cache), else `state_dir`; with neither nothing persists.
//!
//! Keyed by configuration: the file name is a digest of the storage's path, driver and every
//! driver option except secrets and the proxy ([`storage_key`]). Another account, root folder,
//! share or API base gives another file, so listings of an old configuration are never served
//! for a new one. The digest is also written inside the file and checked on load.
//!
//! When: the core records every listing it fetches ([`MetaStore::put`]) in memory; a background
//! task writes the storages that changed every [`FLUSH_EVERY`], and the mount writes once more
//! when it stops. Writing is off the FUSE path. A file that cannot be read or parsed is ignored
//! with one warning: the mount then lists from the cloud as if it had never run.
//!
//! Restored listings are served by the core even when older than `dir_cache_time`, and
//! revalidated in the background (`crate::fs::revalidate`); a listing fetched in this run
//! replaces its restored one, and SIGHUP stops restored listings from being served at all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cache::meta::Listing;
use crate::config::StorageConfig;
use crate::drivers::Entry;

/// How often changed listings are written. A crash loses at most this much of what was
/// listed, which only costs listing it again.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// Bumped when the file layout changes; other versions are ignored (and replaced).
const FORMAT: u32 = 1;
/// Options that are secrets (never hashed into a file name) or that change how the cloud is
/// reached, not what it holds.
const NOT_IN_KEY: &[&str] =
    &["password", "refresh_token", "captcha_token", "share_password", "private_key", "access_token", "proxy"];

/// The store's name for a storage: `<driver>-<16 hex of md5(path, driver options)>`.
pub fn storage_key(storage: &StorageConfig) -> String {
    let mut identity = vec![storage.path.clone()];
    for (name, value) in &storage.options.values {
        if !NOT_IN_KEY.contains(&name.as_str()) {
            identity.push(format!("{name}={}", value.value));
        }
    }
    let parts: Vec<&str> = identity.iter().map(String::as_str).collect();
    crate::state::StateFile::key(&storage.driver, &parts)
}

/// A listing as the store holds it.
#[derive(Clone)]
pub struct Stored {
    pub fetched: SystemTime,
    pub entries: Arc<Listing>,
    /// Loaded from disk and not yet fetched again in this run.
    pub restored: bool,
}

impl Stored {
    /// How long ago it was fetched; a fetch time in the future (the clock went back) counts as
    /// too old to trust.
    pub fn age(&self) -> Duration {
        SystemTime::now().duration_since(self.fetched).unwrap_or(Duration::MAX)
    }
}

pub struct MetaStore {
    files: Vec<StoreFile>,
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<_> = self.files.iter().map(|file| file.path.display()).collect();
        f.debug_struct("MetaStore").field("files", &paths).finish()
    }
}

struct StoreFile {
    path: PathBuf,
    key: String,
    state: Mutex<FileState>,
}

#[derive(Default)]
struct FileState {
    dirs: HashMap<String, Stored>,
    dirty: bool,
}

#[derive(Serialize)]
struct DiskOut<'a> {
    format: u32,
    key: &'a str,
    dirs: Vec<DirOut<'a>>,
}

#[derive(Serialize)]
struct DirOut<'a> {
    id: &'a str,
    fetched_ms: u64,
    entries: &'a [Entry],
}

#[derive(Deserialize)]
struct DiskIn {
    format: u32,
    key: String,
    dirs: Vec<DirIn>,
}

#[derive(Deserialize)]
struct DirIn {
    id: String,
    fetched_ms: u64,
    entries: Vec<Entry>,
}

impl MetaStore {
    /// The store under `dir` for storages named by `keys` (index = storage index), with what
    /// earlier runs wrote loaded.
    pub fn open(dir: &Path, keys: Vec<String>) -> MetaStore {
        let files = keys
            .into_iter()
            .map(|key| {
                let path = dir.join("meta").join(format!("{key}.json"));
                let dirs = load(&path, &key);
                StoreFile { path, key, state: Mutex::new(FileState { dirs, dirty: false }) }
            })
            .collect();
        MetaStore { files }
    }

    /// A listing loaded from disk that this run has not fetched again (and SIGHUP has not
    /// dropped).
    pub fn restored(&self, storage: usize, id: &str) -> Option<Stored> {
        let state = self.files.get(storage)?.state.lock().unwrap();
        state.dirs.get(id).filter(|s| s.restored).cloned()
    }

    /// Record a listing fetched now.
    pub fn put(&self, storage: usize, id: &str, entries: Arc<Listing>) {
        let Some(file) = self.files.get(storage) else { return };
        let mut state = file.state.lock().unwrap();
        state.dirs.insert(id.to_string(), Stored { fetched: SystemTime::now(), entries, restored: false });
        state.dirty = true;
    }

    /// Stop serving restored listings (SIGHUP): they stay on disk until fetched again.
    pub fn forget_restored(&self) {
        for file in &self.files {
            for stored in file.state.lock().unwrap().dirs.values_mut() {
                stored.restored = false;
            }
        }
    }

    /// Every restored listing of `storage`, by folder id (the background sweep's work list).
    pub fn restored_dirs(&self, storage: usize) -> HashMap<String, Arc<Listing>> {
        let Some(file) = self.files.get(storage) else { return HashMap::new() };
        let state = file.state.lock().unwrap();
        state.dirs.iter().filter(|(_, s)| s.restored).map(|(id, s)| (id.clone(), s.entries.clone())).collect()
    }

    /// Write the storages whose listings changed since the last write. Blocking (file IO):
    /// call it from `spawn_blocking` on a runtime.
    pub fn flush(&self) {
        for file in &self.files {
            let snapshot: Vec<(String, Stored)> = {
                let mut state = file.state.lock().unwrap();
                if !state.dirty {
                    continue;
                }
                state.dirty = false;
                state.dirs.iter().map(|(id, s)| (id.clone(), s.clone())).collect()
            };
            let dirs = snapshot
                .iter()
                .map(|(id, s)| DirOut { id, fetched_ms: unix_ms(s.fetched), entries: &s.entries })
                .collect();
            let out = DiskOut { format: FORMAT, key: &file.key, dirs };
            let written = serde_json::to_vec(&out)
                .map_err(std::io::Error::other)
                .and_then(|bytes| crate::state::write_atomic(&file.path, &bytes));
            if let Err(err) = written {
                tracing::warn!(file = %file.path.display(), "cannot write the listing store: {err}");
                file.state.lock().unwrap().dirty = true;
            }
        }
    }
}

/// What an earlier run wrote to `path`; nothing (with one warning) when it is unreadable,
/// corrupt, of another format or another configuration.
fn load(path: &Path, key: &str) -> HashMap<String, Stored> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return HashMap::new(),
        Err(e) => {
            tracing::warn!(file = %path.display(), "cannot read the listing store, listing from the cloud: {e}");
            return HashMap::new();
        }
    };
    let disk = match serde_json::from_slice::<DiskIn>(&bytes) {
        Ok(disk) if disk.format == FORMAT && disk.key == key => disk,
        Ok(_) => {
            tracing::warn!(file = %path.display(), "the listing store is of another format or configuration; ignoring it");
            return HashMap::new();
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), "the listing store is corrupt, listing from the cloud: {e}");
            return HashMap::new();
        }
    };
    let stored = |d: DirIn| {
        let fetched = UNIX_EPOCH + Duration::from_millis(d.fetched_ms);
        (d.id, Stored { fetched, entries: Arc::new(Listing::new(d.entries)), restored: true })
    };
    disk.dirs.into_iter().map(stored).collect()
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
