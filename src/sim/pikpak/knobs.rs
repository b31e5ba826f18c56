//! Settings and counters of the simulated PikPak. Tests change settings at run time through
//! `SimHandle::pikpak.update(..)` (or `PUT /_sim/pikpak/knobs`) and read counters to assert
//! what the client did ("no password signin after the restart", "the captcha was re-minted").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{PikPakSim, ok, reply};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PikPakKnobs {
    /// The one account.
    pub username: String,
    pub password: String,
    pub user_id: String,
    /// Access-token lifetime (`expires_in`).
    pub access_ttl_secs: u64,
    /// Captcha-token lifetime.
    pub captcha_ttl_secs: u64,
    /// Drive and share calls need a valid captcha token (§13.6).
    pub require_captcha: bool,
    /// A captcha token is only good for the action it was minted for.
    pub strict_captcha_action: bool,
    /// Check `meta.captcha_sign` with §4.4 and this simulator's salt table.
    pub check_captcha_sign: bool,
    /// Login captcha inits answer with a human-check `url` (§4.5).
    pub captcha_wall: bool,
    /// The next N user/drive/share calls are refused as "too frequent".
    pub rate_limit_burst: u32,
    /// Lifetime of download links (the URL's `expire`).
    pub link_ttl_secs: u64,
    /// `medias` carry a transcode of a different size: first in the personal detail (what an
    /// old rclone took blindly), second in share file_info.
    pub transcode: bool,
    /// Largest page the listing endpoints return, whatever `limit` says.
    pub page_size: usize,
    pub share_id: String,
    /// "" = a public share.
    pub share_password: String,
    /// `OK`, or a status every share call answers (`DELETED`, `EXPIRED`, ...).
    pub share_status: String,
    /// Share file_info fills `web_content_link` (before 2024) instead of leaving it "".
    pub share_web_content_link: bool,
    /// How long an offline task runs before it completes and its file appears.
    pub offline_delay_ms: u64,
    /// `quota.limit` of `about`; an upload init larger than limit − usage is refused (code 8).
    pub quota_limit: u64,
    /// Object-store body throughput, bytes per second per request (None: as fast as it comes).
    pub store_bytes_per_sec: Option<u64>,
    /// The next N object and part PUTs fail as `put_fault` says.
    pub put_fault_count: u32,
    pub put_fault: PutFault,
    /// The next N upload inits are answered HTTP 429.
    pub init_429_count: u32,
    /// Upload credentials expire this long after init (the real ones: 12 h, §8.7).
    pub upload_creds_ttl_secs: u64,
    /// Time between the last byte reaching the object store and the file turning COMPLETE.
    /// Read when checked, so lowering it releases the files waiting.
    pub completion_delay_ms: u64,
    /// Time before a batchMove/batchTrash/batchUntrash/batchDelete task completes; the change
    /// lands when it does. Read when checked, like `completion_delay_ms`.
    pub batch_task_delay_ms: u64,
}

/// How a faulty object-store PUT fails (knob `put_fault`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PutFault {
    /// 403 `SignatureDoesNotMatch`, after the body was read.
    #[default]
    Forbidden,
    /// 500 `InternalError`, after the body was read.
    ServerError,
    /// The connection closed without an answer, halfway through the body.
    Reset,
}

impl Default for PikPakKnobs {
    fn default() -> Self {
        PikPakKnobs {
            username: "alice@example.com".into(),
            password: "secret".into(),
            user_id: "YRdkHHI8ZU8Ap0ER".into(),
            access_ttl_secs: 7200,
            captcha_ttl_secs: 300,
            require_captcha: true,
            strict_captcha_action: false,
            check_captcha_sign: true,
            captcha_wall: false,
            rate_limit_burst: 0,
            link_ttl_secs: 16 * 3600,
            transcode: false,
            page_size: 100,
            share_id: "VSh4re000000000000000000g7".into(),
            share_password: String::new(),
            share_status: "OK".into(),
            share_web_content_link: false,
            offline_delay_ms: 300,
            quota_limit: 6 << 30,
            store_bytes_per_sec: None,
            put_fault_count: 0,
            put_fault: PutFault::Forbidden,
            init_429_count: 0,
            upload_creds_ttl_secs: 12 * 3600,
            completion_delay_ms: 0,
            batch_task_delay_ms: 0,
        }
    }
}

/// What the simulated service saw.
#[derive(Debug, Default)]
pub struct Counters {
    pub captcha_inits: AtomicU64,
    /// Successful password signins.
    pub signins: AtomicU64,
    pub signin_refused: AtomicU64,
    /// Successful refreshes (each rotated the token).
    pub refreshes: AtomicU64,
    /// Refreshes refused with invalid_grant (a spent or unknown token).
    pub refresh_refused: AtomicU64,
    /// Drive calls answered 401 (expired or unknown access token).
    pub unauthenticated: AtomicU64,
    /// Drive/share calls answered code 9 (missing, expired or foreign captcha token).
    pub captcha_refused: AtomicU64,
    pub rate_limited: AtomicU64,
    pub list_pages: AtomicU64,
    pub details: AtomicU64,
    /// Quota calls (`/drive/v1/about`) that reached the drive API.
    pub abouts: AtomicU64,
    pub share_opens: AtomicU64,
    /// Upload inits that created a file (instant or pending).
    pub upload_inits: AtomicU64,
    /// Inits answered with a complete file at once (known GCID, or size 0).
    pub instant_uploads: AtomicU64,
    /// Body bytes the object store received (every PUT and POST, refused ones included).
    pub store_body_bytes: AtomicU64,
    pub single_puts: AtomicU64,
    pub part_puts: AtomicU64,
    pub completes: AtomicU64,
    pub aborts: AtomicU64,
    /// 403s the object store sent (bad signature, key, token, expiry, and the fault knob).
    pub store_403s: AtomicU64,
    pub mkdirs: AtomicU64,
    pub renames: AtomicU64,
    pub batch_moves: AtomicU64,
    pub batch_trashes: AtomicU64,
    pub batch_untrashes: AtomicU64,
    /// Permanent deletes: the driver must never call it (tests assert 0).
    pub batch_deletes: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> serde_json::Value {
        let g = Self::get;
        json!({
            "captcha_inits": g(&self.captcha_inits), "signins": g(&self.signins),
            "signin_refused": g(&self.signin_refused), "refreshes": g(&self.refreshes),
            "refresh_refused": g(&self.refresh_refused), "unauthenticated": g(&self.unauthenticated),
            "captcha_refused": g(&self.captcha_refused), "rate_limited": g(&self.rate_limited),
            "list_pages": g(&self.list_pages), "details": g(&self.details), "abouts": g(&self.abouts),
            "share_opens": g(&self.share_opens), "upload_inits": g(&self.upload_inits),
            "instant_uploads": g(&self.instant_uploads), "store_body_bytes": g(&self.store_body_bytes),
            "single_puts": g(&self.single_puts), "part_puts": g(&self.part_puts), "completes": g(&self.completes),
            "aborts": g(&self.aborts), "store_403s": g(&self.store_403s), "mkdirs": g(&self.mkdirs),
            "renames": g(&self.renames), "batch_moves": g(&self.batch_moves),
            "batch_trashes": g(&self.batch_trashes), "batch_untrashes": g(&self.batch_untrashes),
            "batch_deletes": g(&self.batch_deletes),
        })
    }
}

pub(super) async fn get_knobs(State(st): State<Arc<PikPakSim>>) -> Response {
    ok(serde_json::to_value(st.knobs()).unwrap_or_default())
}

pub(super) async fn put_knobs(State(st): State<Arc<PikPakSim>>, body: Bytes) -> Response {
    match serde_json::from_slice::<PikPakKnobs>(&body) {
        Ok(k) => {
            st.set_knobs(k);
            ok(serde_json::to_value(st.knobs()).unwrap_or_default())
        }
        Err(e) => reply(StatusCode::BAD_REQUEST, json!({ "error": e.to_string() })),
    }
}

pub(super) async fn get_counters(State(st): State<Arc<PikPakSim>>) -> Response {
    ok(st.counters.snapshot())
}
