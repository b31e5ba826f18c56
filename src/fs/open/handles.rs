//! Open handles: a folder's listing frozen at `opendir` (so offsets stay stable while the
//! kernel pages through it), a file's reader, or a snapshot of the telemetry report.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::fs::namespace::DirSnapshot;
use crate::read::FileReader;

pub enum Handle {
    Dir {
        ino: u64,
        snapshot: DirSnapshot,
    },
    File(Arc<FileReader>),
    /// A file not yet on its provider, read (and, for a writer, written) in its staging file.
    Staged {
        upload: Arc<crate::write::Upload>,
        writer: bool,
    },
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

    pub fn remove(&self, fh: u64) -> Option<Arc<Handle>> {
        self.open.lock().unwrap().remove(&fh)
    }

    pub fn len(&self) -> usize {
        self.open.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
