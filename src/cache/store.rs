//! Folder listings persisted across restarts, so a restarted mount serves the whole tree it had
//! listed before at once, and a media server's scan after a reboot does not wait on a cold
//! cloud listing (issue 6, "warm restarts").
//!
//! What is kept: for every folder the core listed, the driver's entries (names as the provider
//! gave them, ids, sizes, mtimes, versions) and when they were fetched. The names the mount
//! shows are not stored: a restored [`Listing`] derives them again (`crate::names`), so a
//! change of that mapping never leaves stale shown names on disk. Nothing else: download links
//! (which carry signatures) are not part of [`Entry`] and never reach this store, and neither
//! do tokens.
//!
//! Where: one append-only log per storage, `<dir>/meta/<driver>-<16 hex>.log`, mode 0600. `dir`
//! is `[cache] dir` when set (bulk, disposable data belongs with the disk cache), else
//! `state_dir`; with neither nothing persists.
//!
//! Keyed by configuration: the file name is a digest of the storage's path, driver and every
//! driver option except secrets and the proxy ([`storage_key`]). Another account, root folder,
//! share or API base gives another file, so listings of an old configuration are never served
//! for a new one. The digest is also written in the log's header line and checked on load.
//!
//! Format: JSON lines. The header `{"format":3,"key":...}` (format 2 held shown names), then
//! one record per write of a folder: `{"id":...,"fetched_ms":...,"entries":[...]}` when its
//! entries changed, or the same without `entries` when it was listed again unchanged. Only what changed is written: a
//! revalidation sweep over an unchanged tree appends ~60 bytes per folder, where the whole tree
//! used to be rewritten every few seconds (tens of MB a minute for 100,000 files). When the log
//! holds more than twice what its latest records need, it is rewritten whole (atomically,
//! [`crate::state::write_atomic_with`]), one record per folder.
//!
//! Recovery: the log is read up to its first line that is not a whole, valid record (an append
//! torn by a crash, a corrupted byte); what follows is dropped with one warning, and the next
//! write cuts the file there before appending. A header that cannot be read, or of another
//! format or configuration, makes the whole file ignored (one warning) and replaced at the next
//! write. Either way the mount lists from the cloud what it lost.
//!
//! When: the core records every listing it fetches ([`MetaStore::put`]) in memory; a background
//! task writes what changed every [`FLUSH_EVERY`], and the mount writes once more when it stops.
//! Writing is off the FUSE path.
//!
//! Restored listings are served by the core even when older than `dir_cache_time`, and
//! revalidated in the background (`crate::fs::namespace::revalidate`); a listing fetched in this run
//! replaces its restored one, and SIGHUP stops restored listings from being served at all.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cache::meta::Listing;
use crate::config::StorageConfig;

/// How often changed listings are written. A crash loses at most this much of what was
/// listed, which only costs listing it again.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// Bumped when the file layout changes; other versions are ignored (and replaced).
const FORMAT: u32 = 3;
/// A log is rewritten whole once it exceeds twice its live records plus this.
const COMPACT_SLACK: u64 = 1 << 20;
/// The store's name for a storage: `<driver>-<16 hex of md5(path, driver options)>`.
pub fn storage_key(storage: &StorageConfig) -> String {
    let mut identity = vec![storage.path.clone()];
    for (name, value) in &storage.options.values {
        // Secrets are never hashed into a file name; the proxy changes how the cloud is
        // reached, not what it holds.
        if !crate::config::is_access_only(name) {
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
    /// Held while writing, so two flushes never append at once.
    writing: Mutex<()>,
}

#[derive(Default)]
struct FileState {
    dirs: HashMap<String, Stored>,
    /// Folders fetched since the last write, and whether their entries changed.
    dirty: HashMap<String, bool>,
    /// The log's valid length (where the next append goes); `None`: rewrite it whole.
    log_len: Option<u64>,
    /// The size of each folder's latest full record in the log, and their sum.
    live: HashMap<String, u64>,
    live_bytes: u64,
}

impl FileState {
    fn set_live(&mut self, id: &str, bytes: u64) {
        let old = self.live.insert(id.to_string(), bytes).unwrap_or(0);
        self.live_bytes = self.live_bytes - old + bytes;
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    key: String,
}

#[derive(Serialize)]
struct RecordOut<'a> {
    id: &'a str,
    fetched_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    entries: Option<&'a Listing>,
}

#[derive(Deserialize)]
struct RecordIn {
    id: String,
    fetched_ms: u64,
    entries: Option<Listing>,
}

/// A record to write: the folder, when it was fetched, and its entries when they changed.
type Pending = (String, SystemTime, Option<Arc<Listing>>);

impl MetaStore {
    /// The store under `dir` for storages named by `keys` (index = storage index), with what
    /// earlier runs wrote loaded.
    pub fn open(dir: &Path, keys: Vec<String>) -> MetaStore {
        let files = keys
            .into_iter()
            .map(|key| {
                let path = dir.join("meta").join(format!("{key}.log"));
                let state = load(&path, &key);
                StoreFile { path, key, state: Mutex::new(state), writing: Mutex::new(()) }
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

    /// The latest listing of a folder held, restored or fetched in this run (SIGHUP drops
    /// neither from here): what a new listing is compared with to tell a change.
    pub fn last(&self, storage: usize, id: &str) -> Option<Arc<Listing>> {
        let state = self.files.get(storage)?.state.lock().unwrap();
        state.dirs.get(id).map(|s| s.entries.clone())
    }

    /// Record a listing fetched now.
    pub fn put(&self, storage: usize, id: &str, entries: Arc<Listing>) {
        let Some(file) = self.files.get(storage) else { return };
        let mut state = file.state.lock().unwrap();
        let changed =
            state.dirs.get(id).is_none_or(|old| !Arc::ptr_eq(&old.entries, &entries) && old.entries != entries);
        state.dirs.insert(id.to_string(), Stored { fetched: SystemTime::now(), entries, restored: false });
        *state.dirty.entry(id.to_string()).or_default() |= changed;
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

    /// Write what changed since the last write. Blocking (file IO): call it from
    /// `spawn_blocking` on a runtime.
    pub fn flush(&self) {
        for file in &self.files {
            if let Err(err) = file.flush() {
                tracing::warn!(file = %file.path.display(), "cannot write the listing store: {err}");
            }
        }
    }
}

impl StoreFile {
    fn flush(&self) -> std::io::Result<()> {
        let _writing = self.writing.lock().unwrap();
        let (pending, append_at) = {
            let mut state = self.state.lock().unwrap();
            if state.dirty.is_empty() {
                return Ok(());
            }
            let dirty = std::mem::take(&mut state.dirty);
            let append_at = state.log_len.filter(|&len| len <= 2 * state.live_bytes + COMPACT_SLACK);
            let pending: Vec<Pending> = match append_at {
                Some(_) => dirty
                    .into_iter()
                    .filter_map(|(id, changed)| {
                        let s = state.dirs.get(&id)?;
                        Some((id, s.fetched, changed.then(|| s.entries.clone())))
                    })
                    .collect(),
                None => state.dirs.iter().map(|(id, s)| (id.clone(), s.fetched, Some(s.entries.clone()))).collect(),
            };
            (pending, append_at)
        };
        let written = match append_at {
            Some(at) => self.append(at, &pending),
            None => self.rewrite(&pending),
        };
        let mut state = self.state.lock().unwrap();
        match written {
            Ok((len, sizes)) => {
                state.log_len = Some(len);
                if append_at.is_none() {
                    state.live.clear();
                    state.live_bytes = 0;
                }
                for ((id, _, entries), size) in pending.iter().zip(sizes) {
                    if entries.is_some() {
                        state.set_live(id, size);
                    }
                }
                Ok(())
            }
            Err(err) => {
                // Write it all again next time, whole: a failed append may have left a tail.
                state.log_len = None;
                for (id, _, _) in pending {
                    state.dirty.entry(id).or_insert(true);
                }
                Err(err)
            }
        }
    }

    /// Append `pending` at `at` (cutting whatever a torn write left there); the new length and
    /// each record's size.
    fn append(&self, at: u64, pending: &[Pending]) -> std::io::Result<(u64, Vec<u64>)> {
        let mut file = std::fs::OpenOptions::new().write(true).open(&self.path)?;
        file.set_len(at)?;
        file.seek(std::io::SeekFrom::Start(at))?;
        let mut out = BufWriter::new(Counted(file, at));
        let sizes = write_records(&mut out, pending)?;
        let Counted(file, len) = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_data()?;
        Ok((len, sizes))
    }

    /// Replace the log with a header and `pending` (every folder).
    fn rewrite(&self, pending: &[Pending]) -> std::io::Result<(u64, Vec<u64>)> {
        let mut result = (0, Vec::new());
        crate::state::write_atomic_with(&self.path, |file| {
            let mut out = BufWriter::new(Counted(file, 0));
            serde_json::to_writer(&mut out, &Header { format: FORMAT, key: self.key.clone() })?;
            out.write_all(b"\n")?;
            let sizes = write_records(&mut out, pending)?;
            out.flush()?;
            result = (out.get_ref().1, sizes);
            Ok(())
        })?;
        // The format-1 file this log replaces, if any.
        let _ = std::fs::remove_file(self.path.with_extension("json"));
        Ok(result)
    }
}

/// Write one line per record; the size of each.
fn write_records<W: Write>(out: &mut BufWriter<Counted<W>>, pending: &[Pending]) -> std::io::Result<Vec<u64>> {
    let mut sizes = Vec::with_capacity(pending.len());
    for (id, fetched, entries) in pending {
        let before = out.get_ref().1 + out.buffer().len() as u64;
        let record = RecordOut { id, fetched_ms: unix_ms(*fetched), entries: entries.as_deref() };
        serde_json::to_writer(&mut *out, &record)?;
        out.write_all(b"\n")?;
        sizes.push(out.get_ref().1 + out.buffer().len() as u64 - before);
    }
    Ok(sizes)
}

/// A writer that counts the bytes it has passed on (the second field, from a start value).
struct Counted<W>(W, u64);

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1 += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// What an earlier run wrote to `path`, up to its first bad record; nothing (with one warning)
/// when the file is unreadable or its header is corrupt, of another format or configuration.
fn load(path: &Path, key: &str) -> FileState {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileState::default(),
        Err(e) => {
            tracing::warn!(file = %path.display(), "cannot read the listing store, listing from the cloud: {e}");
            return FileState::default();
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    match read_line::<Header>(&mut reader) {
        Ok(Some((header, len))) if header.format == FORMAT && header.key == key => {
            let mut state = FileState { log_len: Some(len), ..FileState::default() };
            read_records(&mut reader, path, &mut state);
            state
        }
        Ok(Some(_)) => {
            tracing::warn!(file = %path.display(), "the listing store is of another format or configuration; ignoring it");
            FileState::default()
        }
        Ok(None) | Err(_) => {
            tracing::warn!(file = %path.display(), "the listing store is corrupt, listing from the cloud");
            FileState::default()
        }
    }
}

/// The records after the header, into `state`, up to the first that is torn or corrupt.
fn read_records(reader: &mut impl BufRead, path: &Path, state: &mut FileState) {
    loop {
        let (record, len) = match read_line::<RecordIn>(reader) {
            Ok(Some(line)) => line,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(file = %path.display(), "the listing store ends in a torn or corrupt record; what follows it is dropped: {e}");
                return;
            }
        };
        *state.log_len.as_mut().expect("set after the header") += len;
        let fetched = UNIX_EPOCH + Duration::from_millis(record.fetched_ms);
        match record.entries {
            Some(entries) => {
                state.set_live(&record.id, len);
                let entries = Arc::new(entries);
                state.dirs.insert(record.id, Stored { fetched, entries, restored: true });
            }
            // Listed again unchanged: only the time moves.
            None => {
                if let Some(stored) = state.dirs.get_mut(&record.id) {
                    stored.fetched = fetched;
                }
            }
        }
    }
}

/// The next line parsed as `T`, and its length with its `\n`; `None` at the end of the file.
/// A line without its `\n` (a torn append) is an error even when it parses.
fn read_line<T: serde::de::DeserializeOwned>(reader: &mut impl BufRead) -> std::io::Result<Option<(T, u64)>> {
    if reader.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let mut line = Line { inner: reader, len: 0, ended: false };
    // Streamed, not read into a buffer first: a folder of a million entries is one long line.
    let value = serde_json::from_reader(&mut line)?;
    if !line.ended {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "a record without its end of line"));
    }
    Ok(Some((value, line.len)))
}

/// One line of `inner`, without its `\n`, as a reader; `ended` once the `\n` was read.
struct Line<'a, R> {
    inner: &'a mut R,
    len: u64,
    ended: bool,
}

impl<R: BufRead> Read for Line<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.ended || buf.is_empty() {
            return Ok(0);
        }
        let available = self.inner.fill_buf()?;
        // serde_json reads a byte at a time: look no further than what is asked for.
        let available = &available[..available.len().min(buf.len())];
        let end = available.iter().position(|&b| b == b'\n');
        if end == Some(0) {
            self.inner.consume(1);
            self.len += 1;
            self.ended = true;
            return Ok(0);
        }
        let n = end.unwrap_or(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.inner.consume(n);
        self.len += n as u64;
        Ok(n)
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
