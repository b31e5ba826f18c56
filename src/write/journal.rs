//! The upload journal: one record per file waiting to reach its provider, beside its staging
//! file, in `<dir>/uploads/` (`dir` is `[cache] dir`, else `state_dir`).
//!
//! `<id>.data` is the staged content and `<id>.json` its [`Record`], written atomically
//! (temp file, fsync, rename, fsync of the folder: `crate::state::write_atomic`) after the
//! staging file was fsynced. So a record on disk always names complete, durable bytes, and a
//! file whose `close` returned 0 is found again by the next start however the process ended.
//! A staging file without a record was never closed: it is removed at the next start.
//!
//! `panmount uploads` reads the same folder, with or without a mount running; a running
//! upload also leaves `<id>.run` (the process id and bytes sent, rewritten every second).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What the journal knows of one upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// The storage's `path` in the config (`/pikpak`).
    pub storage: String,
    /// The folder the file goes to (the provider's id), and the folder's path in the mount,
    /// for people reading `panmount uploads`.
    pub parent_id: String,
    pub parent_path: String,
    /// The provider's name for the file (escaping undone).
    pub name: String,
    pub size: u64,
    /// The provider's content hash of the staged bytes; `None` when the writes were not in
    /// order (computed again before the upload).
    pub hash: Option<String>,
    /// A time set by `utimens`, in nanoseconds since 1970, kept for the file once uploaded.
    pub mtime_ns: Option<u64>,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Failed for good: kept (with its staging file) until a restart tries it again.
    pub failed: bool,
    /// When the file was staged, in seconds since 1970.
    pub created: u64,
    /// The content is a file the provider already has, copied by its hash (`copy_file_range`
    /// of a whole file, see `crate::fs::copy`): the staging file holds no byte of it, and the
    /// upload is an instant upload by this hash, never the staged bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<CopiedFrom>,
}

/// Where a copy made by the provider came from: its hash, and the source file (read when the
/// copy's bytes are needed here after all: a write into the copy, or a read before it lands).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopiedFrom {
    pub hash: crate::drivers::ContentHash,
    /// The source's storage (its `path` in the config) and entry.
    pub storage: String,
    pub entry: crate::drivers::Entry,
}

impl Record {
    /// The path in the mount the file will have (`/pikpak/Movies/a.mkv`).
    pub fn shown_path(&self) -> String {
        let parent = self.parent_path.trim_end_matches('/');
        format!("{parent}/{}", self.name)
    }
}

/// Progress of an upload running in some process (`<id>.run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    pub pid: u32,
    pub sent: u64,
}

#[derive(Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// The journal in `dir` (created when missing, mode 0700: staged files are the user's data).
    pub fn open(dir: &Path) -> std::io::Result<Journal> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        Ok(Journal { dir: dir.to_path_buf() })
    }

    /// The journal in `dir`, for reading only (`panmount uploads`): nothing is created.
    pub fn at(dir: &Path) -> Journal {
        Journal { dir: dir.to_path_buf() }
    }

    pub fn staging_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.data"))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn running_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.run"))
    }

    /// Write (or replace) a record, durably.
    pub fn put(&self, record: &Record) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(record).expect("a record serialises");
        crate::state::write_atomic(&self.record_path(&record.id), &json)
    }

    /// Forget an upload: its record, then its staging file.
    pub fn remove(&self, id: &str) {
        for path in [self.record_path(id), self.running_path(id), self.staging_path(id)] {
            if let Err(err) = std::fs::remove_file(&path)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %err, "cannot remove an upload's file");
            }
        }
    }

    /// Every record, oldest first. A record that cannot be read is logged and left alone (never
    /// deleted: it may be the only trace of a user's file).
    pub fn records(&self) -> Vec<Record> {
        let mut out = Vec::new();
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return out };
        for item in dir.flatten() {
            let path = item.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()))
            {
                Ok(record) => out.push(record),
                Err(err) => {
                    tracing::error!(path = %path.display(), error = %err, "unreadable upload record; left as it is")
                }
            }
        }
        out.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        out
    }

    /// Remove staging files no record names: files whose writer never closed them (a crash
    /// mid-write), which no promise covers.
    pub fn remove_orphans(&self, records: &[Record]) -> usize {
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return 0 };
        let mut removed = 0;
        for item in dir.flatten() {
            let path = item.path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
            let orphan = match path.extension().and_then(|e| e.to_str()) {
                Some("data") | Some("run") => !records.iter().any(|r| r.id == stem),
                Some("tmp") => true,
                _ => false,
            };
            if orphan && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    pub fn set_running(&self, id: &str, running: Running) {
        let json = serde_json::to_vec(&running).expect("serialises");
        let _ = std::fs::write(self.running_path(id), json);
    }

    pub fn clear_running(&self, id: &str) {
        let _ = std::fs::remove_file(self.running_path(id));
    }

    /// The progress file of `id`, when the process that wrote it still runs.
    pub fn running(&self, id: &str) -> Option<Running> {
        let running: Running = serde_json::from_slice(&std::fs::read(self.running_path(id)).ok()?).ok()?;
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(running.pid as i32, 0) } == 0;
        alive.then_some(running)
    }
}

/// A new upload id: the time and a random part, so ids sort by creation and never repeat.
pub fn new_id() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{:012x}-{:08x}", now.as_millis(), rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, created: u64) -> Record {
        Record {
            id: id.into(),
            storage: "/pikpak".into(),
            parent_id: "P".into(),
            parent_path: "/pikpak/Movies".into(),
            name: "a.mkv".into(),
            size: 3,
            hash: Some("H".into()),
            mtime_ns: None,
            attempts: 0,
            last_error: None,
            failed: false,
            created,
            copied_from: None,
        }
    }

    #[test]
    fn records_round_trip_oldest_first_and_orphans_go() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("uploads")).unwrap();
        let (a, b) = (record("b-late", 20), record("a-early", 10));
        for r in [&a, &b] {
            std::fs::write(journal.staging_path(&r.id), b"abc").unwrap();
            journal.put(r).unwrap();
        }
        std::fs::write(journal.staging_path("never-closed"), b"x").unwrap();
        let records = journal.records();
        assert_eq!(records, vec![b.clone(), a.clone()]);
        assert_eq!(records[1].shown_path(), "/pikpak/Movies/a.mkv");
        assert_eq!(journal.remove_orphans(&records), 1);
        assert!(!journal.staging_path("never-closed").exists());
        assert!(journal.staging_path("a-early").exists());
        journal.remove("a-early");
        assert!(!journal.staging_path("a-early").exists());
        assert_eq!(journal.records(), vec![a]);
    }

    #[test]
    fn a_provider_copy_is_recorded_by_its_source_and_older_records_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let mut copy = record("c", 30);
        let entry = crate::drivers::Entry { version: "ABC".into(), ..crate::drivers::Entry::root_folder("F1") };
        let hash = crate::drivers::ContentHash { kind: crate::drivers::HashKind::Gcid, value: "ABC".into() };
        copy.copied_from = Some(CopiedFrom { hash, storage: "/pikshare".into(), entry });
        journal.put(&copy).unwrap();
        assert_eq!(journal.records(), vec![copy.clone()]);
        // A record written before `copied_from` existed has none.
        let mut old = serde_json::to_value(record("d", 40)).unwrap();
        old.as_object_mut().unwrap().remove("copied_from");
        std::fs::write(dir.path().join("d.json"), old.to_string()).unwrap();
        assert_eq!(journal.records(), vec![copy, record("d", 40)]);
    }

    #[test]
    fn a_running_upload_is_seen_only_while_its_process_lives() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        journal.set_running("x", Running { pid: std::process::id(), sent: 7 });
        assert_eq!(journal.running("x"), Some(Running { pid: std::process::id(), sent: 7 }));
        journal.set_running("y", Running { pid: i32::MAX as u32, sent: 7 });
        assert_eq!(journal.running("y"), None);
    }
}
