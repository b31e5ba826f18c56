//! The simulated CDN: a static file server for `data_dir` under `/cdn/{path}`.
//!
//! It is the far end of every download in the tests, so it is strict where a real CDN is strict
//! and faulty where the knobs say so:
//! - `GET`/`HEAD`, one byte range per request (see [`super::range`]): 206 with `Content-Range`,
//!   200 for no (or an ignored, e.g. multi-range) `Range`, 416 with `Content-Range: bytes */size`
//!   for a start at or past the end. Always `Accept-Ranges`, `Content-Length`, `Last-Modified`.
//! - With `CdnAuth`, the 123pan direct-link `auth_key` check ([`super::auth_key`]); only the
//!   first `auth_key` parameter counts, other parameters are ignored. Any failure is 403, and so
//!   is a `..` path segment. Missing files and directories are 404.
//! - Order of checks: first-byte delay, error burst, auth, link TTL, path, range.
//! - Bodies are streamed from the file in 64 KiB reads, never loaded whole; throughput pacing,
//!   stalls, connection resets and the shutdown signal act between chunks. `body_fault_count`
//!   limits the body faults to the next N bodies.
//!
//! - A `GET` of a directory URL ending in `/` answers a simple HTML index of its entries
//!   (see [`dir_index`]), for clients that list folders by parsing HTML (rclone's `http`
//!   backend). Without the trailing `/`, a directory is still 404.
//!
//! - Links minted by the simulated provider APIs ([`provider_link`]) carry `expire`, an
//!   optional required `ref`erer and `sim_sig`; they are checked instead of `auth_key`.
//!
//! Logs carry the path only: the query string holds signatures.

use std::collections::HashMap;
use std::io::{self, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;
use tracing::debug;

use super::CdnAuth;
use super::auth_key::verify_auth_key;
use super::knobs::{KnobValues, Knobs, Stats};
use super::range::{RangeSpec, http_date, parse_range};

/// Read size of the body stream.
const CHUNK: u64 = 64 * 1024;
/// Largest paced slice under `throughput_bytes_per_sec` (smaller at low rates, so that each
/// pause stays short, about 50 ms).
const PACE_SLICE: u64 = 16 * 1024;
/// Pause before a `reset_after_bytes` abort, so the bytes already produced reach the socket.
const RESET_GRACE: Duration = Duration::from_millis(20);
/// Forget first-seen times of links beyond this many (the map only grows in long benchmarks).
const MAX_SEEN: usize = 100_000;

/// Characters escaped in a path segment of a CDN URL: everything but RFC 3986 unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The URL path (`/cdn/...`, percent-encoded) of a file at `rel_path` (`/a/b.mp4`) in `data_dir`.
pub fn cdn_path(rel_path: &str) -> String {
    let mut out = String::from("/cdn");
    for seg in rel_path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.extend(utf8_percent_encode(seg, SEGMENT));
    }
    out
}

/// A CDN URL for a file as a simulated provider API hands it out: `expire` (Unix seconds, as
/// PikPak's links carry), optionally a Referer the CDN will insist on (as 123pan's do), and a
/// signature over both so that a client cannot stretch either.
pub fn provider_link(base_url: &str, secret: &str, rel_path: &str, expire: u64, referer: Option<&str>) -> String {
    let path = cdn_path(rel_path);
    let decoded = percent_decode_str(&path).decode_utf8_lossy().into_owned();
    let referer = referer.unwrap_or("");
    let sig = provider_sig(secret, &decoded, expire, referer);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("expire", &expire.to_string());
    if !referer.is_empty() {
        query.append_pair("ref", referer);
    }
    query.append_pair("sim_sig", &sig);
    format!("{base_url}{path}?{}", query.finish())
}

fn provider_sig(secret: &str, decoded_path: &str, expire: u64, referer: &str) -> String {
    use md5::{Digest, Md5};
    let digest = Md5::digest(format!("{decoded_path}|{expire}|{referer}|{secret}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn verify_provider_link(
    secret: &str,
    decoded_path: &str,
    expire: Option<&str>,
    required_referer: Option<&str>,
    sig: &str,
    referer: Option<&str>,
    now: u64,
) -> Result<(), &'static str> {
    let expire: u64 = expire.and_then(|e| e.parse().ok()).ok_or("missing or malformed expire")?;
    let required = required_referer.unwrap_or("");
    if provider_sig(secret, decoded_path, expire, required) != sig {
        return Err("signature mismatch");
    }
    if expire < now {
        return Err("link expired");
    }
    if !required.is_empty() && referer != Some(required) {
        return Err("wrong or missing Referer");
    }
    Ok(())
}

/// What the CDN shares between requests.
pub struct CdnState {
    pub data_dir: PathBuf,
    pub auth: Option<CdnAuth>,
    pub knobs: Arc<Knobs>,
    pub stats: Arc<Stats>,
    /// Signs the links the simulated provider APIs hand out (see [`provider_link`]).
    pub link_secret: String,
    /// Where the link signatures received are recorded.
    pub secrets: Arc<super::Secrets>,
    /// Bodies being streamed, per file, for `max_connections_per_file`.
    pub active: Arc<Mutex<HashMap<PathBuf, u32>>>,
    /// When each `auth_key` value was first seen, for `link_ttl_secs`.
    pub first_seen: Mutex<HashMap<String, Instant>>,
    /// Turns true when the simulator shuts down: streams and delays abort.
    pub shutdown: watch::Receiver<bool>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn plain(status: StatusCode, stats: &Stats) -> Response {
    match status {
        StatusCode::FORBIDDEN => Stats::add(&stats.refused_403, 1),
        StatusCode::NOT_FOUND => Stats::add(&stats.not_found, 1),
        _ => {}
    }
    let mut res = Response::new(Body::from(status.canonical_reason().unwrap_or("error")));
    *res.status_mut() = status;
    res
}

/// Sleep `d` unless the simulator shuts down first (then `Err`).
async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> io::Result<()> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = shutdown.wait_for(|v| *v) => Err(io::Error::new(io::ErrorKind::ConnectionAborted, "simulator shutting down")),
    }
}

impl CdnState {
    /// Refuse a link whose `auth_key` was first seen longer than `link_ttl_secs` ago.
    fn ttl_expired(&self, auth_key: &str, knobs: &KnobValues) -> bool {
        let mut seen = self.first_seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_SEEN && !seen.contains_key(auth_key) {
            seen.clear();
        }
        let first = *seen.entry(auth_key.to_owned()).or_insert_with(Instant::now);
        knobs.link_ttl_secs.is_some_and(|ttl| first.elapsed().as_secs_f64() > ttl)
    }
}

/// `GET`/`HEAD /cdn/{*path}`.
pub async fn serve(State(st): State<Arc<CdnState>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let head = method == Method::HEAD;
    Stats::add(&st.stats.requests, 1);
    if head {
        Stats::add(&st.stats.head_requests, 1);
    }
    let knobs = st.knobs.get();
    let res = answer(&st, head, &uri, &headers, &knobs).await;
    debug!(method = %method, path = uri.path(), status = res.status().as_u16(), "sim cdn");
    res
}

async fn answer(st: &CdnState, head: bool, uri: &Uri, headers: &HeaderMap, knobs: &KnobValues) -> Response {
    if knobs.first_byte_delay_ms > 0 {
        let mut shutdown = st.shutdown.clone();
        if pause(Duration::from_millis(knobs.first_byte_delay_ms), &mut shutdown).await.is_err() {
            return plain(StatusCode::SERVICE_UNAVAILABLE, &st.stats);
        }
    }
    if let Some(code) = st.knobs.take_burst() {
        Stats::add(&st.stats.injected_errors, 1);
        let status = StatusCode::from_u16(code)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut res = plain(status, &st.stats);
        if status == StatusCode::TOO_MANY_REQUESTS {
            res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        return res;
    }
    let Ok(decoded) = percent_decode_str(uri.path()).decode_utf8() else {
        return plain(StatusCode::NOT_FOUND, &st.stats);
    };
    let param = |name: &str| {
        uri.query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
        })
    };
    let sim_sig = param("sim_sig");
    // A link minted by a simulated provider API carries its own signature; a 123pan direct
    // link carries `auth_key`. Either one (whichever is present) names the link for the TTL.
    let auth_key = sim_sig.clone().or_else(|| param("auth_key"));
    if let Some(key) = &auth_key {
        st.secrets.record(key);
    }
    if let Some(sig) = &sim_sig {
        let referer = headers.get(header::REFERER).and_then(|v| v.to_str().ok());
        let verdict = verify_provider_link(
            &st.link_secret,
            &decoded,
            param("expire").as_deref(),
            param("ref").as_deref(),
            sig,
            referer,
            unix_now(),
        );
        if let Err(reason) = verdict {
            debug!(path = uri.path(), reason, "sim cdn: provider link refused");
            return plain(StatusCode::FORBIDDEN, &st.stats);
        }
    } else if let Some(auth) = &st.auth {
        if let Err(reason) = verify_auth_key(auth, &decoded, auth_key.as_deref(), unix_now()) {
            debug!(path = uri.path(), reason, "sim cdn: auth refused");
            return plain(StatusCode::FORBIDDEN, &st.stats);
        }
    }
    if let Some(key) = &auth_key {
        if st.ttl_expired(key, knobs) {
            debug!(path = uri.path(), "sim cdn: link_ttl_secs passed");
            return plain(StatusCode::FORBIDDEN, &st.stats);
        }
    }
    let rel = decoded.strip_prefix("/cdn/").unwrap_or_default();
    let segments: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| *s == ".." || *s == ".") {
        return plain(StatusCode::FORBIDDEN, &st.stats);
    }
    let path = segments.iter().fold(st.data_dir.clone(), |p, s| p.join(s));
    if uri.path().ends_with('/') {
        if let Ok(m) = tokio::fs::metadata(&path).await {
            if m.is_dir() {
                return dir_index(st, &path, &decoded).await;
            }
        }
    }
    let meta = match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_file() && !segments.is_empty() => m,
        _ => return plain(StatusCode::NOT_FOUND, &st.stats),
    };
    let size = meta.len();
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());

    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let spec = if knobs.ignore_range { RangeSpec::Full } else { parse_range(range, size) };
    let builder = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::LAST_MODIFIED, http_date(mtime))
        .header(header::CONTENT_TYPE, "application/octet-stream");
    let (builder, start, len) = match spec {
        RangeSpec::Unsatisfiable => {
            Stats::add(&st.stats.unsatisfiable_416, 1);
            let res = builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .header(header::CONTENT_LENGTH, 0)
                .body(Body::empty());
            return res.unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, &st.stats));
        }
        RangeSpec::Full => {
            Stats::add(&st.stats.full, 1);
            (builder.status(StatusCode::OK), 0, size)
        }
        RangeSpec::Partial { mut start, mut end } => {
            if knobs.wrong_content_range && size > 1 {
                start = if start + 1 < size { start + 1 } else { start - 1 };
                end = end.max(start);
            }
            Stats::add(&st.stats.ranges, 1);
            let b = builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
            (b, start, end - start + 1)
        }
    };
    let faulty = !head
        && len > 0
        && (knobs.reset_after_bytes.is_some() || knobs.stall_after_bytes.is_some() || knobs.body_length_delta != 0)
        && st.knobs.take_body_fault();
    let (delta, reset_after, stall_after) = match faulty {
        true => (knobs.body_length_delta, knobs.reset_after_bytes, knobs.stall_after_bytes),
        false => (0, None, None),
    };
    if delta != 0 {
        Stats::add(&st.stats.wrong_lengths, 1);
    }
    // A longer body announces its true length; a shorter one goes chunked (see the knob).
    let builder = match delta {
        0 => builder.header(header::CONTENT_LENGTH, len),
        d if d > 0 => builder.header(header::CONTENT_LENGTH, len + d as u64),
        _ => builder,
    };
    let body = if head || len == 0 {
        Body::empty()
    } else {
        let Some(slot) = ConnectionSlot::take(st, &path, knobs.max_connections_per_file) else {
            Stats::add(&st.stats.refused_busy, 1);
            return plain(StatusCode::SERVICE_UNAVAILABLE, &st.stats);
        };
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(_) => return plain(StatusCode::NOT_FOUND, &st.stats),
        };
        if start > 0 && file.seek(SeekFrom::Start(start)).await.is_err() {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, &st.stats);
        }
        let stream = BodyStream {
            file,
            remaining: len.saturating_add_signed(delta.min(0)),
            surplus: delta.max(0) as u64,
            sent: 0,
            started: Instant::now(),
            rate: knobs.throughput_bytes_per_sec.filter(|r| *r > 0),
            reset_after: cut_point(reset_after, knobs.reset_chance, len),
            stall: stall_after.map(|at| (at, Duration::from_millis(knobs.stall_ms))),
            stats: st.stats.clone(),
            shutdown: st.shutdown.clone(),
            _slot: slot,
        };
        Body::from_stream(futures_util::stream::unfold(Some(stream), |s| async move {
            let mut s = s?;
            if s.remaining == 0 && s.surplus == 0 {
                return None;
            }
            match s.next_chunk().await {
                Ok(bytes) => Some((Ok(bytes), Some(s))),
                Err(e) => Some((Err(e), None)),
            }
        }))
    };
    builder.body(body).unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, &st.stats))
}

/// Where a body of `len` bytes is cut: `reset_after_bytes`, or a random point drawn with
/// probability `reset_chance`, whichever comes first.
fn cut_point(reset_after: Option<u64>, reset_chance: f64, len: u64) -> Option<u64> {
    let random = (reset_chance > 0.0 && rand::random::<f64>() < reset_chance).then(|| rand::random_range(0..len));
    match (reset_after, random) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One of a file's concurrent bodies; given back when the body ends or is dropped.
struct ConnectionSlot {
    active: Arc<Mutex<HashMap<PathBuf, u32>>>,
    path: PathBuf,
}

impl ConnectionSlot {
    fn take(st: &CdnState, path: &std::path::Path, limit: Option<u32>) -> Option<ConnectionSlot> {
        let mut active = st.active.lock().unwrap_or_else(|e| e.into_inner());
        let n = active.entry(path.to_path_buf()).or_insert(0);
        if limit.is_some_and(|limit| *n >= limit) {
            return None;
        }
        *n += 1;
        st.stats.peak_connections.fetch_max(u64::from(*n), std::sync::atomic::Ordering::Relaxed);
        Some(ConnectionSlot { active: st.active.clone(), path: path.to_path_buf() })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = active.get_mut(&self.path) {
            *n -= 1;
            if *n == 0 {
                active.remove(&self.path);
            }
        }
    }
}

/// Escape text for HTML element content and attribute values.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The HTML index of a directory (a `GET` of its URL with a trailing `/`), in the shape of a web
/// server's autoindex, for clients that list folders by parsing HTML (rclone's `http` backend):
/// one `<a href="name/">` per folder, then one `<a href="name">` per file, each group sorted by
/// name (bytewise), names percent-encoded like [`cdn_path`] segments. No parent (`../`) link,
/// no sizes (such clients ask each file with `HEAD`). Names that are not UTF-8 are left out.
/// The body is not counted in `bytes_sent`, which counts file bytes only.
async fn dir_index(st: &CdnState, dir: &std::path::Path, decoded_path: &str) -> Response {
    let mut folders = Vec::new();
    let mut files = Vec::new();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(e) => e,
        Err(_) => return plain(StatusCode::NOT_FOUND, &st.stats),
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        match entry.file_type().await {
            Ok(t) if t.is_dir() => folders.push(name),
            Ok(_) => files.push(name),
            Err(_) => {}
        }
    }
    folders.sort();
    files.sort();
    let title = html_escape(decoded_path);
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1>\n<ul>\n"
    );
    let items = folders.iter().map(|n| (n, "/")).chain(files.iter().map(|n| (n, "")));
    for (name, slash) in items {
        let href: String = utf8_percent_encode(name, SEGMENT).collect();
        let text = html_escape(name);
        html.push_str(&format!("<li><a href=\"{href}{slash}\">{text}{slash}</a></li>\n"));
    }
    html.push_str("</ul>\n</body></html>\n");
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CONTENT_LENGTH, html.len())
        .body(Body::from(html))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, &st.stats))
}

/// One response body being read from its file.
struct BodyStream {
    file: tokio::fs::File,
    /// File bytes still to send.
    remaining: u64,
    /// Zero bytes to send after them (`body_length_delta` > 0).
    surplus: u64,
    sent: u64,
    started: Instant,
    rate: Option<u64>,
    reset_after: Option<u64>,
    /// Pause this long once this many bytes are sent (`None` once done).
    stall: Option<(u64, Duration)>,
    stats: Arc<Stats>,
    shutdown: watch::Receiver<bool>,
    _slot: ConnectionSlot,
}

impl BodyStream {
    async fn next_chunk(&mut self) -> io::Result<Bytes> {
        if *self.shutdown.borrow() {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "simulator shutting down"));
        }
        if self.remaining == 0 {
            let n = self.surplus.min(CHUNK);
            self.surplus -= n;
            self.sent += n;
            return Ok(Bytes::from(vec![0u8; n as usize]));
        }
        let mut n = CHUNK.min(self.remaining);
        if let Some((at, pause_for)) = self.stall {
            if self.sent >= at {
                self.stall = None;
                Stats::add(&self.stats.stalls, 1);
                pause(pause_for, &mut self.shutdown).await?;
            } else {
                n = n.min(at - self.sent);
            }
        }
        if let Some(limit) = self.reset_after {
            if self.sent >= limit {
                pause(RESET_GRACE, &mut self.shutdown).await?;
                Stats::add(&self.stats.resets, 1);
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "sim: reset_after_bytes"));
            }
            n = n.min(limit - self.sent);
        }
        if let Some(rate) = self.rate {
            n = n.min((rate / 20).clamp(1, PACE_SLICE));
            let due = self.started + Duration::from_secs_f64((self.sent + n) as f64 / rate as f64);
            let wait = due.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                pause(wait, &mut self.shutdown).await?;
            }
        }
        let mut buf = vec![0u8; n as usize];
        self.file.read_exact(&mut buf).await?;
        self.sent += n;
        self.remaining -= n;
        Stats::add(&self.stats.bytes_sent, n);
        Ok(Bytes::from(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_links_check_signature_expiry_and_referer() {
        let url = provider_link("http://h", "s3", "/a b/c.mp4", 2_000, Some("https://ref/"));
        let uri: Uri = url.trim_start_matches("http://h").parse().unwrap();
        let q: HashMap<String, String> =
            url::form_urlencoded::parse(uri.query().unwrap().as_bytes()).into_owned().collect();
        let path = percent_decode_str(uri.path()).decode_utf8().unwrap();
        let check = |secret: &str, referer: Option<&str>, now: u64| {
            verify_provider_link(
                secret,
                &path,
                q.get("expire").map(|s| s.as_str()),
                q.get("ref").map(|s| s.as_str()),
                &q["sim_sig"],
                referer,
                now,
            )
        };
        assert_eq!(check("s3", Some("https://ref/"), 1_999), Ok(()));
        assert!(check("s3", Some("https://ref/"), 2_001).is_err());
        assert!(check("s3", None, 1_000).is_err());
        assert!(check("other", Some("https://ref/"), 1_000).is_err());
    }

    #[test]
    fn cdn_paths_are_encoded_per_segment() {
        assert_eq!(cdn_path("/Movies/测试 video.mp4"), "/cdn/Movies/%E6%B5%8B%E8%AF%95%20video.mp4");
        assert_eq!(cdn_path("a/#1 (100%).txt"), "/cdn/a/%231%20%28100%25%29.txt");
    }
}
