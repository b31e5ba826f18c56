//! One file being written: its staging file, its size, and the provider's content hash
//! computed as the bytes arrive.
//!
//! The hash is fed by writes that come in order (what `cp`, `rsync` and a download write);
//! the first write that does not continue where the last one ended (or a truncate) drops it,
//! and the hash is computed again from the staging file before the upload. Copying a remote
//! file in before a partial rewrite also goes through [`Staging::write`], in order.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::drivers::{ContentHasher, Writable};
use crate::error::{Error, Result};

enum Hash {
    /// Fed up to `next`.
    Running {
        hasher: Box<dyn ContentHasher>,
        next: u64,
    },
    Done(String),
    /// Writes came out of order: compute from the file.
    Lost,
}

pub struct Staging {
    pub path: PathBuf,
    file: File,
    size: AtomicU64,
    hash: Mutex<Hash>,
    /// Handles open for writing.
    writers: AtomicUsize,
    /// Counts changes (writes, size changes; a new file starts at 1): the journal and the
    /// upload each remember the version they have, so a `close` or `fsync` knows what is new
    /// to it even when another descriptor's `close` committed in between.
    version: AtomicU64,
    /// The version the journal's record and the fsynced staging file hold.
    committed: AtomicU64,
}

impl Staging {
    /// A new, empty staging file at `path`.
    pub fn create(path: PathBuf, hasher: Box<dyn ContentHasher>) -> Result<Staging> {
        let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io)?;
        let staging = Staging::with_file(path, file, 0, Hash::Running { hasher, next: 0 });
        // Not in the journal yet: even an empty file is recorded at its first close.
        staging.committed.store(0, Ordering::SeqCst);
        Ok(staging)
    }

    /// A staging file left by an earlier run, whose record says `size` and `hash`.
    pub fn reopen(path: PathBuf, size: u64, hash: Option<String>) -> Result<Staging> {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).map_err(io)?;
        let actual = file.metadata().map_err(io)?.len();
        if actual != size {
            // Written on after its last close, then the process died: the file holds the newest
            // bytes, which is what goes up (hashed again); nothing is dropped.
            tracing::warn!(path = %path.display(), recorded = size, actual, "a staged file changed after its last close; uploading what it holds");
            return Ok(Staging::with_file(path, file, actual, Hash::Lost));
        }
        Ok(Staging::with_file(path, file, size, hash.map_or(Hash::Lost, Hash::Done)))
    }

    fn with_file(path: PathBuf, file: File, size: u64, hash: Hash) -> Staging {
        Staging {
            path,
            file,
            size: AtomicU64::new(size),
            hash: Mutex::new(hash),
            writers: AtomicUsize::new(0),
            version: AtomicU64::new(1),
            committed: AtomicU64::new(1),
        }
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::SeqCst)
    }

    /// Write `data` at `offset` (blocking: call from a blocking task).
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        let mut hash = self.hash.lock().unwrap();
        self.file.write_all_at(data, offset).map_err(io)?;
        let end = offset + data.len() as u64;
        self.size.fetch_max(end, Ordering::SeqCst);
        self.version.fetch_add(1, Ordering::SeqCst);
        match &mut *hash {
            Hash::Running { hasher, next } if *next == offset => {
                hasher.update(data);
                *next = end;
            }
            Hash::Done(_) if data.is_empty() => {}
            _ => *hash = Hash::Lost,
        }
        Ok(())
    }

    /// Read up to `len` bytes at `offset` (blocking).
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let size = self.size();
        let len = len.min(size.saturating_sub(offset) as usize);
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, offset).map_err(io)?;
        Ok(buf)
    }

    /// Set the size (`truncate`, `ftruncate`), blocking.
    pub fn truncate(&self, size: u64) -> Result<()> {
        let mut hash = self.hash.lock().unwrap();
        self.file.set_len(size).map_err(io)?;
        if size != self.size.swap(size, Ordering::SeqCst) {
            let keeps = matches!(&*hash, Hash::Running { next, .. } if *next == size);
            if !keeps {
                *hash = Hash::Lost;
            }
            self.version.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Make the bytes durable (blocking).
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(io)
    }

    /// The content hash, when every byte went through the hasher in order; finishing it
    /// (no more writes may come: the last writer closed).
    pub fn finish_hash(&self) -> Option<String> {
        let mut hash = self.hash.lock().unwrap();
        let size = self.size();
        match std::mem::replace(&mut *hash, Hash::Lost) {
            Hash::Running { hasher, next } if next == size => {
                let done = hasher.finish();
                *hash = Hash::Done(done.clone());
                Some(done)
            }
            Hash::Done(done) => {
                *hash = Hash::Done(done.clone());
                Some(done)
            }
            _ => None,
        }
    }

    /// The hash computed from the staging file (blocking).
    pub fn hash_from_file(&self, writable: &dyn Writable) -> Result<String> {
        let mut hasher = writable.hasher();
        let mut buf = vec![0; 1 << 20];
        let mut offset = 0;
        let size = self.size();
        while offset < size {
            let n = self.file.read_at(&mut buf, offset).map_err(io)?;
            if n == 0 {
                return Err(Error::internal(format!("staging file {} ended early", self.path.display())));
            }
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        let done = hasher.finish();
        *self.hash.lock().unwrap() = Hash::Done(done.clone());
        Ok(done)
    }

    pub fn add_writer(&self) {
        self.writers.fetch_add(1, Ordering::SeqCst);
    }

    /// A writer closed; whether it was the last one.
    pub fn remove_writer(&self) -> bool {
        self.writers.fetch_sub(1, Ordering::SeqCst) == 1
    }

    pub fn has_writers(&self) -> bool {
        self.writers.load(Ordering::SeqCst) > 0
    }

    /// The current version (see [`Staging::version`]'s field).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// The version the journal holds.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }

    /// The journal now holds `version`.
    pub fn set_committed(&self, version: u64) {
        self.committed.fetch_max(version, Ordering::SeqCst);
    }
}

/// A local I/O error: a full disk is `ENOSPC` (the user frees space), anything else `EIO`.
pub fn io(err: std::io::Error) -> Error {
    if err.raw_os_error() == Some(libc::ENOSPC) {
        Error::NoSpace("the staging disk is full".into())
    } else {
        Error::internal(format!("staging file: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in hash: the bytes' count and sum, enough to see what was fed.
    struct Sum(u64, u64);
    impl ContentHasher for Sum {
        fn update(&mut self, bytes: &[u8]) {
            self.0 += bytes.len() as u64;
            self.1 += bytes.iter().map(|&b| b as u64).sum::<u64>();
        }
        fn finish(self: Box<Self>) -> String {
            format!("{}:{}", self.0, self.1)
        }
    }

    #[test]
    fn in_order_writes_are_hashed_out_of_order_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let s = Staging::create(dir.path().join("a"), Box::new(Sum(0, 0))).unwrap();
        s.write(0, &[1, 2]).unwrap();
        s.write(2, &[3]).unwrap();
        assert_eq!((s.version(), s.committed()), (3, 0));
        assert_eq!(s.finish_hash().as_deref(), Some("3:6"));
        assert_eq!(s.read(1, 10).unwrap(), vec![2, 3]);

        let t = Staging::create(dir.path().join("b"), Box::new(Sum(0, 0))).unwrap();
        t.write(0, &[1, 2, 3]).unwrap();
        t.write(1, &[9]).unwrap();
        assert_eq!(t.finish_hash(), None);
        assert_eq!(t.read(0, 3).unwrap(), vec![1, 9, 3]);

        let u = Staging::create(dir.path().join("c"), Box::new(Sum(0, 0))).unwrap();
        u.write(0, &[1, 2, 3]).unwrap();
        u.truncate(2).unwrap();
        assert_eq!(u.finish_hash(), None, "a truncate below what was hashed loses the hash");
        assert_eq!(u.size(), 2);
    }

    #[test]
    fn a_staged_file_that_grew_after_its_record_is_resumed_whole_and_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"abcdef").unwrap();
        let same = Staging::reopen(dir.path().join("a"), 6, Some("H".into())).unwrap();
        assert_eq!(same.finish_hash().as_deref(), Some("H"));
        let grown = Staging::reopen(dir.path().join("a"), 4, Some("H".into())).unwrap();
        assert_eq!(grown.size(), 6);
        assert_eq!(grown.finish_hash(), None);
        assert_eq!(grown.read(0, 10).unwrap(), b"abcdef");
    }
}
