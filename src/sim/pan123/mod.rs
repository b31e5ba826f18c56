//! The simulated 123pan web API (pan123-protocol.md §6), on the simulator's one listener:
//! `POST /api/user/sign_in` (the login host) and `/b/api/...` (the main host), so a client's
//! `api_base` and `login_base` are both the simulator's base URL.
//!
//! - Every `/b/api` call needs the `platform` header (`require_platform`) and, in strict mode
//!   (the default), a valid request signature within `skew_window_secs` of the simulator's
//!   clock (real time plus `clock_offset_secs`, so a test can skew the server instead of the
//!   client). A refusal is `{"code": signature_error_code, "message": "签名错误..."}`; the code
//!   is a guess (§7), hence a knob.
//! - Personal endpoints need `Bearer <token>` from `sign_in`; tokens live `token_ttl_secs`
//!   (forever by default) and [`Pan123Sim::expire_tokens`] ends them all. Otherwise code 401.
//! - Listings page by `Page` with `min(limit, page_size)` entries, `Next` = the page's last id
//!   or `"-1"`; `file/list/new` and `share/get` each answer code 429 when called less than
//!   `list_interval_ms` after the previous accepted call (700 ms by default, as the service).
//! - `download_info` answers `…/sim123/download/?params=<base64 of the hop URL>`; the hop
//!   answers 302 + `Location`, or (`hop_json`) 200 + `{"data":{"redirect_url"}}`, pointing at a
//!   CDN link that expires after `link_ttl_secs` and needs `Referer: <base>/`.
//! - Switches: `traffic_exhausted` (5113 from both download endpoints), `login_fault` (7012,
//!   "too frequent"), `inject_code` for the next `inject_count` `/b/api` calls (401, 429, ...).
//! - Shares ([`Pan123Sim::add_share`]) work without a token; a wrong or missing password is
//!   code 5103. A bearer token sent to a share endpoint is counted, not checked.
//! - Writes (§2.6, §2.7): mkdir, rename, move, trash/restore and `file/info` in `mutate`;
//!   uploads (`upload_request`, presigning, completion) in `upload`; the presigned part PUTs in
//!   `objects`; the drive changes themselves in `edit`. Knobs and counters in `knobs`, also
//!   over HTTP at `/_sim/pan123/knobs` and `/_sim/pan123/counters`.
//!
//! Answers are `serde_json::json!` literals shaped from the reference, never the driver's
//! structs.

pub mod edit;
pub mod knobs;
mod mutate;
mod objects;
mod routes;
#[cfg(test)]
mod tests;
pub mod tree;
mod upload;
pub mod verify;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;

pub use knobs::{LoginFault, Pan123Counters, Pan123Knobs, PutFault};
/// Error codes of the write side; all but `NOT_FOUND` are guesses (see `mutate`, `upload`).
pub use mutate::{INVALID, NAME_TAKEN, NOT_FOUND};
pub use tree::UID;
pub use upload::{EMPTY_MD5, EMPTY_REFUSED, MD5_MISMATCH, PARTS_INCOMPLETE, SPACE_FULL};

/// The simulated account (phone form) and its password; the e-mail form works too.
pub const PHONE: &str = "13800138000";
pub const MAIL: &str = "tester@example.com";
pub const PASSWORD: &str = "sim-password";

struct Share {
    /// Folder shared (`""` = the whole drive).
    rel: String,
    password: String,
}

pub struct Pan123Sim {
    pub(crate) tree: tree::Tree,
    base_url: String,
    link_secret: String,
    knobs: Mutex<Pan123Knobs>,
    pub counters: Pan123Counters,
    /// Passwords received, tokens issued, download links minted.
    secrets: Arc<crate::sim::Secrets>,
    accounts: Mutex<HashMap<String, String>>,
    /// token -> expiry.
    tokens: Mutex<HashMap<String, Option<Instant>>>,
    shares: Mutex<HashMap<String, Share>>,
    /// endpoint -> (last call, last accepted call).
    list_times: Mutex<HashMap<&'static str, (Instant, Instant)>>,
    /// Uploads between upload_request and completion, by `UploadId`.
    uploads: Mutex<HashMap<String, upload::Upload>>,
    /// Signs the presigned part URLs.
    s3_secret: String,
}

/// What a test sees of an item ([`Pan123Sim::node`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its `FileId` (-1 for an item below a trashed folder that was never listed, so never
    /// had one).
    pub id: i64,
    pub size: u64,
    /// Lowercase hex MD5 (`""` for folders).
    pub etag: String,
    pub is_dir: bool,
    /// In the trash, itself or through a folder above it.
    pub trashed: bool,
}

impl Pan123Sim {
    pub fn new(data_dir: PathBuf, base_url: String, link_secret: String, secrets: Arc<crate::sim::Secrets>) -> Self {
        let counters = Pan123Counters::default();
        counters.min_list_gap_ms.store(u64::MAX, Ordering::Relaxed);
        let accounts = [(PHONE.to_string(), PASSWORD.to_string()), (MAIL.to_string(), PASSWORD.to_string())];
        let s3_secret = format!("{:032x}", rand::random::<u128>());
        secrets.record(&s3_secret);
        Pan123Sim {
            tree: tree::Tree::new(data_dir),
            base_url,
            link_secret,
            knobs: Mutex::new(Pan123Knobs::default()),
            counters,
            secrets,
            accounts: Mutex::new(accounts.into_iter().collect()),
            tokens: Mutex::new(HashMap::new()),
            shares: Mutex::new(HashMap::new()),
            list_times: Mutex::new(HashMap::new()),
            uploads: Mutex::new(HashMap::new()),
            s3_secret,
        }
    }

    pub fn knobs(&self) -> Pan123Knobs {
        self.knobs.lock().unwrap().clone()
    }

    /// Change some knobs, e.g. `sim.pan123.update(|k| k.hop_json = true)`.
    pub fn update(&self, f: impl FnOnce(&mut Pan123Knobs)) {
        f(&mut self.knobs.lock().unwrap());
    }

    pub fn add_account(&self, username: &str, password: &str) {
        self.accounts.lock().unwrap().insert(username.into(), password.into());
    }

    /// Share the folder `rel` (`""` or `/Movies`) under `key`, with `password` (`""` = none).
    pub fn add_share(&self, key: &str, rel: &str, password: &str) {
        let rel = rel.trim_end_matches('/').to_string();
        self.shares.lock().unwrap().insert(key.into(), Share { rel, password: password.into() });
    }

    /// End every session: the next call with an old token gets code 401.
    pub fn expire_tokens(&self) {
        let past = Instant::now().checked_sub(Duration::from_secs(1)).unwrap_or_else(Instant::now);
        for expiry in self.tokens.lock().unwrap().values_mut() {
            *expiry = Some(past);
        }
    }

    /// The id of a folder path of the data dir (`/Movies`), as the API shows it.
    pub fn folder_id(&self, rel: &str) -> Option<i64> {
        self.tree.id_of(rel)
    }

    pub fn count(&self, f: impl FnOnce(&Pan123Counters) -> &AtomicU64) -> u64 {
        Pan123Counters::get(f(&self.counters))
    }

    /// The item at `path` (`/a/b.txt`), live or in the trash (a live one first).
    pub fn node(&self, path: &str) -> Option<NodeInfo> {
        let path = path.trim_end_matches('/');
        if let Some(n) = self.tree.id_of(path).and_then(|id| self.tree.node(id)) {
            let etag = self.tree.etag(&n);
            return Some(NodeInfo { id: n.id, size: n.size, etag, is_dir: n.is_dir, trashed: false });
        }
        let (disk, id) = self.trashed_place(path)?;
        let meta = std::fs::metadata(&disk).ok()?;
        let bytes = if meta.is_dir() { None } else { std::fs::read(&disk).ok() };
        Some(NodeInfo {
            id,
            size: bytes.as_ref().map_or(0, |b| b.len() as u64),
            etag: bytes.map(|b| upload::md5_hex(&b)).unwrap_or_default(),
            is_dir: meta.is_dir(),
            trashed: true,
        })
    }

    /// The content of the file at `path`, live or in the trash.
    pub fn bytes(&self, path: &str) -> Option<Vec<u8>> {
        if let Some(n) = self.tree.id_of(path).and_then(|id| self.tree.node(id)).filter(|n| !n.is_dir) {
            return std::fs::read(self.tree.path(&n.rel)).ok();
        }
        std::fs::read(self.trashed_place(path)?.0).ok()
    }

    /// The paths the items in the trash had, oldest first (not what lies below them).
    pub fn trashed_paths(&self) -> Vec<String> {
        self.tree.trashed().into_iter().map(|t| t.rel).collect()
    }

    /// Where the bytes of a trashed `path` are (in a trashed item or below one), and its id.
    fn trashed_place(&self, path: &str) -> Option<(PathBuf, i64)> {
        self.tree.trashed().into_iter().rev().find_map(|t| {
            let rest = path.strip_prefix(&t.rel)?;
            let id = if rest.is_empty() { t.id } else { t.below.iter().find(|(s, _)| s == rest).map_or(-1, |b| b.1) };
            (rest.is_empty() || rest.starts_with('/')).then(|| (t.disk.join(rest.trim_start_matches('/')), id))
        })
    }
}

/// The routes, to be merged into the simulator's router.
pub fn router(sim: Arc<Pan123Sim>) -> Router {
    routes::router(sim)
}
