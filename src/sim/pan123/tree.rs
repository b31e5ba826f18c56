//! The simulated drive: the data directory, seen through int64 `FileId`s.
//!
//! Ids are handed out the first time a path is listed (children in name order) and kept for
//! the simulator's life, so a test may add files to the data directory after the simulator
//! started and before the client lists them (the 1,234-entry folder is made that way).
//! Ids start at 17,000,000,000 so that a client that squeezes them into 32 bits fails. The
//! root is `0`. Changes (`edit`) keep ids across renames, moves and the trash. Listings read
//! the disk every time; a file's MD5 (its `Etag`) is cached by
//! path, size and mtime.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use md5::{Digest, Md5};
use serde_json::{Value, json};

use super::verify::rfc3339_cst;

/// First id handed out.
const FIRST_ID: i64 = 17_000_000_000;
/// The account's UID; also the first part of every `S3KeyFlag`.
pub const UID: i64 = 1_814_435_971;

#[derive(Debug, Clone)]
pub struct Node {
    pub id: i64,
    pub parent: i64,
    /// `/a/b.mp4`; the root is `""`.
    pub rel: String,
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    pub mtime: i64,
}

#[derive(Default)]
pub(super) struct Ids {
    pub by_rel: HashMap<String, i64>,
    pub by_id: HashMap<i64, String>,
    pub next: i64,
}

pub struct Tree {
    pub(super) data_dir: PathBuf,
    pub(super) ids: Mutex<Ids>,
    /// MD5s by (id, size, mtime): an id is one file (a replaced file gets a new one), so a
    /// same-sized replacement within the second is not taken for the old content.
    pub(super) md5: Mutex<HashMap<(i64, u64, i64), String>>,
    /// Items in the trash, oldest first (see `edit`).
    pub(super) trash: Mutex<Vec<super::edit::Trashed>>,
    /// Held by every change, so a change's disk and id steps are not interleaved.
    pub(super) writes: Mutex<()>,
    /// The trash's bytes and the upload parts, beside the data dir.
    pub(super) staging: crate::sim::store::Staging,
}

impl Tree {
    pub fn new(data_dir: PathBuf) -> Self {
        let mut ids = Ids { next: FIRST_ID, ..Ids::default() };
        ids.by_rel.insert(String::new(), 0);
        ids.by_id.insert(0, String::new());
        Tree {
            staging: crate::sim::store::Staging::new(&data_dir, "pan123-sim"),
            data_dir,
            ids: Mutex::new(ids),
            md5: Mutex::new(HashMap::new()),
            trash: Mutex::new(Vec::new()),
            writes: Mutex::new(()),
        }
    }

    pub(super) fn path(&self, rel: &str) -> PathBuf {
        rel.split('/').filter(|s| !s.is_empty()).fold(self.data_dir.clone(), |p, s| p.join(s))
    }

    /// The node of `id`, if that id was handed out and its path still exists.
    pub fn node(&self, id: i64) -> Option<Node> {
        let rel = self.ids.lock().unwrap().by_id.get(&id)?.clone();
        let parent = match rel.rfind('/') {
            Some(i) if !rel.is_empty() => *self.ids.lock().unwrap().by_rel.get(&rel[..i]).unwrap_or(&0),
            _ => 0,
        };
        self.stat(&rel, id, parent)
    }

    pub(super) fn stat(&self, rel: &str, id: i64, parent: i64) -> Option<Node> {
        let meta = std::fs::metadata(self.path(rel)).ok()?;
        let mtime =
            meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs() as i64);
        Some(Node {
            id,
            parent,
            rel: rel.to_string(),
            name: rel.rsplit('/').next().unwrap_or_default().to_string(),
            is_dir: meta.is_dir(),
            size: if meta.is_dir() { 0 } else { meta.len() },
            mtime,
        })
    }

    /// The children of folder `id`, in the service's `file_id desc` order.
    pub fn children(&self, id: i64) -> Option<Vec<Node>> {
        let dir = self.node(id).filter(|n| n.is_dir)?;
        let mut names: Vec<String> = std::fs::read_dir(self.path(&dir.rel))
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let rel = format!("{}/{name}", dir.rel);
            let child_id = {
                let mut ids = self.ids.lock().unwrap();
                match ids.by_rel.get(&rel) {
                    Some(i) => *i,
                    None => {
                        let i = ids.next;
                        ids.next += 1;
                        ids.by_rel.insert(rel.clone(), i);
                        ids.by_id.insert(i, rel.clone());
                        i
                    }
                }
            };
            if let Some(node) = self.stat(&rel, child_id, id) {
                out.push(node);
            }
        }
        out.sort_by_key(|n| std::cmp::Reverse(n.id));
        Some(out)
    }

    /// Lowercase hex MD5 of a file's content (empty for folders).
    pub fn etag(&self, node: &Node) -> String {
        if node.is_dir {
            return String::new();
        }
        let key = (node.id, node.size, node.mtime);
        if let Some(e) = self.md5.lock().unwrap().get(&key) {
            return e.clone();
        }
        let digest = std::fs::read(self.path(&node.rel)).map(|b| Md5::digest(&b)).unwrap_or_default();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.md5.lock().unwrap().insert(key, hex.clone());
        hex
    }

    /// Whether `id` is `ancestor` or lies under it.
    pub fn is_within(&self, id: i64, ancestor: &str) -> bool {
        let ids = self.ids.lock().unwrap();
        ids.by_id
            .get(&id)
            .is_some_and(|rel| ancestor.is_empty() || rel == ancestor || rel.starts_with(&format!("{ancestor}/")))
    }

    /// The id of a folder path (`""` is the root), assigning ids along the way.
    pub fn id_of(&self, rel: &str) -> Option<i64> {
        let mut id = 0;
        for seg in rel.split('/').filter(|s| !s.is_empty()) {
            id = self.children(id)?.into_iter().find(|n| n.name == seg)?.id;
        }
        Some(id)
    }

    /// (bytes used, file count) of the whole drive, the trash included (its files still take
    /// space until they are purged, which this simulator never does).
    pub fn usage(&self) -> (u64, u64) {
        let mut acc = (0, 0);
        for dir in std::iter::once(self.data_dir.clone()).chain(self.staging.existing("trash")) {
            walk_files(&dir, &mut |_, len| acc = (acc.0 + len, acc.1 + 1));
        }
        acc
    }

    /// A File object as `file/list/new` and `share/get` write it (pan123-protocol.md §2.4, §5).
    pub fn file_json(&self, node: &Node) -> Value {
        json!({
            "FileId": node.id,
            "FileName": node.name,
            "Type": if node.is_dir { 1 } else { 0 },
            "Size": node.size,
            "Etag": self.etag(node),
            "S3KeyFlag": if node.is_dir { String::new() } else { format!("{UID}-0") },
            "UpdateAt": rfc3339_cst(node.mtime),
            "CreateAt": rfc3339_cst(node.mtime),
            "DownloadUrl": "",
            "ParentFileId": node.parent,
            "Status": 0,
            "Trashed": false,
        })
    }
}

/// Call `f(path, length)` for every file below `dir`.
pub(super) fn walk_files(dir: &std::path::Path, f: &mut impl FnMut(&std::path::Path, u64)) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => walk_files(&e.path(), f),
            Ok(m) => f(&e.path(), m.len()),
            Err(_) => {}
        }
    }
}
