//! Small per-storage state kept across restarts in the config's `state_dir`: rotated refresh
//! tokens and generated device ids.
//!
//! Why it exists: PikPak rotates the refresh token on every refresh and invalidates the old one
//! at once. A token that lived only in memory would be lost by a crash or `kill -9`, and the
//! config's token would then be spent already: the account would need a new password login
//! (which may hit a captcha wall). So the new token is written here, durably, *before* it is
//! used (INTERFACE.md promises that).
//!
//! One JSON object per storage, in `<state_dir>/<name>.json`, where `name` is
//! `<driver>-<16 hex of md5(driver, account identity)>` (see [`StateFile::key`]): stable across
//! restarts and config edits that do not change the account, and free of the account name
//! itself. Writes are atomic: a temp file in the same folder, written, fsynced, renamed over the
//! old file, then the folder fsynced; the file is mode 0600 from its creation, since it holds a
//! credential.
//!
//! Without `state_dir` nothing is persisted; the driver logs once (info) that rotated tokens
//! will not survive a restart.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde_json::{Map, Value};

/// The state file of one storage (or nothing, when no `state_dir` is configured).
#[derive(Debug, Clone)]
pub struct StateFile {
    path: Option<PathBuf>,
}

impl StateFile {
    /// The file for `driver` and an account identity (username, share id, ...) in `dir`.
    pub fn new(dir: Option<&Path>, driver: &str, identity: &[&str]) -> Self {
        StateFile { path: dir.map(|d| d.join(format!("{}.json", Self::key(driver, identity)))) }
    }

    /// `<driver>-<16 hex chars of md5(driver \0 identity parts joined by \0)>`.
    pub fn key(driver: &str, identity: &[&str]) -> String {
        let mut h = Md5::new();
        h.update(driver.as_bytes());
        for part in identity {
            h.update([0u8]);
            h.update(part.as_bytes());
        }
        let hex: String = h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{driver}-{hex}")
    }

    pub fn is_persistent(&self) -> bool {
        self.path.is_some()
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The stored object; empty when there is no file (or no state dir). A corrupt file is
    /// reported and treated as empty, never as a reason to refuse to start.
    pub fn load(&self) -> Map<String, Value> {
        let Some(path) = &self.path else { return Map::new() };
        match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => map,
                _ => {
                    tracing::warn!(file = %path.display(), "state file is not a JSON object; ignoring it");
                    Map::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => {
                tracing::warn!(file = %path.display(), "cannot read state file: {e}");
                Map::new()
            }
        }
    }

    /// A string field of the stored object.
    pub fn get(&self, key: &str) -> Option<String> {
        self.load().get(key).and_then(Value::as_str).map(str::to_owned)
    }

    /// Set `key` to `value` (read-modify-write of the whole file, atomically). Without a state
    /// dir this does nothing and succeeds.
    pub fn set(&self, key: &str, value: &str) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let mut map = self.load();
        map.insert(key.to_owned(), Value::String(value.to_owned()));
        write_atomic(path, &serde_json::to_vec_pretty(&Value::Object(map)).expect("a map serialises"))
    }
}

/// Replace `path` with `bytes` so that a crash at any moment leaves either the old or the new
/// content: temp file in the same folder (mode 0600), write, fsync, rename, fsync the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// [`write_atomic`] with the content written by `write` (streamed, for files too big to build
/// in memory first).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(format!(".{name}.{}.{:08x}.tmp", std::process::id(), rand::random::<u32>()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        write(&mut f)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    remove_orphans(dir, name);
    result
}

/// Remove temp files of `name` left by a process that died mid-write (`kill -9`): they may
/// hold a token, and nothing else would ever clean them. A live writer's temp file stays.
fn remove_orphans(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|f| f.strip_suffix(".tmp"))
        else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn temp_files_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pikpak.json");
        // pid_max is at most 2^22: this pid is never alive. Our own pid is.
        let dead = dir.path().join(".pikpak.json.4194999.0badcafe.tmp");
        let live = dir.path().join(format!(".pikpak.json.{}.00000001.tmp", std::process::id()));
        let other = dir.path().join(".other.json.4194999.0badcafe.tmp");
        for f in [&dead, &live, &other] {
            std::fs::write(f, "{}").unwrap();
        }
        write_atomic(&path, b"{}").unwrap();
        assert!(!dead.exists(), "a dead writer's temp file goes");
        assert!(live.exists() && other.exists(), "a live writer's, and another file's, stay");
    }

    #[test]
    fn set_get_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(Some(dir.path()), "pikpak", &["alice", "web"]);
        assert_eq!(f.get("refresh_token"), None);
        f.set("refresh_token", "os.r1").unwrap();
        f.set("device_id", "abc").unwrap();
        f.set("refresh_token", "os.r2").unwrap();
        assert_eq!(f.get("refresh_token").as_deref(), Some("os.r2"));
        assert_eq!(f.get("device_id").as_deref(), Some("abc"));
        let mode = std::fs::metadata(f.path().unwrap()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // No temp files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A reader never sees a half-written file: each write replaces the file (a new inode,
    /// by rename) with content that is already complete.
    #[test]
    fn writes_are_atomic() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let (a, b) = (vec![b'a'; 256 << 10], vec![b'b'; 128 << 10]);
        write_atomic(&path, &a).unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        // Held open, the first file's inode number cannot be given to a later one.
        let _first = std::fs::File::open(&path).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..200 {
                    write_atomic(&path, if i % 2 == 0 { &b } else { &a }).unwrap();
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            });
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                let got = std::fs::read(&path).unwrap();
                assert!(got == a || got == b, "a torn read of {} bytes", got.len());
                reads += 1;
            }
        });
        assert_ne!(std::fs::metadata(&path).unwrap().ino(), inode, "replaced by rename, not rewritten");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left");
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        let a = StateFile::key("pikpak", &["alice", "web"]);
        assert_eq!(a, StateFile::key("pikpak", &["alice", "web"]));
        assert_ne!(a, StateFile::key("pikpak", &["alice", "android"]));
        assert_ne!(StateFile::key("pikpak", &["ab", "c"]), StateFile::key("pikpak", &["a", "bc"]));
        assert!(a.starts_with("pikpak-") && a.len() == "pikpak-".len() + 16);
    }

    #[test]
    fn no_state_dir_persists_nothing() {
        let f = StateFile::new(None, "pikpak", &["alice"]);
        assert!(!f.is_persistent());
        f.set("refresh_token", "x").unwrap();
        assert_eq!(f.get("refresh_token"), None);
    }
}
