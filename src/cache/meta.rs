//! Folder listings and negative names, with a time to live.
//!
//! A listing is trusted for `dir_cache_time` (rclone's default is 5 minutes; the kernel is told
//! the remaining validity as its entry/attr TTL, so it stops asking when we would answer from
//! cache anyway). Names that do not exist are remembered for `negative_cache_time`, because
//! media servers probe every folder for `.nfo`, `.srt` and poster files that are not there:
//! answering those from memory is most of what makes a library scan cheap. Sizes learned from
//! the server (files listed without one) are kept by (id, version), so a re-listing that did not
//! change a file does not probe it again.
//!
//! A listing carries its shown names and a name index, built once when it is fetched or
//! restored ([`Listing`]): a lookup in a folder of a million entries is a binary search, not a
//! scan, so a `find` of that folder is O(n log n) instead of O(n^2).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::FileKey;
use crate::drivers::{Entry, EntryRef};
use crate::names;

mod packed;
use packed::Packed;

/// Which folder of which storage.
pub type DirKey = (usize, String);

/// One folder's entries, with the provider's names, and the names the mount shows them under
/// (valid and unique: `crate::names`), derived once when the listing is built. The entries
/// are packed in one buffer ([`packed`]) and handed out as views ([`EntryRef`]). The entries
/// shown under their own name (nearly all) cost nothing more; the name index, sorted by shown
/// name, costs 4 bytes an entry, where a map of names would copy every name.
#[derive(Debug, Default)]
pub struct Listing {
    entries: Packed,
    /// The entries shown under another name than their own, by index, in index order.
    renamed: Vec<(u32, String)>,
    by_name: Vec<u32>,
    /// The first of a block of inode numbers, one per entry, reserved when first needed: the
    /// number of an entry that has no inode yet is `base + index`, with no table of them.
    base: OnceLock<u64>,
}

impl Listing {
    /// A listing of `entries`, as the provider named them.
    pub fn new(entries: Vec<Entry>) -> Self {
        Self::indexed(Packed::new(entries))
    }

    /// A listing of `entries`, with its shown names and name index.
    fn indexed(entries: Packed) -> Self {
        let mut by_name: Vec<u32> = (0..entries.len() as u32).collect();
        let name = |i: &u32| entries.name(*i as usize);
        by_name.sort_unstable_by(|a, b| name(a).cmp(name(b)));
        // The common case, seen in the sorted index without a set of (a million) names: every
        // name is shown as it is, and none twice; the index is then sorted by shown name.
        let as_is = (0..entries.len()).all(|i| names::shown_as_is(entries.name(i)))
            && by_name.windows(2).all(|pair| name(&pair[0]) != name(&pair[1]));
        let mut listing = Listing { entries, by_name, ..Listing::default() };
        if !as_is {
            listing.renamed = names::renamed(&listing.to_vec());
            let mut by_name = std::mem::take(&mut listing.by_name);
            by_name.sort_unstable_by(|&a, &b| listing.shown(a as usize).cmp(listing.shown(b as usize)));
            listing.by_name = by_name;
        }
        listing
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<EntryRef<'_>> {
        (index < self.len()).then(|| self.entries.get(index))
    }

    /// The entry at `index` (which must be below `len`).
    pub fn at(&self, index: usize) -> EntryRef<'_> {
        self.entries.get(index)
    }

    /// Each entry, in the order of the fetch.
    pub fn iter(&self) -> impl Iterator<Item = EntryRef<'_>> {
        (0..self.len()).map(|i| self.entries.get(i))
    }

    /// Each entry, as a driver's entry.
    pub fn to_vec(&self) -> Vec<Entry> {
        self.iter().map(|e| e.to_entry()).collect()
    }

    /// Whether this listing holds `entries`, in that order.
    pub fn holds(&self, entries: &[Entry]) -> bool {
        self.len() == entries.len() && self.iter().zip(entries).all(|(mine, e)| mine == e.view())
    }

    /// The name the entry at `index` is shown under.
    pub fn shown(&self, index: usize) -> &str {
        match self.renamed.binary_search_by_key(&(index as u32), |(i, _)| *i) {
            Ok(found) => &self.renamed[found].1,
            Err(_) => self.entries.name(index),
        }
    }

    /// Each entry with the name it is shown under, in the order of the fetch.
    pub fn iter_shown(&self) -> impl Iterator<Item = (&str, EntryRef<'_>)> {
        self.iter().enumerate().map(|(i, e)| (self.shown(i), e))
    }

    /// The entry shown as `name`.
    pub fn named(&self, name: &str) -> Option<EntryRef<'_>> {
        self.position(name).map(|i| self.entries.get(i))
    }

    /// The index of the entry shown as `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        let found = self.by_name.binary_search_by(|&i| self.shown(i as usize).cmp(name)).ok()?;
        Some(self.by_name[found] as usize)
    }

    /// The first number of this listing's block; `reserve(n)` reserves `n` numbers once.
    pub fn numbers(&self, reserve: impl FnOnce(u64) -> u64) -> u64 {
        *self.base.get_or_init(|| reserve(self.len() as u64))
    }
}

impl PartialEq for Listing {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

/// Serialised as the driver's entries it was made of.
impl serde::Serialize for Listing {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// Read from a sequence of driver entries, packed as they are read.
impl<'de> serde::Deserialize<'de> for Listing {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = Packed;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence of entries")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Packed, A::Error> {
                let mut failed = None;
                let entries = std::iter::from_fn(|| {
                    seq.next_element::<Entry>().unwrap_or_else(|e| {
                        failed = Some(e);
                        None
                    })
                });
                let packed = Packed::collect(entries);
                failed.map_or(Ok(packed), Err)
            }
        }
        Ok(Listing::indexed(deserializer.deserialize_seq(Entries)?))
    }
}

/// When a listing was fetched, and the listing.
type Cached = (Instant, Arc<Listing>);

pub struct MetaCache {
    dir_ttl: Duration,
    negative_ttl: Duration,
    dirs: Mutex<LruCache<DirKey, Cached>>,
    negatives: Mutex<LruCache<(DirKey, String), Instant>>,
    sizes: Mutex<LruCache<FileKey, u64>>,
}

/// Bounds chosen so the caches stay in the tens of MiB for the largest libraries we expect
/// (hundreds of thousands of files): entries are evicted least-recently-used past these.
const MAX_DIRS: usize = 10_000;
const MAX_NEGATIVES: usize = 100_000;
const MAX_SIZES: usize = 200_000;

impl MetaCache {
    pub fn new(dir_ttl: Duration, negative_ttl: Duration) -> Self {
        let cap = |n| NonZeroUsize::new(n).unwrap();
        MetaCache {
            dir_ttl,
            negative_ttl,
            dirs: Mutex::new(LruCache::new(cap(MAX_DIRS))),
            negatives: Mutex::new(LruCache::new(cap(MAX_NEGATIVES))),
            sizes: Mutex::new(LruCache::new(cap(MAX_SIZES))),
        }
    }

    /// A fresh listing and how much longer it stays fresh.
    pub fn dir(&self, key: &DirKey) -> Option<(Arc<Listing>, Duration)> {
        let mut dirs = self.dirs.lock().unwrap();
        let (at, entries) = dirs.get(key)?;
        let left = self.dir_ttl.checked_sub(at.elapsed())?;
        Some((entries.clone(), left))
    }

    /// The last listing of `key` held, whatever its age (served when listing again fails).
    pub fn last_dir(&self, key: &DirKey) -> Option<Arc<Listing>> {
        self.dirs.lock().unwrap().get(key).map(|(_, entries)| entries.clone())
    }

    pub fn put_dir(&self, key: DirKey, entries: Arc<Listing>) {
        self.put_dir_at(key, entries, Instant::now());
    }

    /// A listing fetched `age` ago (restored from the store); fresh for what is left of the
    /// TTL. One older than this machine's uptime cannot be placed and is not kept.
    pub fn restore_dir(&self, key: DirKey, entries: Arc<Listing>, age: Duration) {
        if let Some(at) = Instant::now().checked_sub(age) {
            self.put_dir_at(key, entries, at);
        }
    }

    fn put_dir_at(&self, key: DirKey, entries: Arc<Listing>, at: Instant) {
        // A new listing is the truth about its names: forget negatives it contradicts.
        {
            let mut negatives = self.negatives.lock().unwrap();
            // Whichever is shorter: the negatives, or the listing (a million names).
            let gone: Vec<(DirKey, String)> = if negatives.len() < entries.len() {
                let named = |(dir, name): &&(DirKey, String)| *dir == key && entries.named(name).is_some();
                negatives.iter().map(|(k, _)| k).filter(named).cloned().collect()
            } else {
                entries.iter_shown().map(|(name, _)| (key.clone(), name.to_string())).collect()
            };
            for k in gone {
                negatives.pop(&k);
            }
        }
        self.dirs.lock().unwrap().put(key, (at, entries));
    }

    /// Forget every listing and negative name (sizes stay: they are keyed by version).
    pub fn clear(&self) {
        self.dirs.lock().unwrap().clear();
        self.negatives.lock().unwrap().clear();
    }

    /// Whether `name` is known not to exist in `dir`, and for how much longer.
    pub fn negative(&self, dir: &DirKey, name: &str) -> Option<Duration> {
        let mut negatives = self.negatives.lock().unwrap();
        let key = (dir.clone(), name.to_string());
        let at = *negatives.get(&key)?;
        match self.negative_ttl.checked_sub(at.elapsed()) {
            Some(left) => Some(left),
            None => {
                negatives.pop(&key);
                None
            }
        }
    }

    /// Forget one folder's listing (the folder is gone).
    pub fn remove_dir(&self, key: &DirKey) {
        self.dirs.lock().unwrap().pop(key);
    }

    /// `name` exists in `dir` now (a file created here).
    pub fn forget_negative(&self, dir: &DirKey, name: &str) {
        self.negatives.lock().unwrap().pop(&(dir.clone(), name.to_string()));
    }

    pub fn put_negative(&self, dir: DirKey, name: &str) {
        self.negatives.lock().unwrap().put((dir, name.to_string()), Instant::now());
    }

    pub fn negative_ttl(&self) -> Duration {
        self.negative_ttl
    }

    pub fn dir_ttl(&self) -> Duration {
        self.dir_ttl
    }

    pub fn size(&self, key: &FileKey) -> Option<u64> {
        self.sizes.lock().unwrap().get(key).copied()
    }

    pub fn put_size(&self, key: FileKey, size: u64) {
        self.sizes.lock().unwrap().put(key, size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn entry(name: &str) -> Entry {
        Entry {
            id: format!("/{name}"),
            name: name.into(),
            is_dir: false,
            size: None,
            mtime: SystemTime::UNIX_EPOCH,
            version: "v1".into(),
        }
    }

    #[test]
    fn a_listing_finds_every_name_and_only_those() {
        let names = ["b", "a", "c.mkv", "字幕.srt", "A"];
        let listing = Listing::new(names.iter().map(|n| entry(n)).collect());
        assert_eq!(listing.len(), names.len());
        assert_eq!(listing.at(0).name, "b", "the order of the fetch is kept");
        for n in names {
            assert_eq!(listing.named(n).map(|e| e.name), Some(n));
        }
        for n in ["d", "c", "a ", "B"] {
            assert!(listing.named(n).is_none(), "{n}");
        }
        // A name the kernel cannot take is found under the name it is shown as, and kept.
        let listing = Listing::new(names.iter().chain(&["", "x/y"]).map(|n| entry(n)).collect());
        assert_eq!(listing.named("‛").map(|e| e.name), Some(""));
        assert_eq!(listing.named("x／y").map(|e| e.name), Some("x/y"));
        assert_eq!(listing.shown(6), "x／y");
        assert_eq!(listing.shown(0), "b");
        assert!(listing.named("").is_none() && listing.named("x/y").is_none());
        assert!(Listing::default().named("a").is_none());
        // Plain names, one of them twice: the second is numbered.
        let listing = Listing::new(["b", "a", "c", "a"].iter().map(|n| entry(n)).collect());
        assert_eq!(listing.position("a"), Some(1));
        assert_eq!(listing.position("a (2)"), Some(3));
        assert_eq!(listing.position("b"), Some(0));
    }

    #[test]
    fn listings_expire() {
        let cache = MetaCache::new(Duration::from_millis(50), Duration::from_secs(1));
        let key = (0, "/".to_string());
        cache.put_dir(key.clone(), Arc::new(Listing::new(vec![entry("a")])));
        let (entries, left) = cache.dir(&key).unwrap();
        assert_eq!(entries.at(0).name, "a");
        assert!(left <= Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.dir(&key).is_none());
    }

    #[test]
    fn restored_listings_keep_their_age() {
        let cache = MetaCache::new(Duration::from_secs(10), Duration::from_secs(1));
        let key = (0, "/".to_string());
        cache.restore_dir(key.clone(), Arc::new(Listing::new(vec![entry("a")])), Duration::from_secs(4));
        let (_, left) = cache.dir(&key).unwrap();
        assert!(left <= Duration::from_secs(6) && left > Duration::from_secs(5), "{left:?}");
        cache.restore_dir(key.clone(), Arc::new(Listing::new(vec![entry("b")])), Duration::from_secs(11));
        assert!(cache.dir(&key).is_none(), "older than the TTL: not fresh");
    }

    #[test]
    fn negatives_expire_and_a_listing_clears_them() {
        let cache = MetaCache::new(Duration::from_secs(10), Duration::from_millis(50));
        let key = (0, "/".to_string());
        cache.put_negative(key.clone(), "x.nfo");
        assert!(cache.negative(&key, "x.nfo").is_some());
        assert!(cache.negative(&key, "y.nfo").is_none());
        cache.put_dir(key.clone(), Arc::new(Listing::new(vec![entry("x.nfo")])));
        assert!(cache.negative(&key, "x.nfo").is_none());
        // Fewer negatives than entries: the negatives are scanned instead of the listing.
        let other = (0, "/other".to_string());
        cache.put_negative(key.clone(), "a");
        cache.put_negative(other.clone(), "b");
        cache.put_dir(key.clone(), Arc::new(Listing::new(vec![entry("a"), entry("b"), entry("c"), entry("d")])));
        assert!(cache.negative(&key, "a").is_none());
        assert!(cache.negative(&other, "b").is_some(), "another folder's negative stays");
        cache.put_negative(key.clone(), "z");
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.negative(&key, "z").is_none());
    }

    #[test]
    fn sizes_are_keyed_by_version() {
        let cache = MetaCache::new(Duration::from_secs(10), Duration::from_secs(10));
        let mut e = entry("a");
        cache.put_size(FileKey::new("/s", &e), 42);
        assert_eq!(cache.size(&FileKey::new("/s", &e)), Some(42));
        assert_eq!(cache.size(&FileKey::new("/t", &e)), None);
        e.version = "v2".into();
        assert_eq!(cache.size(&FileKey::new("/s", &e)), None);
    }
}
