//! One file being written: its staging file, its size, and the provider's content hash
//! computed as the bytes arrive.
//!
//! The hash is fed by writes that come in order (what `cp`, `rsync` and a download write);
//! the first write that does not continue where the last one ended (or a truncate) drops it,
//! and the hash is computed again from the staging file before the upload. Copying a remote
//! file in before a partial rewrite also goes through [`Staging::write`], in order.
//!
//! Past [`INLINE_UP_TO`] bytes the hashing moves to a thread of its own, fed the written
//! chunks (shared, not copied) through a bounded queue: a large `cp` then waits for its write
//! to reach the staging file, not for MD5 or GCID too, and the hashing runs on another core.
//! The queue's bound holds writers back when hashing is slower than the disk.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;

use crate::drivers::{ContentHasher, Writable};
use crate::error::{Error, Result};

/// Files up to this size are hashed in the writing call; the rest of a larger one on a thread.
const INLINE_UP_TO: u64 = 8 << 20;
/// Chunks (a write each, up to 1 MiB) queued for the hashing thread before writers wait.
const QUEUED_CHUNKS: usize = 32;

enum Hash {
    /// Fed up to `next`.
    Running {
        feed: Feed,
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

/// Where in-order bytes are hashed.
enum Feed {
    Inline(Box<dyn ContentHasher>),
    Thread { chunks: std::sync::mpsc::SyncSender<Bytes>, done: std::thread::JoinHandle<String> },
}

impl Feed {
    /// Hash `data`, which ends at `end`; `None` if the hashing thread is gone (the hash is
    /// then computed from the file).
    fn update(self, data: &Bytes, end: u64) -> Option<Feed> {
        match self {
            Feed::Inline(mut hasher) if end <= INLINE_UP_TO => {
                hasher.update(data);
                Some(Feed::Inline(hasher))
            }
            Feed::Inline(hasher) => Feed::spawn(hasher)?.update(data, end),
            Feed::Thread { chunks, done } => chunks.send(data.clone()).ok().map(|()| Feed::Thread { chunks, done }),
        }
    }

    /// The same hasher on a thread; `None` if no thread can be had (then the hash is computed
    /// from the file, as after a write out of order).
    fn spawn(mut hasher: Box<dyn ContentHasher>) -> Option<Feed> {
        let (chunks, queued) = std::sync::mpsc::sync_channel::<Bytes>(QUEUED_CHUNKS);
        let hashing = move || {
            for chunk in queued {
                hasher.update(&chunk);
            }
            hasher.finish()
        };
        match std::thread::Builder::new().name("panmount-hash".into()).spawn(hashing) {
            Ok(done) => Some(Feed::Thread { chunks, done }),
            Err(e) => {
                tracing::warn!("no thread to hash an upload ({e}); it is hashed from the file before it goes up");
                None
            }
        }
    }

    fn finish(self) -> Option<String> {
        match self {
            Feed::Inline(hasher) => Some(hasher.finish()),
            Feed::Thread { chunks, done } => {
                drop(chunks);
                done.join().ok()
            }
        }
    }
}

impl Staging {
    /// A new, empty staging file at `path`.
    pub fn create(path: PathBuf, hasher: Box<dyn ContentHasher>) -> Result<Staging> {
        let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io)?;
        let staging = Staging::with_file(path, file, 0, Hash::Running { feed: Feed::Inline(hasher), next: 0 });
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
    pub fn write(&self, offset: u64, data: &Bytes) -> Result<()> {
        let mut hash = self.hash.lock().unwrap();
        self.file.write_all_at(data, offset).map_err(io)?;
        let end = offset + data.len() as u64;
        self.size.fetch_max(end, Ordering::SeqCst);
        self.version.fetch_add(1, Ordering::SeqCst);
        *hash = match std::mem::replace(&mut *hash, Hash::Lost) {
            Hash::Running { feed, next } if next == offset => {
                feed.update(data, end).map_or(Hash::Lost, |feed| Hash::Running { feed, next: end })
            }
            Hash::Done(done) if data.is_empty() => Hash::Done(done),
            _ => Hash::Lost,
        };
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

    /// The staged content is `size` bytes the provider already has, with the provider's
    /// `hash`: the file gets that length (a hole: none of the bytes is here) and the hash is
    /// taken as given. Blocking.
    pub fn copied(&self, size: u64, hash: String) -> Result<()> {
        let mut staged = self.hash.lock().unwrap();
        self.file.set_len(size).map_err(io)?;
        self.size.store(size, Ordering::SeqCst);
        self.version.fetch_add(1, Ordering::SeqCst);
        *staged = Hash::Done(hash);
        Ok(())
    }

    /// Make the bytes durable (blocking).
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(io)
    }

    /// The content hash, when every byte went through the hasher in order; finishing it
    /// (no more writes may come: the last writer closed). Blocking: it may wait for the
    /// hashing thread to catch up.
    pub fn finish_hash(&self) -> Option<String> {
        let mut hash = self.hash.lock().unwrap();
        let size = self.size();
        let done = match std::mem::replace(&mut *hash, Hash::Lost) {
            Hash::Running { feed, next } if next == size => feed.finish(),
            Hash::Done(done) => Some(done),
            _ => None,
        };
        if let Some(done) = &done {
            *hash = Hash::Done(done.clone());
        }
        done
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
        s.write(0, &Bytes::from_static(&[1, 2])).unwrap();
        s.write(2, &Bytes::from_static(&[3])).unwrap();
        assert_eq!((s.version(), s.committed()), (3, 0));
        assert_eq!(s.finish_hash().as_deref(), Some("3:6"));
        assert_eq!(s.read(1, 10).unwrap(), vec![2, 3]);

        let t = Staging::create(dir.path().join("b"), Box::new(Sum(0, 0))).unwrap();
        t.write(0, &Bytes::from_static(&[1, 2, 3])).unwrap();
        t.write(1, &Bytes::from_static(&[9])).unwrap();
        assert_eq!(t.finish_hash(), None);
        assert_eq!(t.read(0, 3).unwrap(), vec![1, 9, 3]);

        let u = Staging::create(dir.path().join("c"), Box::new(Sum(0, 0))).unwrap();
        u.write(0, &Bytes::from_static(&[1, 2, 3])).unwrap();
        u.truncate(2).unwrap();
        assert_eq!(u.finish_hash(), None, "a truncate below what was hashed loses the hash");
        assert_eq!(u.size(), 2);
    }

    #[test]
    fn a_large_file_is_hashed_on_a_thread_with_the_same_result() {
        let dir = tempfile::tempdir().unwrap();
        let s = Staging::create(dir.path().join("big"), Box::new(Sum(0, 0))).unwrap();
        let chunk = Bytes::from((0..1 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let mut offset = 0;
        for _ in 0..20 {
            s.write(offset, &chunk).unwrap();
            offset += chunk.len() as u64;
        }
        assert!(
            matches!(&*s.hash.lock().unwrap(), Hash::Running { feed: Feed::Thread { .. }, next } if *next == offset)
        );
        let sum: u64 = chunk.iter().map(|&b| b as u64).sum::<u64>() * 20;
        assert_eq!(s.finish_hash(), Some(format!("{offset}:{sum}")));
        // A write out of order past the inline size drops the thread's hash too.
        let t = Staging::create(dir.path().join("big2"), Box::new(Sum(0, 0))).unwrap();
        for i in 0..10 {
            t.write(i * chunk.len() as u64, &chunk).unwrap();
        }
        t.write(5, &Bytes::from_static(b"x")).unwrap();
        assert_eq!(t.finish_hash(), None);
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
