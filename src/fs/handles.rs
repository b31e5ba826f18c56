//! Open handles: a folder's listing frozen at `opendir` (so offsets stay stable while the
//! kernel pages through it), or a file's reader.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::cache::meta::Listing;
use crate::drivers::Entry;
use crate::error::{Error, Result};
use crate::read::FileReader;

/// A folder as `opendir` saw it: `.`, `..` and a virtual folder's children by name, then a
/// remote folder's listing, shared with the cache rather than copied (a folder of a million
/// entries would otherwise cost a copy of every entry per open handle).
#[derive(Debug)]
pub struct DirSnapshot {
    pub fixed: Vec<(String, u64)>,
    pub remote: Option<Arc<Listing>>,
}

/// One name of a [`DirSnapshot`].
pub enum DirSlot<'a> {
    /// `.`, `..` or a virtual child: its inode.
    Fixed(&'a str, u64),
    Remote(&'a Entry),
}

impl DirSnapshot {
    pub fn len(&self) -> usize {
        self.fixed.len() + self.remote.as_ref().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> Option<DirSlot<'_>> {
        match self.fixed.get(i) {
            Some((name, ino)) => Some(DirSlot::Fixed(name, *ino)),
            None => self.remote.as_ref()?.get(i - self.fixed.len()).map(DirSlot::Remote),
        }
    }

    /// What the kernel keeps of a folder when it caches the folder's listing (names, inodes,
    /// types): if this is unchanged since the last `opendir`, its cached copy may be used.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (name, ino) in &self.fixed {
            (name, ino).hash(&mut h);
        }
        for e in self.remote.iter().flat_map(|l| l.iter()) {
            (&e.name, &e.id, e.is_dir).hash(&mut h);
        }
        h.finish()
    }
}

pub enum Handle {
    Dir {
        ino: u64,
        snapshot: DirSnapshot,
    },
    File(Arc<FileReader>),
    /// A snapshot of the telemetry report, taken at open.
    Stats(bytes::Bytes),
}

#[derive(Default)]
pub struct Handles {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Handle>>>,
}

impl Handles {
    pub fn insert(&self, handle: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.open.lock().unwrap().insert(fh, Arc::new(handle));
        fh
    }

    pub fn get(&self, fh: u64) -> Result<Arc<Handle>> {
        self.open.lock().unwrap().get(&fh).cloned().ok_or(Error::BadHandle)
    }

    pub fn remove(&self, fh: u64) {
        self.open.lock().unwrap().remove(&fh);
    }

    pub fn len(&self) -> usize {
        self.open.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
