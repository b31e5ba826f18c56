//! Open handles: a folder's listing frozen at `opendir` (so offsets stay stable while the
//! kernel pages through it), or a file's reader.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::read::FileReader;

/// One name in a folder snapshot.
#[derive(Debug, Clone)]
pub struct DirSlot {
    pub name: String,
    /// For remote children: the entry as listed. Virtual children carry their inode.
    pub child: DirChild,
}

#[derive(Debug, Clone)]
pub enum DirChild {
    Virtual(u64),
    Remote(crate::drivers::Entry),
    /// `.` and `..`.
    Dot(u64),
}

/// What the kernel keeps of a folder when it caches the folder's listing (names, inodes,
/// types): if this is unchanged since the last `opendir`, its cached copy may be used.
pub fn listing_digest(slots: &[DirSlot]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for slot in slots {
        slot.name.hash(&mut h);
        match &slot.child {
            DirChild::Virtual(ino) | DirChild::Dot(ino) => ino.hash(&mut h),
            DirChild::Remote(e) => (&e.id, e.is_dir).hash(&mut h),
        }
    }
    h.finish()
}

pub enum Handle {
    Dir {
        ino: u64,
        slots: Arc<Vec<DirSlot>>,
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
