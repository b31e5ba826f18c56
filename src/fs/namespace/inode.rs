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
//!
//! Memory (issue 12: an `ls -l` of a folder of a million files makes a million inodes): a
//! remote inode points into its folder's listing ([`RemoteEntry::Listed`], an `Arc` and an
//! index) instead of holding a copy of the entry and of its name, and the name index holds
//! inode numbers only (its keys are read from the nodes). About 130 bytes an inode: the node
//! (80), its slot in the table by number (2 x 17: the map doubles past 7/8 full) and by name
//! (2 x 9).

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::cache::meta::Listing;
use crate::drivers::{Entry, EntryRef};
use crate::error::{Error, Result};

pub const ROOT: u64 = 1;
/// The hidden telemetry file at the root (`crate::stats::STATS_FILE`): a fixed number, in no
/// folder's listing and no name index, so no remote name can collide with it.
pub const STATS: u64 = 2;

/// The entry a remote inode names.
#[derive(Debug, Clone)]
pub enum RemoteEntry {
    /// The entry at `index` of its folder's listing, shown under the listing's name for it.
    Listed { listing: Arc<Listing>, index: u32 },
    /// An entry of its own, with the name it is shown under: a storage root, or a file whose
    /// size the listing did not give (learned from the server since).
    Own(Box<(String, Entry)>),
}

impl RemoteEntry {
    /// The entry at `index` of `listing`, as `sized` (the same entry with its size made real):
    /// pointed into when the listing already had that size, else a copy.
    pub fn at(listing: &Arc<Listing>, index: usize, sized: Entry) -> Self {
        if listing.at(index).size == sized.size {
            RemoteEntry::Listed { listing: listing.clone(), index: index as u32 }
        } else {
            RemoteEntry::Own(Box::new((listing.shown(index).to_string(), sized)))
        }
    }

    /// Whether this is an entry of `listing`, or one of its own (not one of an older listing,
    /// which it would keep in memory).
    pub fn is_from(&self, listing: &Arc<Listing>) -> bool {
        match self {
            RemoteEntry::Listed { listing: mine, .. } => Arc::ptr_eq(mine, listing),
            RemoteEntry::Own(_) => true,
        }
    }

    /// An entry of its own, shown as `name`.
    pub fn own(name: &str, entry: Entry) -> Self {
        RemoteEntry::Own(Box::new((name.to_string(), entry)))
    }

    fn name(&self) -> &str {
        match self {
            RemoteEntry::Listed { listing, index } => listing.shown(*index as usize),
            RemoteEntry::Own(own) => &own.0,
        }
    }

    /// The entry.
    pub fn view(&self) -> EntryRef<'_> {
        match self {
            RemoteEntry::Listed { listing, index } => listing.at(*index as usize),
            RemoteEntry::Own(own) => own.1.view(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Kind {
    Virtual { children: BTreeMap<String, u64> },
    Remote { storage: usize, entry: RemoteEntry },
    Stats,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub parent: u64,
    /// The name of a virtual folder or of the telemetry file (a remote entry's is its own).
    label: Box<str>,
    pub kind: Kind,
    /// How many lookups the kernel holds (FUSE `forget` semantics).
    pub lookups: u64,
    /// Permanent nodes: virtual folders and storage roots.
    pub pinned: bool,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        match &self.kind {
            Kind::Virtual { .. } => true,
            Kind::Remote { entry, .. } => entry.view().is_dir,
            Kind::Stats => false,
        }
    }

    /// The name the node has in its parent.
    pub fn name(&self) -> &str {
        match &self.kind {
            Kind::Remote { entry, .. } => entry.name(),
            Kind::Virtual { .. } | Kind::Stats => &self.label,
        }
    }
}

pub struct InodeTable {
    /// Boxed: a map's slots are allocated in powers of two, and a node is 72 bytes; a
    /// million inline nodes would take 150 MB of slots, boxed they take 32 MB plus the nodes.
    nodes: HashMap<u64, Box<Node>>,
    /// Inode numbers by (parent, name), hashed with `hasher`; the key is read from the node.
    by_name: HashTable<u64>,
    hasher: std::collections::hash_map::RandomState,
    /// The version whose bytes the kernel may still have in its page cache, per opened file.
    cached_versions: HashMap<u64, String>,
    next: u64,
}

impl InodeTable {
    /// A table holding only the root, a virtual folder.
    pub fn new() -> Self {
        let fixed = |label: &str, kind| Node { parent: ROOT, label: label.into(), kind, lookups: 1, pinned: true };
        let root = fixed("", Kind::Virtual { children: BTreeMap::new() });
        let stats = fixed(crate::stats::STATS_FILE, Kind::Stats);
        InodeTable {
            nodes: HashMap::from([(ROOT, Box::new(root)), (STATS, Box::new(stats))]),
            by_name: HashTable::new(),
            hasher: Default::default(),
            cached_versions: HashMap::new(),
            next: STATS + 1,
        }
    }

    pub fn get(&self, ino: u64) -> Result<&Node> {
        self.nodes.get(&ino).map(|n| &**n).ok_or(Error::NotFound)
    }

    /// Attach a storage at `path` (absolute, normalised), creating virtual folders on the way.
    pub fn add_storage(&mut self, path: &str, storage: usize, root: Entry) {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let Some((last, folders)) = parts.split_last() else {
            self.nodes.get_mut(&ROOT).unwrap().kind = Kind::Remote { storage, entry: RemoteEntry::own("", root) };
            return;
        };
        let mut parent = ROOT;
        for name in folders {
            parent = match self.child(parent, name) {
                Some(ino) => ino,
                None => self.insert_pinned(parent, name, Kind::Virtual { children: BTreeMap::new() }),
            };
        }
        self.insert_pinned(parent, last, Kind::Remote { storage, entry: RemoteEntry::own(last, root) });
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

    /// The inode for `name` in `parent`, created or refreshed with `kind` (a remote entry is
    /// shown as `name`).
    pub fn upsert(&mut self, parent: u64, name: &str, kind: Kind) -> u64 {
        self.upsert_numbered(parent, name, kind, None)
    }

    /// [`Self::upsert`]; a new inode takes `number` when given (the number its listing
    /// reserved for it, see `Listing::numbers`, which a plain `readdir` already reported).
    pub fn upsert_numbered(&mut self, parent: u64, name: &str, kind: Kind, number: Option<u64>) -> u64 {
        debug_assert!(!matches!(&kind, Kind::Remote { entry, .. } if entry.name() != name));
        let mut number = number;
        if let Some(ino) = self.child(parent, name) {
            let node = self.nodes.get_mut(&ino).unwrap();
            // A folder that became a file (or the reverse) is a new object: new number.
            if node.is_dir() == kind_is_dir(&kind) {
                node.kind = kind;
                return ino;
            }
            self.unindex(parent, name, ino);
            number = None;
        }
        let ino = number.unwrap_or_else(|| self.reserve(1));
        let label = if matches!(kind, Kind::Remote { .. }) { "".into() } else { name.into() };
        self.nodes.insert(ino, Box::new(Node { parent, label, kind, lookups: 0, pinned: false }));
        let hash = self.hash(parent, name);
        let nodes = &self.nodes;
        self.by_name.insert_unique(hash, ino, |i| Self::hash_of(&self.hasher, nodes, *i));
        ino
    }

    /// Room for at least `n` inodes in all (a folder of `n` entries about to be read with
    /// readdirplus). Not `n` more: read again, the folder's entries already have theirs.
    pub fn make_room(&mut self, n: usize) {
        let more = n.saturating_sub(self.nodes.len());
        self.nodes.reserve(more);
        let nodes = &self.nodes;
        self.by_name.reserve(more, |i| Self::hash_of(&self.hasher, nodes, *i));
    }

    /// `n` numbers no inode has or will have otherwise; the first of them.
    pub fn reserve(&mut self, n: u64) -> u64 {
        self.next += n;
        self.next - n
    }

    /// The inode of `name` in `parent`, if the kernel may know it.
    pub fn child(&self, parent: u64, name: &str) -> Option<u64> {
        let named = |i: &u64| self.nodes.get(i).is_some_and(|n| n.parent == parent && n.name() == name);
        self.by_name.find(self.hash(parent, name), named).copied()
    }

    /// The inodes of the folder `id` of `storage` (a scan: used only when a listing changed, to
    /// tell the kernel and `super::changes`, and to place a folder whose path is not known).
    pub fn folders(&self, storage: usize, id: &str) -> Vec<u64> {
        let named = |n: &Node| matches!(&n.kind, Kind::Remote { storage: s, entry } if *s == storage && entry.view().is_dir && entry.view().id == id);
        self.nodes.iter().filter(|(_, n)| named(n)).map(|(&ino, _)| ino).collect()
    }

    /// The path of `ino` in the mount (`/pikpak/Movies`), from the names the kernel knows.
    pub fn path(&self, ino: u64) -> String {
        let mut parts = Vec::new();
        let mut at = ino;
        while at != ROOT {
            let Some(node) = self.nodes.get(&at) else { break };
            parts.push(node.name());
            at = node.parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// The kernel renamed `name` in `parent` to `new_name` in `new_parent`: the same inode,
    /// under its new name (what was there before is no longer reachable by name).
    pub fn rename(&mut self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        let Some(ino) = self.child(parent, name) else { return };
        if let Some(displaced) = self.child(new_parent, new_name).filter(|&other| other != ino) {
            self.unindex(new_parent, new_name, displaced);
        }
        self.unindex(parent, name, ino);
        let node = self.nodes.get_mut(&ino).expect("indexed nodes exist");
        node.parent = new_parent;
        match &mut node.kind {
            // The name of a listed entry is its listing's: it now has its own until its folder
            // is listed again.
            Kind::Remote { entry, .. } => *entry = RemoteEntry::own(new_name, entry.view().to_entry()),
            Kind::Virtual { .. } | Kind::Stats => node.label = new_name.into(),
        }
        let hash = self.hash(new_parent, new_name);
        let nodes = &self.nodes;
        self.by_name.insert_unique(hash, ino, |i| Self::hash_of(&self.hasher, nodes, *i));
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
            let node = self.nodes.remove(&ino).expect("found above");
            self.unindex(node.parent, node.name(), ino);
            self.cached_versions.remove(&ino);
        }
    }

    /// Record that the kernel may now cache `version` of the file `ino`; whether that was
    /// already the version it may hold pages of (then it may keep them).
    pub fn swap_cached_version(&mut self, ino: u64, version: &str) -> bool {
        if !self.nodes.contains_key(&ino) {
            return false;
        }
        let old = self.cached_versions.insert(ino, version.to_string());
        old.as_deref() == Some(version)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn hash(&self, parent: u64, name: &str) -> u64 {
        self.hasher.hash_one((parent, name))
    }

    /// The name-index hash of inode `ino` (for the index to grow).
    fn hash_of(hasher: &std::collections::hash_map::RandomState, nodes: &HashMap<u64, Box<Node>>, ino: u64) -> u64 {
        let node = &nodes[&ino];
        hasher.hash_one((node.parent, node.name()))
    }

    /// Take `ino` out of the name index (it stays in the table while the kernel holds it).
    fn unindex(&mut self, parent: u64, name: &str, ino: u64) {
        if let Ok(found) = self.by_name.find_entry(self.hash(parent, name), |&i| i == ino) {
            found.remove();
        }
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
        Kind::Remote { entry, .. } => entry.view().is_dir,
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

    fn remote(name: &str, is_dir: bool) -> Kind {
        Kind::Remote { storage: 0, entry: RemoteEntry::own(name, entry(name, is_dir)) }
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
        let a = t.upsert(ROOT, "x", remote("x", false));
        t.add_lookup(a);
        t.add_lookup(a);
        assert_eq!(t.upsert(ROOT, "x", remote("x", false)), a);
        t.forget(a, 1);
        assert!(t.get(a).is_ok());
        t.forget(a, 1);
        assert!(t.get(a).is_err());
        let b = t.upsert(ROOT, "x", remote("x", false));
        assert!(b > a);
        let before = t.len();
        t.forget(ROOT, 5);
        assert_eq!(t.len(), before);
    }

    #[test]
    fn reserved_numbers_are_taken_by_new_inodes_only() {
        let mut t = InodeTable::new();
        let base = t.reserve(10);
        let other = t.upsert(ROOT, "y", remote("y", false));
        assert!(other >= base + 10, "a fresh number is past the block");
        let x = t.upsert_numbered(ROOT, "x", remote("x", false), Some(base + 3));
        assert_eq!(x, base + 3);
        assert_eq!(t.child(ROOT, "x"), Some(x));
        // An existing inode keeps its number.
        let again = t.upsert_numbered(ROOT, "y", remote("y", false), Some(base + 4));
        assert_eq!(again, other);
        // A file that became a folder is a new object: not the reserved number either.
        let dir = t.upsert_numbered(ROOT, "x", remote("x", true), Some(base + 3));
        assert!(dir > other);
    }

    #[test]
    fn a_file_replaced_by_a_folder_gets_a_new_number() {
        let mut t = InodeTable::new();
        let a = t.upsert(ROOT, "x", remote("x", false));
        let b = t.upsert(ROOT, "x", remote("x", true));
        assert_ne!(a, b);
    }

    #[test]
    fn listed_inodes_take_name_and_entry_from_their_listing() {
        let listing = Arc::new(Listing::new(vec![entry("a", false), entry("x/y", false), entry("d", true)]));
        let mut t = InodeTable::new();
        let at = |i: usize| Kind::Remote { storage: 0, entry: RemoteEntry::at(&listing, i, listing.at(i).to_entry()) };
        let a = t.upsert(ROOT, "a", at(0));
        let slash = t.upsert(ROOT, "x／y", at(1));
        assert!(matches!(t.get(a).unwrap().kind, Kind::Remote { entry: RemoteEntry::Listed { index: 0, .. }, .. }));
        assert_eq!(t.get(slash).unwrap().name(), "x／y", "the shown name, not the provider's");
        assert_eq!(t.child(ROOT, "x／y"), Some(slash));
        assert_eq!(t.child(ROOT, "x/y"), None);
        assert!(t.upsert(ROOT, "d", at(2)) > slash);
        assert!(t.get(t.child(ROOT, "d").unwrap()).unwrap().is_dir());
        // A size the listing did not have makes a copy of the entry, under the same name.
        let mut sized = listing.at(0).to_entry();
        sized.size = Some(7);
        let kind = Kind::Remote { storage: 0, entry: RemoteEntry::at(&listing, 0, sized) };
        assert_eq!(t.upsert(ROOT, "a", kind), a);
        let Kind::Remote { entry, .. } = &t.get(a).unwrap().kind else { panic!() };
        assert!(matches!(entry, RemoteEntry::Own(_)) && entry.view().size == Some(7));
        assert_eq!(t.get(a).unwrap().name(), "a");
        // The page-cache version is per inode and goes with it.
        t.add_lookup(a);
        assert!(!t.swap_cached_version(a, "v1"));
        assert!(t.swap_cached_version(a, "v1"));
        assert!(!t.swap_cached_version(a, "v2"));
        t.forget(a, 1);
        assert_eq!(t.child(ROOT, "a"), None);
        assert!(!t.swap_cached_version(a, "v2"), "a forgotten inode has no cached version");
        assert_eq!(t.child(ROOT, "x／y"), Some(slash), "other names stay indexed");
    }
}
