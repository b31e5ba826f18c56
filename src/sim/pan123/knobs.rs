//! Settings and counters of the simulated 123pan. Tests change settings through
//! `sim.pan123.update(..)`, the benchmark through `PUT /_sim/pan123/knobs` (a JSON object;
//! missing fields take their defaults), and read `GET /_sim/pan123/counters`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use crate::sim::pikpak::PutFault;

use super::Pan123Sim;
use super::routes::reply;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFault {
    /// Code 7012, the overseas-login risk that wants an SMS login.
    AbroadRisk,
    /// "当前登录操作频繁，请稍后再试".
    TooFrequent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    /// `SliceSize` of upload_request answers (a string on the wire).
    pub slice_size: u64,
    /// `duplicate:2` on upload replaces a same-name file (the old one goes to the trash);
    /// when false it keeps both, as `duplicate:1` does.
    pub honor_overwrite: bool,
    /// Refuse 0-byte uploads (users report the service does); when false they are instant.
    pub refuse_empty: bool,
    /// Account space (`SpacePermanent`); an upload_request larger than what is left is refused.
    pub quota_limit: u64,
    /// Lifetime of presigned part URLs.
    pub presign_ttl_secs: u64,
    /// Part PUT body throughput, bytes per second per request (None: as fast as it comes).
    pub store_bytes_per_sec: Option<u64>,
    /// The next N part PUTs fail as `put_fault` says.
    pub put_fault_count: u32,
    pub put_fault: PutFault,
    /// upload_complete/v2 creates the file under a FileId other than upload_request's (RC saw
    /// that on the real service).
    pub new_id_on_complete: bool,
    /// Instant uploads answer `FileId: 0` (as RC saw) instead of the new file's id.
    pub reuse_file_id_zero: bool,
    /// upload_complete/v2 waits this long before it answers.
    pub completion_delay_ms: u64,
    /// The next PUT of this part number is refused as expired (then the knob clears): a URL
    /// that runs out in the middle of an upload.
    pub expire_part: Option<u32>,
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
            slice_size: 16 << 20,
            honor_overwrite: true,
            refuse_empty: true,
            quota_limit: 2 << 40,
            presign_ttl_secs: 3600,
            store_bytes_per_sec: None,
            put_fault_count: 0,
            put_fault: PutFault::Forbidden,
            new_id_on_complete: false,
            reuse_file_id_zero: false,
            completion_delay_ms: 0,
            expire_part: None,
        }
    }
}

/// Declares the counters once, for the struct and its JSON snapshot.
macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// What the simulated API did, for assertions.
        #[derive(Debug, Default)]
        pub struct Pan123Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl Pan123Counters {
            /// Every counter by name, as `GET /_sim/pan123/counters` answers.
            pub fn snapshot(&self) -> Value {
                let mut map = serde_json::Map::new();
                $(map.insert(stringify!($name).into(), json!(Self::get(&self.$name)));)*
                Value::Object(map)
            }
        }
    };
}

counters! {
    logins,
    login_refused,
    unauthorized,
    signature_refused,
    list_calls,
    share_list_calls,
    rate_limited,
    download_info,
    hops,
    share_password_refused,
    share_calls_with_token,
    injected,
    /// Smallest gap seen between two consecutive calls of one list endpoint (ms; u64::MAX
    /// until two calls were seen).
    min_list_gap_ms,
    /// `upload_request` calls with `type:0` (files), refused ones included.
    upload_requests,
    /// Uploads answered `Reuse:true` (known MD5 and size, or an allowed empty file).
    instant_uploads,
    /// Calls of `s3_upload_object/auth` and `s3_repare_upload_parts_batch`.
    presign_calls,
    /// Part PUTs received, refused ones included.
    part_puts,
    /// Part PUT body bytes received, refused ones included.
    part_bytes,
    /// Part PUTs answered 403 (expired, bad signature, an `Authorization` header, the fault).
    part_403s,
    /// `upload_complete/v2` calls that created a file.
    completes,
    mkdirs,
    renames,
    moves,
    /// Items put in the trash (by `file/trash` or replaced by an upload).
    trashes,
    /// Items taken back out of the trash.
    restores,
}

impl Pan123Counters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub(super) async fn get_knobs(State(sim): State<Arc<Pan123Sim>>) -> Response {
    reply(StatusCode::OK, serde_json::to_value(sim.knobs()).unwrap_or_default())
}

pub(super) async fn put_knobs(State(sim): State<Arc<Pan123Sim>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Pan123Knobs>(&body) {
        Ok(k) => {
            sim.update(|old| *old = k);
            reply(StatusCode::OK, serde_json::to_value(sim.knobs()).unwrap_or_default())
        }
        Err(e) => reply(StatusCode::BAD_REQUEST, json!({ "error": e.to_string() })),
    }
}

pub(super) async fn get_counters(State(sim): State<Arc<Pan123Sim>>) -> Response {
    reply(StatusCode::OK, sim.counters.snapshot())
}
