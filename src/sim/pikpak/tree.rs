//! The node tree's bookkeeping for writes: paths, the trash, free names, quota usage, and where
//! each node lives on disk. The data dir mirrors the tree: a node's bytes (or directory) are
//! at `rel_path`, which is its logical path unless that cannot be (a name a directory cannot
//! hold, two folders of one name, a new file where a trashed one still keeps its bytes): then
//! the disk name gets `~` and the node's id. Renames and moves rename on disk and rewrite the
//! `rel_path` of everything below, so the CDN keeps serving through ordinary signed links.
//! Trashed nodes keep their bytes where they are (a restarted simulator, which scans the data
//! dir, forgets the trash and shows them again).
//!
//! Also the test helpers that look nodes up by logical path ([`PikPakSim::node`], ...).

use std::io;
use std::path::Path;

use super::{Inner, Node, PikPakSim, md5_hex};

/// What a test sees of a node ([`PikPakSim::node`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub is_dir: bool,
    pub size: u64,
    /// The listed `hash` (the real GCID for uploaded content).
    pub hash: String,
    /// `PHASE_TYPE_COMPLETE` or `PHASE_TYPE_PENDING`.
    pub phase: String,
    /// In the trash, itself or through a folder above it.
    pub trashed: bool,
    /// Where its bytes are, under the data dir (`/a/b.txt`).
    pub rel_path: String,
}

impl Inner {
    /// The logical path of node `id` (`/a/b.txt`), from the names up to the root.
    pub(crate) fn path_of(&self, id: &str) -> String {
        let mut parts = Vec::new();
        let mut cur = self.nodes.get(id);
        while let Some(n) = cur {
            parts.push(n.name.as_str());
            cur = self.nodes.get(&n.parent_id);
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// Whether `id` or a folder above it is in the trash.
    pub(crate) fn in_trash(&self, id: &str) -> bool {
        let mut cur = self.nodes.get(id);
        while let Some(n) = cur {
            if n.trashed {
                return true;
            }
            cur = self.nodes.get(&n.parent_id);
        }
        false
    }

    /// Whether `id` is `ancestor` or below it.
    pub(crate) fn is_within(&self, id: &str, ancestor: &str) -> bool {
        let mut cur = self.nodes.get(id);
        while let Some(n) = cur {
            if n.id == ancestor {
                return true;
            }
            cur = self.nodes.get(&n.parent_id);
        }
        false
    }

    /// An untrashed node other than `except` holds `name` in folder `parent`.
    pub(crate) fn name_taken(&self, parent: &str, name: &str, except: &str) -> bool {
        self.nodes.values().any(|n| n.parent_id == parent && n.name == name && n.id != except && !n.trashed)
    }

    /// `name`, or the first of `name(1)`, `name(2)`, ... (before the extension: `a(1).txt`)
    /// free in `parent`, as the service renames on collisions (§8.3, §8.7).
    pub(crate) fn free_name(&self, parent: &str, name: &str, except: &str) -> String {
        crate::sim::store::free_name(name, |n| self.name_taken(parent, n, except))
    }

    /// A fresh id shaped like PikPak's (26 characters).
    pub(crate) fn new_id(&mut self, is_dir: bool) -> String {
        self.seq += 1;
        let hex = md5_hex(format!("new:{}:{}", self.seq, rand::random::<u64>()).as_bytes());
        format!("{}{}", if is_dir { "VFold" } else { "VFile" }, &hex[..21])
    }

    /// Quota usage: every complete file, trashed ones included (as on the real service).
    pub(crate) fn usage(&self) -> u64 {
        self.nodes.values().filter(|n| !n.is_dir && n.is_complete()).map(|n| n.size).sum()
    }

    /// The node at logical `path`, preferring one not in the trash.
    pub(crate) fn find_path(&self, path: &str) -> Option<&Node> {
        let mut found: Vec<&Node> = self.nodes.values().filter(|n| self.path_of(&n.id) == path).collect();
        found.sort_by_key(|n| self.in_trash(&n.id));
        found.into_iter().next()
    }

    /// Where node `id` should live on disk: under its parent's directory, by its name when a
    /// directory can hold that name and no other node has that place (on disk, or reserved by
    /// a pending upload).
    pub(crate) fn disk_slot(&self, data_dir: &Path, id: &str) -> String {
        let Some(n) = self.nodes.get(id) else { return String::new() };
        let dir = self.nodes.get(&n.parent_id).map_or("", |p| p.rel_path.as_str());
        let plain = !n.name.is_empty() && n.name != "." && n.name != ".." && n.name.len() <= 200;
        let plain = plain && !n.name.contains(['/', '\0']);
        // Taken: by bytes on disk (not this node's), or reserved by a live pending upload.
        let free = |rel: &str| {
            !self.nodes.values().any(|o| o.id != n.id && o.rel_path == rel && !o.trashed)
                && (rel == n.rel_path || !exists(data_dir, rel))
        };
        let want = format!("{dir}/{}", n.name);
        if plain && free(&want) {
            return want;
        }
        let alt = if plain { format!("{want}~{}", n.id) } else { format!("{dir}/~{}", n.id) };
        if free(&alt) { alt } else { format!("{dir}/~{}", n.id) }
    }

    /// Move node `id` on disk to its slot (after a rename, move or untrash) and rewrite the
    /// `rel_path` of the nodes below it. A node without bytes yet (pending) only takes the path.
    pub(crate) fn place(&mut self, data_dir: &Path, id: &str) -> io::Result<()> {
        let Some(old) = self.nodes.get(id).map(|n| n.rel_path.clone()) else { return Ok(()) };
        let new = self.disk_slot(data_dir, id);
        if new == old {
            return Ok(());
        }
        if exists(data_dir, &old) {
            std::fs::rename(disk(data_dir, &old), disk(data_dir, &new))?;
        }
        let prefix = format!("{old}/");
        for n in self.nodes.values_mut() {
            if n.id == id {
                n.rel_path = new.clone();
            } else if let Some(rest) = n.rel_path.strip_prefix(&prefix) {
                n.rel_path = format!("{new}/{rest}");
            }
        }
        Ok(())
    }
}

/// The disk path of `rel` (`/a/b`) under `data_dir`.
pub(crate) fn disk(data_dir: &Path, rel: &str) -> std::path::PathBuf {
    data_dir.join(rel.trim_start_matches('/'))
}

fn exists(data_dir: &Path, rel: &str) -> bool {
    std::fs::symlink_metadata(disk(data_dir, rel)).is_ok()
}

/// Test helpers: look nodes up by logical path (`/a/b.txt`, names as the service has them).
impl PikPakSim {
    /// The node at `path` (one not in the trash when there are several).
    pub fn node(&self, path: &str) -> Option<NodeInfo> {
        let inner = self.settled();
        let n = inner.find_path(path)?;
        Some(NodeInfo {
            id: n.id.clone(),
            is_dir: n.is_dir,
            size: n.size,
            hash: n.hash.clone(),
            phase: n.phase().to_owned(),
            trashed: inner.in_trash(&n.id),
            rel_path: n.rel_path.clone(),
        })
    }

    /// The bytes stored for the file at `path`, `None` when there is no such complete file.
    pub fn bytes(&self, path: &str) -> Option<Vec<u8>> {
        let rel = {
            let inner = self.settled();
            let n = inner.find_path(path).filter(|n| !n.is_dir && n.stored_at.is_some() || n.complete)?;
            n.rel_path.clone()
        };
        std::fs::read(disk(&self.data_dir, &rel)).ok()
    }

    /// The logical paths of the nodes put in the trash (not those only below a trashed
    /// folder), sorted.
    pub fn trashed_paths(&self) -> Vec<String> {
        let inner = self.settled();
        let mut paths: Vec<String> = inner.nodes.values().filter(|n| n.trashed).map(|n| inner.path_of(&n.id)).collect();
        paths.sort();
        paths
    }

    /// Take the trashed node at `path` out of the trash, as batchUntrash does (renamed to
    /// `name(1)` when its name was taken meanwhile). Panics when there is none.
    pub fn untrash(&self, path: &str) {
        let mut inner = self.settled();
        let id = inner
            .nodes
            .values()
            .find(|n| n.trashed && inner.path_of(&n.id) == path)
            .map(|n| n.id.clone())
            .expect("no such trashed node in the simulator");
        super::mutate::untrash_one(&mut inner, &self.data_dir, &id).expect("untrash on disk");
    }
}
