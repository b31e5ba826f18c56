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
//!
//! Answers are `serde_json::json!` literals shaped from the reference, never the driver's
//! structs.

mod routes;
pub mod tree;
pub mod verify;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;

pub use tree::UID;

/// The simulated account (phone form) and its password; the e-mail form works too.
pub const PHONE: &str = "13800138000";
pub const MAIL: &str = "tester@example.com";
pub const PASSWORD: &str = "sim-password";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFault {
    /// Code 7012, the overseas-login risk that wants an SMS login.
    AbroadRisk,
    /// "当前登录操作频繁，请稍后再试".
    TooFrequent,
}

#[derive(Debug, Clone)]
pub struct Pan123Knobs {
    pub strict_signature: bool,
    pub skew_window_secs: i64,
    pub clock_offset_secs: i64,
    pub signature_error_code: i64,
    pub require_platform: bool,
    pub token_ttl_secs: Option<f64>,
    pub page_size: usize,
    /// 0 disables the list rate limit.
    pub list_interval_ms: u64,
    pub hop_json: bool,
    pub traffic_exhausted: bool,
    pub login_fault: Option<LoginFault>,
    pub link_ttl_secs: u64,
    pub inject_code: i64,
    pub inject_count: u32,
}

impl Default for Pan123Knobs {
    fn default() -> Self {
        Pan123Knobs {
            strict_signature: true,
            skew_window_secs: 600,
            clock_offset_secs: 0,
            signature_error_code: 1,
            require_platform: true,
            token_ttl_secs: None,
            page_size: 100,
            list_interval_ms: 700,
            hop_json: false,
            traffic_exhausted: false,
            login_fault: None,
            link_ttl_secs: 3600,
            inject_code: 0,
            inject_count: 0,
        }
    }
}

/// What the simulated API did, for assertions.
#[derive(Debug, Default)]
pub struct Pan123Counters {
    pub logins: AtomicU64,
    pub login_refused: AtomicU64,
    pub unauthorized: AtomicU64,
    pub signature_refused: AtomicU64,
    pub list_calls: AtomicU64,
    pub share_list_calls: AtomicU64,
    pub rate_limited: AtomicU64,
    pub download_info: AtomicU64,
    pub hops: AtomicU64,
    pub share_password_refused: AtomicU64,
    pub share_calls_with_token: AtomicU64,
    pub injected: AtomicU64,
    /// Smallest gap seen between two consecutive calls of one list endpoint (ms; u64::MAX
    /// until two calls were seen).
    pub min_list_gap_ms: AtomicU64,
}

impl Pan123Counters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

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
}

impl Pan123Sim {
    pub fn new(data_dir: PathBuf, base_url: String, link_secret: String, secrets: Arc<crate::sim::Secrets>) -> Self {
        let counters = Pan123Counters::default();
        counters.min_list_gap_ms.store(u64::MAX, Ordering::Relaxed);
        let accounts = [(PHONE.to_string(), PASSWORD.to_string()), (MAIL.to_string(), PASSWORD.to_string())];
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
}

/// The routes, to be merged into the simulator's router.
pub fn router(sim: Arc<Pan123Sim>) -> Router {
    routes::router(sim)
}
