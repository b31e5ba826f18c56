//! The write capability: what the core's write path (`crate::write`) needs from a provider.
//!
//! Optional, like [`super::OfflineTasks`]: `Driver::writable` returns `None` for shares and
//! signed links, and the core answers every write there with `EROFS` before anything happens.
//! A driver owns its protocol (instant upload by hash, multipart plans, part retries, renewing
//! expired upload credentials) and its wire types; the core owns staging, the journal, the
//! queue, name escaping, replacing an existing target, and renaming an upload back when the
//! provider stored it under another name.
//!
//! Names given here are the provider's (remote) names: the core has already undone the mount's
//! escaping (`crate::names`).

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use async_trait::async_trait;

use super::Entry;
use crate::error::Result;

/// A file staged on local disk, ready to upload. The file does not change while an upload reads
/// it (a writer that reopens it gets a new staging file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub path: PathBuf,
    pub size: u64,
    /// The hash the provider indexes, as [`ContentHasher::finish`] wrote it.
    pub hash: String,
}

impl Staged {
    /// Content known by its size and hash alone, no file behind it: only an instant upload
    /// may use it ([`Writable::upload_by_hash`]).
    pub fn by_hash(size: u64, hash: &str) -> Staged {
        Staged { path: PathBuf::new(), size, hash: hash.to_string() }
    }
}

/// Parts of one file uploading at once. Each part waits a round trip for its answer before the
/// next one starts on that connection, so over a 60 ms path 4 parts of 4 MiB capped at 20 MB/s
/// each moved 46 MiB/s of their 76 ceiling (tests/bench/upload.py, now write.py); OpenList runs 10 on PikPak
/// and 3 on 123pan, whose bans hit clients with 100+ uploads at once, far above this. Bodies
/// stream from the staging file, so a part in flight costs a connection, not its size in memory.
pub const PARTS_IN_FLIGHT: usize = 8;

/// Bytes of the current upload the provider has taken so far (`panmount uploads`). An upload
/// that starts over (new credentials) sets it back.
pub type Progress = AtomicU64;

/// Which content hash a provider indexes: what its instant upload takes and its listings show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HashKind {
    /// PikPak's GCID (SHA-1 of block SHA-1s, pikpak-protocol.md §8.6).
    Gcid,
    /// 123pan's MD5 (`Etag`).
    Md5,
}

/// A listed file's content hash, as its provider indexes it ([`super::Driver::content_hash`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContentHash {
    pub kind: HashKind,
    /// As the provider writes it in listings (hex).
    pub value: String,
}

/// The content hash a provider indexes (PikPak GCID, 123pan MD5), from bytes fed in order.
pub trait ContentHasher: Send {
    fn update(&mut self, bytes: &[u8]);
    /// The hash of everything fed, written as the provider writes it in listings.
    fn finish(self: Box<Self>) -> String;
}

#[async_trait]
pub trait Writable: Send + Sync {
    /// Create the folder `name` in `parent`; the new folder as the provider lists it. A name
    /// already taken is `Error::Exists`.
    async fn mkdir(&self, parent: &Entry, name: &str) -> Result<Entry>;

    /// Give `entry`, now in folder `from`, the name `name` in folder `to`: a rename, a move, or
    /// both. The core has made the target name free first. Returns the entry as it is now.
    async fn rename(&self, entry: &Entry, from: &Entry, to: &Entry, name: &str) -> Result<Entry>;

    /// Move to the provider's trash (recoverable there); never a permanent delete.
    async fn trash(&self, entry: &Entry) -> Result<()>;

    /// A fresh hasher for the hash the provider indexes.
    fn hasher(&self) -> Box<dyn ContentHasher>;

    /// The hash [`Self::hasher`] computes and [`Self::upload_by_hash`] takes.
    fn hash_kind(&self) -> HashKind;

    /// Make `name` in `parent` from content the provider already has (an instant upload by
    /// `hash` and `size`; no byte sent): the new file, checked for size and hash, or `None`
    /// when the provider does not have that content (then nothing is left behind). Not
    /// retried after a transport error: it creates a file.
    async fn upload_by_hash(&self, parent: &Entry, name: &str, size: u64, hash: &str) -> Result<Option<Entry>>;

    /// Upload `staged` as `name` into `parent`. Instant when the provider already has the hash
    /// (no byte sent); otherwise the bytes, with the driver's own retries. Returns once the
    /// provider lists the file complete, with the staged size and hash checked against what it
    /// reports (a mismatch is an error, and the bad copy is trashed). The provider may have
    /// stored it under another name (`name(1)`): the returned entry says which, and the core
    /// renames it back. On failure the driver removes (to the trash) what it created, since the
    /// core tries the whole upload again later with back-off; a transient failure should be
    /// returned as a transient `Error` (`Error::is_transient`), a final one as anything else.
    async fn upload(&self, parent: &Entry, name: &str, staged: &Staged, progress: &Progress) -> Result<Entry>;
}
