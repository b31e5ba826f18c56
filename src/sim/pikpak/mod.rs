//! The simulated PikPak: user API (captcha, signin, token, me), drive API (files, detail, about,
//! offline tasks, mkdir, rename, batch move/trash/untrash/delete, upload init), the upload
//! object store and anonymous shares, on the same listener as the CDN, so `api_base` =
//! `user_base` = the simulator's base URL and the upload `endpoint` is its `host:port`.
//! Behaviour follows pikpak-protocol.md §13 and the write decisions file; every answer is
//! written here from `serde_json::json!` literals, never from the driver's types.
//!
//! Files: `knobs` (settings and counters), `auth` (A1–A4), `drive` (D1–D3, D13, T1–T3),
//! `mutate` (mkdir, rename, batch calls and their tasks), `upload` (init, instant uploads,
//! storing a finished object), `objects` (the OSS-compatible store), `oss_auth` (its request
//! check), `tree` (paths, trash, free names, disk places, test lookups), `share` (S1–S3). This
//! file holds the state: the tree (built once from `data_dir`: folders and files with stable
//! ids derived from their paths; writes change it and the data dir together), tokens, tasks,
//! and the JSON helpers.
//!
//! Choices where the reference is silent (§15): the wrong-password code is 4011; rate-limited
//! drive calls answer HTTP 400 with error_code 10 (the status is unknown; a client must branch
//! on the code); a bad `captcha_sign` is 400 `invalid_argument` code 3; the human-check wall
//! (knob) applies to login captchas only, so a storage that logs in with a refresh token still
//! works while another is walled.

// Checks return the HTTP answer to send as their error; its size does not matter here.
#![allow(clippy::result_large_err)]

mod auth;
mod drive;
pub mod knobs;
mod mutate;
mod objects;
mod oss_auth;
mod share;
mod tree;
mod upload;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{any, get, post};
use md5::{Digest, Md5};
use serde_json::{Value, json};

pub use knobs::{Counters, PikPakKnobs, PutFault};
pub use tree::NodeInfo;

/// The simulated PikPak service. Tests reach it through `SimHandle::pikpak`.
pub struct PikPakSim {
    pub base_url: String,
    link_secret: String,
    data_dir: PathBuf,
    /// Upload bodies and parts before they are complete: a directory next to `data_dir` (so
    /// a finished object is renamed into place, not copied) or else in the temp dir; made on
    /// first use, removed on drop.
    staging: crate::sim::store::Staging,
    knobs: Mutex<PikPakKnobs>,
    pub counters: Counters,
    /// Tokens issued, passwords received, link signatures minted.
    pub(crate) secrets: Arc<super::Secrets>,
    inner: Mutex<Inner>,
}

pub(crate) struct Node {
    pub id: String,
    pub parent_id: String,
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    pub mtime: u64,
    /// `/Movies/a.mp4`, under `data_dir`.
    pub rel_path: String,
    /// What listings say instead of `size`, when a test set it ([`PikPakSim::disguise`]).
    pub listed_size: Option<Value>,
    /// `hash` as listed: the GCID of uploaded content; for files found in the data dir or made
    /// by offline tasks, a stand-in fixed when the node is made (hashing a large tree up front
    /// would be slow). It does not change on rename or move.
    pub hash: String,
    /// The content's real GCID once known: uploads, and scanned files of a size an init asked
    /// about (computed then, for instant uploads).
    pub gcid: Option<String>,
    /// `PHASE_TYPE_COMPLETE`; false while an upload waits for its bytes or its completion.
    pub complete: bool,
    /// When the object store got the whole object; the file turns complete once the
    /// `completion_delay_ms` knob (as it is then) has passed since.
    pub stored_at: Option<Instant>,
    /// In the trash (this node itself; its descendants are hidden with it).
    pub trashed: bool,
    pub delete_time: u64,
}

impl Node {
    /// A complete node made now; `hash` is the stand-in (files) or empty (folders).
    pub(crate) fn new(id: String, parent_id: String, name: String, is_dir: bool, size: u64, rel_path: String) -> Self {
        let hash = if is_dir {
            String::new()
        } else {
            md5_hex(format!("{rel_path}:{size}").as_bytes()).to_uppercase() + "00000000"
        };
        Node {
            id,
            parent_id,
            name,
            is_dir,
            size,
            mtime: unix_now(),
            rel_path,
            listed_size: None,
            hash,
            gcid: None,
            complete: true,
            stored_at: None,
            trashed: false,
            delete_time: 0,
        }
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    pub(crate) fn phase(&self) -> &'static str {
        if self.is_complete() { "PHASE_TYPE_COMPLETE" } else { "PHASE_TYPE_PENDING" }
    }
}

pub(crate) struct CaptchaRec {
    pub device_id: String,
    pub action: String,
    pub expires: Instant,
}

pub(crate) struct TaskRec {
    pub id: String,
    pub name: String,
    pub url: String,
    pub parent_id: String,
    pub file_id: String,
    pub created: Instant,
    pub created_unix: u64,
    pub done: bool,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub nodes: BTreeMap<String, Node>,
    pub captchas: HashMap<String, CaptchaRec>,
    pub access: HashMap<String, Instant>,
    pub refresh: HashSet<String>,
    pub tasks: Vec<TaskRec>,
    /// Batch (move, trash, ...) and upload tasks, by id.
    pub ops: HashMap<String, mutate::OpTask>,
    /// Uploads waiting for (or holding) their object, by object key.
    pub uploads: HashMap<String, upload::Upload>,
    pub seq: u64,
}

/// Size of a file materialised by a finished offline task.
pub const OFFLINE_FILE_SIZE: u64 = 100_000;

impl PikPakSim {
    pub fn new(base_url: String, link_secret: String, data_dir: &Path, secrets: Arc<super::Secrets>) -> Self {
        let mut inner = Inner::default();
        scan(data_dir, data_dir, "", &mut inner.nodes);
        PikPakSim {
            base_url,
            link_secret,
            data_dir: data_dir.to_path_buf(),
            staging: crate::sim::store::Staging::new(data_dir, "pikpak-sim-uploads"),
            knobs: Mutex::new(PikPakKnobs::default()),
            counters: Counters::default(),
            secrets,
            inner: Mutex::new(inner),
        }
    }

    pub fn knobs(&self) -> PikPakKnobs {
        self.knobs.lock().unwrap().clone()
    }

    /// Change some settings, e.g. `sim.pikpak.update(|k| k.page_size = 3)`.
    pub fn update(&self, f: impl FnOnce(&mut PikPakKnobs)) {
        f(&mut self.knobs.lock().unwrap());
    }

    pub fn set_knobs(&self, k: PikPakKnobs) {
        *self.knobs.lock().unwrap() = k;
    }

    /// A fresh valid refresh token for the account, as if the user had copied one from a
    /// browser session.
    pub fn issue_refresh_token(&self) -> String {
        let token = format!("os.{:032x}", rand::random::<u128>());
        self.secrets.record(&token);
        self.inner.lock().unwrap().refresh.insert(token.clone());
        token
    }

    /// End every access token now, ahead of its `expires_in` (as the service may): the next
    /// drive call with one is answered 401.
    pub fn expire_access_tokens(&self) {
        self.lock().access.clear();
    }

    /// Spend every refresh token, as another process refreshing with the same token would:
    /// the next refresh with one is refused with `invalid_grant`.
    pub fn spend_refresh_tokens(&self) {
        self.lock().refresh.clear();
    }

    /// Whether `token` is a live refresh token: issued and not spent yet.
    pub fn refresh_token_is_live(&self, token: &str) -> bool {
        self.lock().refresh.contains(token)
    }

    /// The id of the node at `rel_path` (`/Movies`), `""` for the root.
    pub fn id_of(&self, rel_path: &str) -> Option<String> {
        if rel_path.trim_matches('/').is_empty() {
            return Some(String::new());
        }
        self.inner.lock().unwrap().nodes.values().find(|n| n.rel_path == rel_path).map(|n| n.id.clone())
    }

    /// List the node at `rel_path` under `name`, and with `size` (any JSON) instead of its
    /// size when given; its bytes stay those of the file on disk. For the tests of what a real
    /// drive may hold: names a directory cannot (`a/b`, `..`, empty, two equal in a folder) and
    /// absurd sizes.
    pub fn disguise(&self, rel_path: &str, name: &str, size: Option<Value>) {
        let mut inner = self.lock();
        let node = inner.nodes.values_mut().find(|n| n.rel_path == rel_path).expect("no such node in the simulator");
        node.name = name.to_string();
        node.listed_size = size;
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take one request out of the rate-limit burst.
    pub(crate) fn rate_limited(&self) -> bool {
        let mut k = self.knobs.lock().unwrap();
        if k.rate_limit_burst == 0 {
            return false;
        }
        k.rate_limit_burst -= 1;
        Counters::bump(&self.counters.rate_limited);
        true
    }

    /// A signed CDN URL for `rel_path` with PikPak's `expire`, plus `fid` (rclone matches media
    /// links on it) and `f` (the size).
    pub(crate) fn cdn_link(&self, rel_path: &str, fid: &str, size: u64, expire: u64) -> String {
        let url = super::cdn::provider_link(&self.base_url, &self.link_secret, rel_path, expire, None);
        self.secrets.record_param(&url, "sim_sig");
        format!("{url}&fid={fid}&f={size}")
    }

    /// Complete offline tasks whose delay has passed: write their file and add it to the tree.
    pub(crate) fn settle_tasks(&self) {
        let delay = std::time::Duration::from_millis(self.knobs().offline_delay_ms);
        let mut inner = self.lock();
        let due: Vec<usize> = inner
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.done && t.created.elapsed() >= delay)
            .map(|(i, _)| i)
            .collect();
        for i in due {
            let (parent_id, name, file_id) = {
                let t = &inner.tasks[i];
                (t.parent_id.clone(), t.name.clone(), t.file_id.clone())
            };
            let parent_rel = inner.nodes.get(&parent_id).map(|n| n.rel_path.clone()).unwrap_or_default();
            let rel_path = format!("{parent_rel}/{name}");
            let disk = self.data_dir.join(rel_path.trim_start_matches('/'));
            if std::fs::write(&disk, super::sample::content(&rel_path, OFFLINE_FILE_SIZE)).is_err() {
                continue;
            }
            inner
                .nodes
                .insert(file_id.clone(), Node::new(file_id, parent_id, name, false, OFFLINE_FILE_SIZE, rel_path));
            inner.tasks[i].done = true;
        }
    }
}

/// Walk `dir` into nodes with ids derived from the relative path (stable across runs).
fn scan(root: &Path, dir: &Path, parent_id: &str, nodes: &mut BTreeMap<String, Node>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let rel = path.strip_prefix(root).map(|p| format!("/{}", p.to_string_lossy())).unwrap_or_default();
        let is_dir = meta.is_dir();
        let id = node_id(is_dir, &rel);
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
        let name = entry.file_name().to_string_lossy().into_owned();
        let size = if is_dir { 0 } else { meta.len() };
        let mut node = Node::new(id.clone(), parent_id.to_owned(), name, is_dir, size, rel);
        node.mtime = mtime;
        nodes.insert(id.clone(), node);
        if is_dir {
            scan(root, &path, &id, nodes);
        }
    }
}

/// 26 characters, like PikPak's: `VFold`/`VFile` + 21 hex characters of md5(path).
pub(crate) fn node_id(is_dir: bool, rel: &str) -> String {
    let hex = md5_hex(rel.as_bytes());
    format!("{}{}", if is_dir { "VFold" } else { "VFile" }, &hex[..21])
}

pub(crate) fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3339 with milliseconds and the +08:00 offset real PikPak answers use (§2.3).
pub(crate) fn time(unix: u64) -> String {
    let t = unix as i64 + 8 * 3600;
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = crate::time::civil_from_days(t.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000+08:00", secs / 3600, secs % 3600 / 60, secs % 60)
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(crate) fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

pub(crate) fn reply(status: StatusCode, value: Value) -> Response {
    let mut res = Response::new(Body::from(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    res
}

pub(crate) fn ok(value: Value) -> Response {
    reply(StatusCode::OK, value)
}

/// §2.4 / §13.9: every error is non-2xx JSON with the envelope.
pub(crate) fn error(status: StatusCode, error: &str, code: i64, description: &str) -> Response {
    reply(
        status,
        json!({ "error": error, "error_code": code, "error_url": "", "error_description": description, "details": [] }),
    )
}

pub(crate) fn header_str(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// §2.2: JSON, or form-encoded, whatever the Content-Type says (PikPakAPI sends JSON under a
/// form header); an unparsable body is an empty object.
pub(crate) fn body_fields(body: &Bytes) -> Value {
    if let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(body) {
        return v;
    }
    let map: serde_json::Map<String, Value> =
        url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect();
    Value::Object(map)
}

pub(crate) fn field(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

/// The routes, with their own state; merged into the simulator's router by `sim::start`.
pub fn router(sim: Arc<PikPakSim>) -> Router {
    Router::new()
        .route("/v1/shield/captcha/init", post(auth::captcha_init))
        .route("/v1/auth/signin", post(auth::signin))
        .route("/v1/auth/token", post(auth::token))
        .route("/v1/user/me", get(auth::me))
        .route("/drive/v1/files", get(drive::list).post(drive::create))
        .route("/drive/v1/files/{id}", get(drive::detail).patch(mutate::rename))
        .route("/drive/v1/files:batchMove", post(mutate::batch))
        .route("/drive/v1/files:batchTrash", post(mutate::batch))
        .route("/drive/v1/files:batchUntrash", post(mutate::batch))
        .route("/drive/v1/files:batchDelete", post(mutate::batch))
        .route("/drive/v1/about", get(drive::about))
        .route("/drive/v1/tasks", get(drive::tasks).delete(drive::delete_tasks))
        .route("/drive/v1/tasks/{id}", get(drive::task))
        .route("/drive/v1/share", get(share::open))
        .route("/drive/v1/share/detail", get(share::detail))
        .route("/drive/v1/share/file_info", get(share::file_info))
        .route(&format!("/{}/{{*key}}", upload::BUCKET), any(objects::handle))
        .route("/_sim/pikpak/knobs", get(knobs::get_knobs).put(knobs::put_knobs))
        .route("/_sim/pikpak/counters", get(knobs::get_counters))
        .with_state(sim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(time(1_655_856_207), "2022-06-22T08:03:27.000+08:00");
        assert_eq!(b64url(b"{\"sub\":\"x\"}"), "eyJzdWIiOiJ4In0");
        assert_eq!(b64url(b"ab"), "YWI");
        assert_eq!(node_id(true, "/Movies").len(), 26);
        assert_eq!(body_fields(&Bytes::from("grant_type=refresh_token&refresh_token=os.1"))["refresh_token"], "os.1");
        assert_eq!(body_fields(&Bytes::from(r#"{"a":"b"}"#))["a"], "b");
    }
}
