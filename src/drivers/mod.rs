//! The driver interface: what panmount needs from a cloud drive, and nothing more.
//!
//! A driver knows its provider's HTTP and JSON. It never sees FUSE, inodes or caches: the core
//! (`crate::fs`) caches listings and links, resolves unknown sizes, and reads bytes through
//! `crate::read`. Read-only drivers implement `list` and `link`; the rest are optional
//! capabilities with defaults.

pub mod pages;
pub mod pan123;
pub mod pan123_link;
pub mod pan123_share;
pub mod pikpak;
pub mod pikpak_share;
pub mod writable;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::config::{ConfigError, DriverOption, StorageConfig};
use crate::error::Result;
use crate::http::HttpClient;

/// The per-file connection limit of 123pan's CDN, which publishes none (unconfirmed: several
/// readers of one file may use this many; refusals lower it, see `Driver::max_connections`).
pub const PAN123_CONNECTIONS: usize = 16;

/// A file or folder as the provider describes it. Serialisable because listings persist across
/// restarts (`crate::cache::store`): it holds no secret (links are minted apart, never stored).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// Unique within the storage; what the driver needs to list or link it again.
    pub id: String,
    pub name: String,
    pub is_dir: bool,
    /// `None` when the provider does not say (a 123pan link listed without a size): the core
    /// learns the real size from the server before showing the file.
    pub size: Option<u64>,
    pub mtime: SystemTime,
    /// Changes whenever the content may have changed (a hash, or size and mtime). Cached blocks
    /// are keyed by it, so a changed file is never served from stale blocks.
    pub version: String,
}

/// An [`Entry`] borrowed from where it is kept (a cached listing keeps its entries packed,
/// `crate::cache::meta::Listing`), serialised as an `Entry` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EntryRef<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub is_dir: bool,
    pub size: Option<u64>,
    pub mtime: SystemTime,
    pub version: &'a str,
}

impl EntryRef<'_> {
    pub fn to_entry(&self) -> Entry {
        Entry {
            id: self.id.to_string(),
            name: self.name.to_string(),
            is_dir: self.is_dir,
            size: self.size,
            mtime: self.mtime,
            version: self.version.to_string(),
        }
    }
}

impl Entry {
    pub fn view(&self) -> EntryRef<'_> {
        EntryRef {
            id: &self.id,
            name: &self.name,
            is_dir: self.is_dir,
            size: self.size,
            mtime: self.mtime,
            version: &self.version,
        }
    }

    /// A storage's root folder, known by its id alone (no name, size 0, no time: the core shows
    /// the mount's start time for it).
    pub fn root_folder(id: &str) -> Entry {
        Entry {
            id: id.to_string(),
            name: String::new(),
            is_dir: true,
            size: Some(0),
            mtime: SystemTime::UNIX_EPOCH,
            version: String::new(),
        }
    }
}

pub use crate::http::Link;
pub use writable::{ContentHash, ContentHasher, HashKind, PARTS_IN_FLIGHT, Progress, Staged, Writable};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub total: u64,
    pub used: u64,
}

#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// The driver's name as written in the config (`123pan_link`).
    fn kind(&self) -> &'static str;

    /// The folder this storage mounts.
    fn root(&self) -> Entry;

    /// Authenticate (or check that we can). Called before mounting; a failure marks the storage
    /// down without taking the others with it.
    async fn login(&self) -> Result<()> {
        Ok(())
    }

    /// Every child of `dir`, all pages.
    async fn list(&self, dir: &Entry) -> Result<Vec<Entry>>;

    /// A URL that serves `file`'s bytes with Range support.
    async fn link(&self, file: &Entry) -> Result<Link>;

    async fn quota(&self) -> Result<Option<Quota>> {
        Ok(None)
    }

    /// How many ranged requests may run at once against one link (all handles of a file
    /// share them; one handle uses at most 8). 8 is PikPak's measured per-URL limit (its CDN
    /// answers a 9th with 503). Either way the read path gives up a connection for good each
    /// time the CDN refuses one (`read::connections`), and `[cache] connections_per_file` sets
    /// it outright.
    fn max_connections(&self) -> usize {
        8
    }

    /// Offline (cloud) downloads, for drivers whose provider has them (`panmount offline`).
    fn offline(&self) -> Option<&dyn OfflineTasks> {
        None
    }

    /// Folders, renames, trash and uploads, for drivers whose provider takes writes
    /// ([`Writable`]); `None` makes every write on this storage `EROFS`.
    fn writable(&self) -> Option<&dyn Writable> {
        None
    }

    /// The content hash `file`'s listing gave, when the provider indexes content by it: a
    /// copy into a storage indexing the same kind ([`Writable::upload_by_hash`]) then moves
    /// no byte. `None` when the listing has none (or a stand-in).
    fn content_hash(&self, _file: &Entry) -> Option<ContentHash> {
        None
    }
}

/// `value` when it is `len` hex digits: a listed hash, not a stand-in built from size and time.
pub fn hex_hash(value: &str, len: usize) -> Option<String> {
    (value.len() == len && value.bytes().all(|b| b.is_ascii_hexdigit())).then(|| value.to_string())
}

/// One offline-download task as `panmount offline list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineTask {
    pub id: String,
    pub name: String,
    /// The provider's phase, e.g. `PHASE_TYPE_RUNNING`.
    pub phase: String,
    /// 0 to 100.
    pub progress: u32,
    pub size: Option<u64>,
    /// The provider's message (the error text when the task failed).
    pub message: String,
}

/// The offline-download capability (PikPak's cloud download, pikpak-protocol.md §8.6).
#[async_trait]
pub trait OfflineTasks: Send + Sync {
    /// Start downloading `url` into the folder `folder` (an [`Entry::id`]; `None`: the
    /// provider's default). Returns the task id.
    async fn add(&self, url: &str, folder: Option<&Entry>) -> Result<String>;
    async fn list(&self) -> Result<Vec<OfflineTask>>;
    async fn remove(&self, ids: &[String]) -> Result<()>;
}

/// Decode a provider's JSON answer into a wire type. The error names what was answered and
/// where in it the problem is (`file list: files[3].name: invalid type: integer ...`).
pub fn decode<T: serde::de::DeserializeOwned>(what: &str, value: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| crate::error::Error::InvalidResponse(format!("{what}: {}: {}", e.path(), e.inner())))
}

/// A size as providers write it: a JSON number or numeric text. Anything else (negative,
/// fractional, past `i64::MAX` which no file system can show, not a number, missing) is
/// unknown, never an error: one odd entry must not hide its folder, and the core learns an
/// unknown file size from the server.
pub fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::Deserialize;
    use serde_json::Value;
    let n = match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && (0.0..9.2e18).contains(f)).map(|f| f as u64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(n.filter(|&n| n <= i64::MAX as u64))
}

/// What a driver may use while it is being built from its config.
pub struct BuildContext {
    pub http: HttpClient,
    pub state_dir: Option<std::path::PathBuf>,
}

/// Every driver name the config accepts, with the options it takes (besides `path` and
/// `driver`), each declared once with its type (`crate::config::driver_options`). An option `X`
/// may also be written `X_file`; the config loader handles that.
pub const DRIVERS: &[(&str, &[DriverOption])] = &[
    ("pikpak", pikpak::OPTIONS),
    ("pikpak_share", pikpak_share::OPTIONS),
    ("123pan", pan123::OPTIONS),
    ("123pan_share", pan123_share::OPTIONS),
    ("123pan_link", pan123_link::OPTIONS),
];

/// Build the driver for one `[[storage]]` table.
pub fn build(storage: &StorageConfig, ctx: &BuildContext) -> Result<Arc<dyn Driver>, ConfigError> {
    match storage.driver.as_str() {
        "123pan" => Ok(Arc::new(pan123::Pan123::from_options(&storage.options, ctx)?)),
        "123pan_share" => Ok(Arc::new(pan123_share::Pan123Share::from_options(&storage.options, ctx)?)),
        "123pan_link" => Ok(Arc::new(pan123_link::Pan123Link::from_options(&storage.options, ctx)?)),
        "pikpak" => Ok(Arc::new(pikpak::PikPak::from_options(&storage.options, ctx)?)),
        "pikpak_share" => Ok(Arc::new(pikpak_share::PikPakShare::from_options(&storage.options, ctx)?)),
        other => Err(storage
            .options
            .error("driver", format!("the {other} driver is not available in this version of panmount yet"))),
    }
}

/// What the drivers' tests against the simulator share.
#[cfg(test)]
pub(crate) mod test_support {
    use super::BuildContext;
    use crate::config::{Config, Options};
    use crate::http::HttpClient;

    /// The options of the one storage `text` declares, and a build context, as
    /// `drivers::build` gets them.
    pub fn options(text: &str) -> (Options, BuildContext) {
        let config = Config::parse(text, std::path::Path::new("/etc/panmount.toml")).unwrap();
        let options = config.storages.into_iter().next().unwrap().options;
        (options, BuildContext { http: HttpClient::new(None).unwrap(), state_dir: None })
    }

    /// Content that differs at every offset of a part, so a part sent twice or out of place shows.
    pub fn content(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| ((i * 31 + i / 4093) as u8) ^ seed).collect()
    }

    /// `bytes` staged as `name` in `dir`, hashed as `w` hashes.
    pub fn stage(w: &dyn super::Writable, dir: &std::path::Path, name: &str, bytes: &[u8]) -> super::Staged {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut h = w.hasher();
        h.update(bytes);
        super::Staged { path, size: bytes.len() as u64, hash: h.finish() }
    }

    /// Upload `bytes`; the progress ends at the size, or at 0 for an instant upload (the
    /// simulator's count of them, `instant_uploads`, moved).
    pub async fn upload(
        w: &dyn super::Writable,
        dir: &std::path::Path,
        parent: &super::Entry,
        name: &str,
        bytes: &[u8],
        instant_uploads: impl Fn() -> u64,
    ) -> crate::error::Result<super::Entry> {
        use std::sync::atomic::Ordering;
        let staged = stage(w, dir, name, bytes);
        let progress = super::Progress::new(0);
        let before = instant_uploads();
        let entry = w.upload(parent, name, &staged, &progress).await?;
        let expected = if instant_uploads() > before { 0 } else { bytes.len() as u64 };
        assert_eq!(progress.load(Ordering::Relaxed), expected, "progress counts the bytes the store took");
        Ok(entry)
    }
}
