//! Times set by `utimens` (`touch -d`, `cp -p`, `rsync -t`) on files the providers cannot set a
//! time on: kept here, persisted beside the upload journal, and shown instead of the
//! provider's time. Keyed by the file's id and version, so a file changed on the provider
//! (a new version) shows the provider's time again, and a second `rsync -a` of the same tree
//! sees the times it set and transfers nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::drivers::{Entry, EntryRef};

/// Past this many, the oldest half is dropped (a time is a nicety, never data).
const MAX_TIMES: usize = 1_000_000;

/// "id\0version" -> (nanoseconds since 1970, the order it was set in).
type TimeMap = HashMap<String, (u64, u64)>;

pub struct Times {
    path: PathBuf,
    /// The times, and the next order number.
    map: Mutex<(TimeMap, u64)>,
}

impl Times {
    /// The times stored at `path` (none when it is missing or unreadable).
    pub fn load(path: PathBuf) -> Times {
        let map: TimeMap = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let next = map.values().map(|v| v.1).max().unwrap_or(0) + 1;
        Times { path, map: Mutex::new((map, next)) }
    }

    pub fn get(&self, entry: EntryRef<'_>) -> Option<SystemTime> {
        let map = self.map.lock().unwrap();
        map.0.get(&key(entry.id, entry.version)).map(|&(ns, _)| UNIX_EPOCH + Duration::from_nanos(ns))
    }

    /// Keep `time` for `entry` and persist (blocking: a small file written atomically).
    pub fn set(&self, entry: &Entry, time: SystemTime) {
        let ns = time.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        let json = {
            let mut guard = self.map.lock().unwrap();
            let (map, next) = &mut *guard;
            map.insert(key(&entry.id, &entry.version), (ns, *next));
            *next += 1;
            if map.len() > MAX_TIMES {
                let mut order: Vec<u64> = map.values().map(|v| v.1).collect();
                order.sort_unstable();
                let cut = order[order.len() / 2];
                map.retain(|_, v| v.1 >= cut);
            }
            serde_json::to_vec(map).expect("serialises")
        };
        if let Err(err) = crate::state::write_atomic(&self.path, &json) {
            tracing::warn!(path = %self.path.display(), error = %err, "cannot persist file times");
        }
    }
}

fn key(id: &str, version: &str) -> String {
    format!("{id}\0{version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: &str) -> Entry {
        Entry {
            id: "F".into(),
            name: "a".into(),
            is_dir: false,
            size: Some(1),
            mtime: UNIX_EPOCH,
            version: version.into(),
        }
    }

    #[test]
    fn a_time_survives_a_restart_and_not_a_new_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("times.json");
        let t = UNIX_EPOCH + Duration::from_nanos(1_600_000_000_123_456_789);
        Times::load(path.clone()).set(&entry("v1"), t);
        let again = Times::load(path);
        assert_eq!(again.get(entry("v1").view()), Some(t));
        assert_eq!(again.get(entry("v2").view()), None);
    }
}
