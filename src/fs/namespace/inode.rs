//! The inode table: numbers the kernel holds, mapped to what they name.
//!
//! The mount point's root and the folders leading to each storage's `path` are *virtual*
//! (fixed at mount time, never forgotten). Everything below a storage root is *remote*: a
//! driver `Entry`, refreshed whenever its parent is listed again. Numbers come from a 64-bit
//! counter and are never given to another object, so the generation stays 0: each listing
//! reserves a block, one number per entry (`Listing::numbers`), which is what a plain
//! `readdir` reports without making an inode, and what the entry's inode takes when it is
//! looked up (again, after a forget, for the same entry of the same listing). A remote inode is
//! dropped when the kernel forgets its last lookup.

use std::collections::{BTreeMap, HashMap};

use crate::drivers::Entry;
use crate::error::{Error, Result};

pub const ROOT: u64 = 1;
/// The hidden telemetry file at the root (`crate::stats::STATS_FILE`): a fixed number, in no
/// folder's listing and no name index, so no remote name can collide with it.
pub const STATS: u64 = 2;

#[derive(Debug, Clone)]
pub enum Kind {
    Virtual { children: BTreeMap<String, u64> },
    Remote { storage: usize, entry: Entry },
    Stats,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub parent: u64,
    pub name: String,
    pub kind: Kind,
    /// How many lookups the kernel holds (FUSE `forget` semantics).
    pub lookups: u64,
    /// Permanent nodes: virtual folders and storage roots.
    pub pinned: bool,
    /// The version whose bytes the kernel may still have in its page cache.
    pub cached_version: Option<String>,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        match &self.kind {
            Kind::Virtual { .. } => true,
            Kind::Remote { entry, .. } => entry.is_dir,
            Kind::Stats => false,
        }
    }
}

pub struct InodeTable {
    /// Boxed: a map's slots are allocated in powers of two, and a node is ~190 bytes; a
    /// million inline nodes took 400 MB of slots, boxed they take 32 MB plus the nodes.
    nodes: HashMap<u64, Box<Node>>,
    by_name: HashMap<(u64, String), u64>,
    next: u64,
}

impl InodeTable {
    /// A table holding only the root, a virtual folder.
    pub fn new() -> Self {
        let root = Node {
            parent: ROOT,
            name: String::new(),
            kind: Kind::Virtual { children: BTreeMap::new() },
            lookups: 1,
            pinned: true,
            cached_version: None,
        };
        let stats = Node {
            parent: ROOT,
            name: crate::stats::STATS_FILE.into(),
            kind: Kind::Stats,
            lookups: 1,
            pinned: true,
            cached_version: None,
        };
        InodeTable {
            nodes: HashMap::from([(ROOT, Box::new(root)), (STATS, Box::new(stats))]),
            by_name: HashMap::new(),
            next: STATS + 1,
        }
    }

    pub fn get(&self, ino: u64) -> Result<&Node> {
        self.nodes.get(&ino).map(|n| &**n).ok_or(Error::NotFound)
    }

    pub fn get_mut(&mut self, ino: u64) -> Result<&mut Node> {
        self.nodes.get_mut(&ino).map(|n| &mut **n).ok_or(Error::NotFound)
    }

    /// Attach a storage at `path` (absolute, normalised), creating virtual folders on the way.
    pub fn add_storage(&mut self, path: &str, storage: usize, root: Entry) {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let Some((last, folders)) = parts.split_last() else {
            self.nodes.get_mut(&ROOT).unwrap().kind = Kind::Remote { storage, entry: root };
            return;
        };
        let mut parent = ROOT;
        for name in folders {
            parent = match self.by_name.get(&(parent, name.to_string())) {
                Some(&ino) => ino,
                None => self.insert_pinned(parent, name, Kind::Virtual { children: BTreeMap::new() }),
            };
        }
        self.insert_pinned(parent, last, Kind::Remote { storage, entry: root });
    }

    fn insert_pinned(&mut self, parent: u64, name: &str, kind: Kind) -> u64 {
        let ino = self.upsert(parent, name, kind);
        let node = self.nodes.get_mut(&ino).unwrap();
        node.pinned = true;
        if let Some(Node { kind: Kind::Virtual { children }, .. }) = self.nodes.get_mut(&parent).map(|n| &mut **n) {
            children.insert(name.to_string(), ino);
        }
        ino
    }

    /// The inode for `name` in `parent`, created or refreshed with `kind`.
    pub fn upsert(&mut self, parent: u64, name: &str, kind: Kind) -> u64 {
        self.upsert_numbered(parent, name, kind, None)
    }

    /// [`Self::upsert`]; a new inode takes `number` when given (the number its listing
    /// reserved for it, see `Listing::numbers`, which a plain `readdir` already reported).
    pub fn upsert_numbered(&mut self, parent: u64, name: &str, kind: Kind, number: Option<u64>) -> u64 {
        let key = (parent, name.to_string());
        let mut number = number;
        if let Some(&ino) = self.by_name.get(&key) {
            let node = self.nodes.get_mut(&ino).unwrap();
            // A folder that became a file (or the reverse) is a new object: new number.
            if node.is_dir() == kind_is_dir(&kind) {
                node.kind = kind;
                return ino;
            }
            self.by_name.remove(&key);
            number = None;
        }
        let ino = number.unwrap_or_else(|| self.reserve(1));
        let node = Node { parent, name: name.to_string(), kind, lookups: 0, pinned: false, cached_version: None };
        self.nodes.insert(ino, Box::new(node));
        self.by_name.insert(key, ino);
        ino
    }

    /// `n` numbers no inode has or will have otherwise; the first of them.
    pub fn reserve(&mut self, n: u64) -> u64 {
        self.next += n;
        self.next - n
    }

    /// The inode of `name` in `parent`, if the kernel may know it.
    pub fn child(&self, parent: u64, name: &str) -> Option<u64> {
        self.by_name.get(&(parent, name.to_string())).copied()
    }

    /// The inodes of the folder `id` of `storage` (a scan: used only when a background listing
    /// found a change to tell the kernel about).
    pub fn folders(&self, storage: usize, id: &str) -> Vec<u64> {
        let named = |n: &Node| matches!(&n.kind, Kind::Remote { storage: s, entry } if *s == storage && entry.is_dir && entry.id == id);
        self.nodes.iter().filter(|(_, n)| named(n)).map(|(&ino, _)| ino).collect()
    }

    /// The path of `ino` in the mount (`/pikpak/Movies`), from the names the kernel knows.
    pub fn path(&self, ino: u64) -> String {
        let mut parts = Vec::new();
        let mut at = ino;
        while at != ROOT {
            let Some(node) = self.nodes.get(&at) else { break };
            parts.push(node.name.as_str());
            at = node.parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// The kernel renamed `name` in `parent` to `new_name` in `new_parent`: the same inode,
    /// under its new name (what was there before is no longer reachable by name).
    pub fn rename(&mut self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        let Some(ino) = self.by_name.remove(&(parent, name.to_string())) else { return };
        self.by_name.insert((new_parent, new_name.to_string()), ino);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.parent = new_parent;
            node.name = new_name.to_string();
        }
    }

    pub fn add_lookup(&mut self, ino: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups += 1;
        }
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&mut self, ino: u64, n: u64) {
        let Some(node) = self.nodes.get_mut(&ino) else { return };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups == 0 && !node.pinned {
            let key = (node.parent, node.name.clone());
            self.nodes.remove(&ino);
            if self.by_name.get(&key) == Some(&ino) {
                self.by_name.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl Default for InodeTable {
    fn default() -> Self {
        Self::new()
    }
}

fn kind_is_dir(kind: &Kind) -> bool {
    match kind {
        Kind::Virtual { .. } => true,
        Kind::Remote { entry, .. } => entry.is_dir,
        Kind::Stats => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn entry(name: &str, is_dir: bool) -> Entry {
        Entry {
            id: format!("/{name}"),
            name: name.into(),
            is_dir,
            size: Some(1),
            mtime: SystemTime::UNIX_EPOCH,
            version: "1".into(),
        }
    }

    #[test]
    fn storages_get_virtual_parents() {
        let mut t = InodeTable::new();
        t.add_storage("/clouds/a", 0, entry("", true));
        t.add_storage("/clouds/b", 1, entry("", true));
        t.add_storage("/c", 2, entry("", true));
        let Kind::Virtual { children } = &t.get(ROOT).unwrap().kind else { panic!() };
        assert_eq!(children.keys().collect::<Vec<_>>(), ["c", "clouds"]);
        let clouds = children["clouds"];
        let Kind::Virtual { children } = &t.get(clouds).unwrap().kind else { panic!() };
        assert_eq!(children.len(), 2);
        assert!(matches!(t.get(children["b"]).unwrap().kind, Kind::Remote { storage: 1, .. }));
    }

    #[test]
    fn storage_at_root_makes_the_root_remote() {
        let mut t = InodeTable::new();
        t.add_storage("/", 0, entry("", true));
        assert!(matches!(t.get(ROOT).unwrap().kind, Kind::Remote { storage: 0, .. }));
    }

    #[test]
    fn forget_drops_unpinned_nodes_and_numbers_are_not_reused() {
        let mut t = InodeTable::new();
        t.add_storage("/s", 0, entry("", true));
        let a = t.upsert(ROOT, "x", Kind::Remote { storage: 0, entry: entry("x", false) });
        t.add_lookup(a);
        t.add_lookup(a);
        assert_eq!(t.upsert(ROOT, "x", Kind::Remote { storage: 0, entry: entry("x", false) }), a);
        t.forget(a, 1);
        assert!(t.get(a).is_ok());
        t.forget(a, 1);
        assert!(t.get(a).is_err());
        let b = t.upsert(ROOT, "x", Kind::Remote { storage: 0, entry: entry("x", false) });
        assert!(b > a);
        let before = t.len();
        t.forget(ROOT, 5);
        assert_eq!(t.len(), before);
    }

    #[test]
    fn reserved_numbers_are_taken_by_new_inodes_only() {
        let mut t = InodeTable::new();
        let base = t.reserve(10);
        let other = t.upsert(ROOT, "y", Kind::Remote { storage: 0, entry: entry("y", false) });
        assert!(other >= base + 10, "a fresh number is past the block");
        let x = t.upsert_numbered(ROOT, "x", Kind::Remote { storage: 0, entry: entry("x", false) }, Some(base + 3));
        assert_eq!(x, base + 3);
        assert_eq!(t.child(ROOT, "x"), Some(x));
        // An existing inode keeps its number.
        let again = t.upsert_numbered(ROOT, "y", Kind::Remote { storage: 0, entry: entry("y", false) }, Some(base + 4));
        assert_eq!(again, other);
        // A file that became a folder is a new object: not the reserved number either.
        let dir = t.upsert_numbered(ROOT, "x", Kind::Remote { storage: 0, entry: entry("x", true) }, Some(base + 3));
        assert!(dir > other);
    }

    #[test]
    fn a_file_replaced_by_a_folder_gets_a_new_number() {
        let mut t = InodeTable::new();
        let a = t.upsert(ROOT, "x", Kind::Remote { storage: 0, entry: entry("x", false) });
        let b = t.upsert(ROOT, "x", Kind::Remote { storage: 0, entry: entry("x", true) });
        assert_ne!(a, b);
    }
}
