//! Changes to the simulated drive (pan123-protocol.md §2.6, §2.7): new folders and files,
//! rename, move, trash and restore. The data dir stays the live tree, so listings, the id map
//! and the CDN serve a changed or uploaded item exactly like a seeded one: a change renames on
//! disk and rewrites the ids of the paths it moved. The trash is a directory in the staging
//! area beside the data dir; a trashed item keeps its id (and those below it) for a restore,
//! and is gone from listings meanwhile.
//!
//! Choices where the reference is silent: names are compared exactly (case matters); a name
//! holding `/` or `\0`, or `.`/`..`, is refused; an item restored into a folder that is gone
//! lands in the root, and under `name(1)` when its name was taken meanwhile.

use std::path::{Path, PathBuf};

use super::tree::{Node, Tree};
use crate::sim::store::free_name;

/// Why a change was refused (the handlers turn it into an error code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    NameTaken,
    Invalid(&'static str),
    Disk(String),
}

/// An item in the trash.
#[derive(Debug, Clone)]
pub struct Trashed {
    pub id: i64,
    pub parent: i64,
    pub name: String,
    /// Where it was (`/a/b.txt`).
    pub rel: String,
    /// Where its bytes (or directory) are now.
    pub disk: PathBuf,
    /// The ids of what was below it, by path relative to it (`/x/y`).
    pub below: Vec<(String, i64)>,
}

/// A file to create ([`Tree::add_file`]).
pub struct NewFile<'a> {
    pub parent: i64,
    pub name: &'a str,
    /// Lowercase hex MD5 of the bytes, remembered as the file's `Etag`.
    pub md5: &'a str,
    /// The FileId to give it (fresh when `None`).
    pub id: Option<i64>,
    pub replace: bool,
}

fn disk_err(e: std::io::Error) -> Refusal {
    Refusal::Disk(e.to_string())
}

fn check_name(name: &str) -> Result<(), Refusal> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(Refusal::Invalid("文件名不合法"));
    }
    Ok(())
}

impl Tree {
    /// A fresh id, tied to no path yet.
    pub fn new_id(&self) -> i64 {
        let mut ids = self.ids.lock().unwrap();
        ids.next += 1;
        ids.next - 1
    }

    /// Tie `rel` to `id` (a fresh one when `None`), replacing whatever either was tied to.
    fn register(&self, rel: &str, id: Option<i64>) -> i64 {
        let id = id.unwrap_or_else(|| self.new_id());
        let mut ids = self.ids.lock().unwrap();
        if let Some(old) = ids.by_rel.insert(rel.to_string(), id) {
            ids.by_id.remove(&old);
        }
        if let Some(old_rel) = ids.by_id.insert(id, rel.to_string()) {
            if old_rel != rel {
                ids.by_rel.remove(&old_rel);
            }
        }
        id
    }

    /// Untie `rel` and everything below it: their ids by path relative to `rel` (`""` first).
    fn forget(&self, rel: &str) -> Vec<(String, i64)> {
        let mut ids = self.ids.lock().unwrap();
        let prefix = format!("{rel}/");
        let gone: Vec<(String, i64)> = ids
            .by_rel
            .iter()
            .filter(|(r, _)| *r == rel || r.starts_with(&prefix))
            .map(|(r, id)| (r[rel.len()..].to_string(), *id))
            .collect();
        for (suffix, id) in &gone {
            ids.by_rel.remove(&format!("{rel}{suffix}"));
            ids.by_id.remove(id);
        }
        let mut gone = gone;
        gone.sort();
        gone
    }

    /// Move `rel` (and below) to `new` in the id map.
    fn rebase(&self, rel: &str, new: &str) {
        for (suffix, id) in self.forget(rel) {
            self.register(&format!("{new}{suffix}"), Some(id));
        }
    }

    fn folder(&self, id: i64) -> Result<Node, Refusal> {
        self.node(id).filter(|n| n.is_dir).ok_or(Refusal::NotFound)
    }

    fn taken(&self, dir: &Node, name: &str) -> bool {
        std::fs::symlink_metadata(self.path(&format!("{}/{name}", dir.rel))).is_ok()
    }

    /// The child `name` of folder `dir`, with its id.
    fn child(&self, dir: &Node, name: &str) -> Option<Node> {
        self.children(dir.id)?.into_iter().find(|n| n.name == name)
    }

    /// A folder `name` in `parent`: with `reuse`, an existing folder of that name is answered
    /// (`true`); otherwise a taken name becomes `name(1)`.
    pub fn mkdir(&self, parent: i64, name: &str, reuse: bool) -> Result<(Node, bool), Refusal> {
        check_name(name)?;
        let _w = self.writes.lock().unwrap();
        let dir = self.folder(parent)?;
        if reuse {
            if let Some(existing) = self.child(&dir, name).filter(|n| n.is_dir) {
                return Ok((existing, true));
            }
        }
        let name = free_name(name, |n| self.taken(&dir, n));
        let rel = format!("{}/{name}", dir.rel);
        std::fs::create_dir(self.path(&rel)).map_err(disk_err)?;
        let id = self.register(&rel, None);
        Ok((self.node(id).ok_or(Refusal::NotFound)?, false))
    }

    /// File `f` with the bytes at `from` (moved there).
    /// A taken name is replaced when `f.replace` and the holder is a file (it goes to the
    /// trash: its id is answered second), else the file becomes `name(1)`.
    pub fn add_file(&self, f: &NewFile, from: &Path) -> Result<(Node, Option<i64>), Refusal> {
        let (parent, name, id, md5, replace) = (f.parent, f.name, f.id, f.md5, f.replace);
        check_name(name)?;
        let _w = self.writes.lock().unwrap();
        let dir = self.folder(parent)?;
        let mut replaced = None;
        if replace {
            if let Some(old) = self.child(&dir, name).filter(|n| !n.is_dir) {
                self.trash_locked(&old)?;
                replaced = Some(old.id);
            }
        }
        let name = free_name(name, |n| self.taken(&dir, n));
        let rel = format!("{}/{name}", dir.rel);
        let target = self.path(&rel);
        std::fs::rename(from, &target).or_else(|_| std::fs::copy(from, &target).map(|_| ())).map_err(disk_err)?;
        let _ = std::fs::remove_file(from);
        let id = self.register(&rel, id);
        let node = self.node(id).ok_or(Refusal::NotFound)?;
        self.md5.lock().unwrap().insert((node.id, node.size, node.mtime), md5.to_string());
        Ok((node, replaced))
    }

    /// Rename or move item `id` to `name` in folder `to`; a taken name is refused.
    fn relocate(&self, id: i64, to: i64, name: &str) -> Result<Node, Refusal> {
        check_name(name)?;
        let _w = self.writes.lock().unwrap();
        let node = self.node(id).filter(|_| id != 0).ok_or(Refusal::NotFound)?;
        let dir = self.folder(to)?;
        if dir.rel == node.rel || dir.rel.starts_with(&format!("{}/", node.rel)) {
            return Err(Refusal::Invalid("不能移动到自身或其子目录"));
        }
        if dir.id == node.parent && name == node.name {
            return Ok(node);
        }
        if self.taken(&dir, name) {
            return Err(Refusal::NameTaken);
        }
        let rel = format!("{}/{name}", dir.rel);
        std::fs::rename(self.path(&node.rel), self.path(&rel)).map_err(disk_err)?;
        self.rebase(&node.rel, &rel);
        self.node(id).ok_or(Refusal::NotFound)
    }

    pub fn rename(&self, id: i64, name: &str) -> Result<Node, Refusal> {
        let node = self.node(id).ok_or(Refusal::NotFound)?;
        self.relocate(id, node.parent, name)
    }

    pub fn move_to(&self, id: i64, to: i64) -> Result<Node, Refusal> {
        let node = self.node(id).ok_or(Refusal::NotFound)?;
        self.relocate(id, to, &node.name)
    }

    /// Where trashed items keep their bytes (made now).
    fn trash_dir_made(&self) -> Result<PathBuf, Refusal> {
        let dir = self.staging.file("trash").map_err(disk_err)?;
        std::fs::create_dir_all(&dir).map_err(disk_err)?;
        Ok(dir)
    }

    pub fn trash(&self, id: i64) -> Result<(), Refusal> {
        let _w = self.writes.lock().unwrap();
        let node = self.node(id).filter(|_| id != 0).ok_or(Refusal::NotFound)?;
        self.trash_locked(&node)
    }

    fn trash_locked(&self, node: &Node) -> Result<(), Refusal> {
        let disk = self.trash_dir_made()?.join(node.id.to_string());
        std::fs::rename(self.path(&node.rel), &disk).map_err(disk_err)?;
        let below = self.forget(&node.rel).into_iter().filter(|(s, _)| !s.is_empty()).collect();
        let item =
            Trashed { id: node.id, parent: node.parent, name: node.name.clone(), rel: node.rel.clone(), disk, below };
        self.trash.lock().unwrap().push(item);
        Ok(())
    }

    /// Take `id` out of the trash, back to its folder (see the module doc).
    pub fn restore(&self, id: i64) -> Result<Node, Refusal> {
        let _w = self.writes.lock().unwrap();
        let item = {
            let mut trash = self.trash.lock().unwrap();
            let i = trash.iter().position(|t| t.id == id).ok_or(Refusal::NotFound)?;
            trash.remove(i)
        };
        let dir = match self.folder(item.parent) {
            Ok(dir) => dir,
            Err(_) => self.folder(0)?,
        };
        let name = free_name(&item.name, |n| self.taken(&dir, n));
        let rel = format!("{}/{name}", dir.rel);
        if let Err(e) = std::fs::rename(&item.disk, self.path(&rel)) {
            self.trash.lock().unwrap().push(item);
            return Err(disk_err(e));
        }
        self.register(&rel, Some(item.id));
        for (suffix, below) in &item.below {
            self.register(&format!("{rel}{suffix}"), Some(*below));
        }
        self.node(id).ok_or(Refusal::NotFound)
    }

    /// The trash, oldest first.
    pub fn trashed(&self) -> Vec<Trashed> {
        self.trash.lock().unwrap().clone()
    }

    /// A live file whose content has MD5 `md5` (lowercase hex) and `size` bytes.
    pub fn find_content(&self, md5: &str, size: u64) -> Option<PathBuf> {
        let mut same_size = Vec::new();
        super::tree::walk_files(&self.data_dir, &mut |p, len| {
            if len == size {
                same_size.push(p.to_path_buf());
            }
        });
        same_size.into_iter().find(|p| {
            let rel = p.strip_prefix(&self.data_dir).map(|r| format!("/{}", r.to_string_lossy())).unwrap_or_default();
            self.stat(&rel, 0, 0).is_some_and(|n| self.etag(&n) == md5)
        })
    }
}
