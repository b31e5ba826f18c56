//! A small S3-compatible object store, path style under `/s3/<bucket>/<key>`, for the write
//! benchmark's rclone row (`rclone mount` of an `s3` remote with `--s3-provider Other
//! --s3-endpoint http://HOST:PORT/s3 --s3-force-path-style true`). It speaks what rclone uses:
//! ListBuckets, CreateBucket/HeadBucket/DeleteBucket, ListObjects V1 and V2 (`prefix`,
//! `delimiter`, paging, `encoding-type=url`), HeadObject, GetObject (one `Range`), PutObject,
//! CopyObject (rclone's server-side move and mtime change), DeleteObject, and multipart
//! uploads (create, part, complete, abort).
//!
//! Signatures are not checked (any access key works): the benchmark compares the transfer of
//! the bytes, and the mounters' own providers are checked by their own simulators. What an
//! upload costs on the wire is the same as on PikPak's simulated OSS: every PUT body goes
//! through [`crate::sim::store::receive`] with this store's `store_bytes_per_sec` knob (the
//! per-request throttle) and is counted in `body_bytes`. GET bodies are not paced: the store is
//! there to be written to.
//!
//! Objects are files in a staging directory next to the data dir (1 GiB objects stay off the
//! heap). A multipart object keeps its parts' files as its segments, in order, instead of
//! joining them: completion costs no copy (rclone's time to a stored object is not charged
//! with the simulator's disk), and a read walks the segments. Aws-chunked bodies (signed
//! streaming uploads) are not decoded: rclone sends plain bodies to this endpoint.
//!
//! Files: `objects` (the request handlers), `list` (ListObjects paging). Knobs and counters:
//! `PUT`/`GET /_sim/s3/knobs`, `GET /_sim/s3/counters`.

// Checks return the HTTP answer to send as their error; its size does not matter here.
#![allow(clippy::result_large_err)]

mod list;
mod objects;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{any, get};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::sim::store::Staging;

/// The path prefix of the store: the endpoint rclone is given is `<base>/s3`.
pub const PREFIX: &str = "/s3";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Knobs {
    /// PUT body throughput, bytes per second per request (None: as fast as it comes).
    pub store_bytes_per_sec: Option<u64>,
}

/// What the store saw. Never reset: readers take differences.
#[derive(Debug, Default)]
pub struct S3Counters {
    /// Every request under `/s3`.
    pub requests: AtomicU64,
    /// PUT body bytes received (objects and parts).
    pub body_bytes: AtomicU64,
    pub object_puts: AtomicU64,
    pub part_puts: AtomicU64,
    pub completes: AtomicU64,
    pub copies: AtomicU64,
    pub deletes: AtomicU64,
    pub lists: AtomicU64,
}

impl S3Counters {
    pub fn snapshot(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "requests": g(&self.requests), "body_bytes": g(&self.body_bytes),
            "object_puts": g(&self.object_puts), "part_puts": g(&self.part_puts),
            "completes": g(&self.completes), "copies": g(&self.copies), "deletes": g(&self.deletes),
            "lists": g(&self.lists),
        })
    }

    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// A run of an object's bytes: one file of the staging directory.
#[derive(Debug, Clone)]
struct Segment {
    path: PathBuf,
    size: u64,
}

#[derive(Debug)]
struct Object {
    segments: Vec<Segment>,
    size: u64,
    /// Quoted on the wire: the MD5 in hex, or for a multipart object the MD5 of the parts'
    /// MD5s and `-<parts>`.
    etag: String,
    modified: u64,
    /// `Content-Type` and the `x-amz-meta-*` headers, as sent (rclone keeps mtimes there).
    meta: Vec<(String, String)>,
}

struct Multipart {
    bucket: String,
    key: String,
    meta: Vec<(String, String)>,
    /// Part number → (segment, MD5).
    parts: BTreeMap<u32, (Segment, Vec<u8>)>,
}

#[derive(Default)]
struct Inner {
    /// Bucket → key → object.
    buckets: BTreeMap<String, BTreeMap<String, Object>>,
    uploads: HashMap<String, Multipart>,
}

/// The simulated store. Reached through `SimHandle::s3`.
pub struct S3Sim {
    staging: Staging,
    knobs: Mutex<S3Knobs>,
    pub counters: S3Counters,
    inner: Mutex<Inner>,
}

impl S3Sim {
    /// Objects are kept next to `data_dir` (see [`Staging`]).
    pub fn new(data_dir: &Path) -> Self {
        S3Sim {
            staging: Staging::new(data_dir, "s3-sim-objects"),
            knobs: Mutex::default(),
            counters: S3Counters::default(),
            inner: Mutex::default(),
        }
    }

    pub fn knobs(&self) -> S3Knobs {
        self.knobs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut S3Knobs)) {
        f(&mut self.knobs.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Delete the files of segments no object holds any more.
fn remove_segments<'a>(segments: impl IntoIterator<Item = &'a Segment>) {
    for s in segments {
        let _ = std::fs::remove_file(&s.path);
    }
}

/// The routes, with their own state; merged into the simulator's router by `sim::start`.
pub fn router(sim: Arc<S3Sim>) -> Router {
    Router::new()
        .route(PREFIX, any(objects::handle))
        .route(&format!("{PREFIX}/"), any(objects::handle))
        .route(&format!("{PREFIX}/{{*path}}"), any(objects::handle))
        .route("/_sim/s3/knobs", get(get_knobs).put(put_knobs))
        .route("/_sim/s3/counters", get(get_counters))
        .with_state(sim)
}

async fn get_knobs(State(st): State<Arc<S3Sim>>) -> Response {
    json_reply(StatusCode::OK, serde_json::to_value(st.knobs()).unwrap_or_default())
}

async fn put_knobs(State(st): State<Arc<S3Sim>>, body: Bytes) -> Response {
    match serde_json::from_slice::<S3Knobs>(&body) {
        Ok(k) => {
            st.update(|old| *old = k);
            json_reply(StatusCode::OK, serde_json::to_value(st.knobs()).unwrap_or_default())
        }
        Err(e) => json_reply(StatusCode::BAD_REQUEST, json!({ "error": e.to_string() })),
    }
}

async fn get_counters(State(st): State<Arc<S3Sim>>) -> Response {
    json_reply(StatusCode::OK, st.counters.snapshot())
}

fn json_reply(status: StatusCode, value: serde_json::Value) -> Response {
    let mut res = Response::new(Body::from(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn xml(status: StatusCode, body: String) -> Response {
    let mut res = Response::new(Body::from(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}")));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    res
}

fn xml_error(status: StatusCode, code: &str, message: &str) -> Response {
    xml(status, format!("<Error><Code>{code}</Code><Message>{}</Message></Error>", escape(message)))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `2026-12-07T01:02:03.000Z`, as listings and CopyObject answer.
fn iso_time(unix: u64) -> String {
    let (y, m, d) = crate::time::civil_from_days((unix / 86_400) as i64);
    let s = unix % 86_400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z", s / 3600, s / 60 % 60, s % 60)
}
