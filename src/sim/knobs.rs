//! Fault knobs and counters of the simulated CDN.
//!
//! `Knobs` holds the faults the CDN injects (link TTL, connection reset after N bytes or at
//! random, a stalled body, a body of the wrong length, throughput, first-byte delay, error
//! bursts, a CDN that ignores or mangles `Range`, the whole simulator down, any status and JSON
//! body from the provider APIs). Tests change them
//! at run time from Rust (`Arc<Knobs>`) or over HTTP (`/_sim/knobs`), so one simulator can walk a
//! client through healthy and broken phases without restarting. `Stats` counts what the CDN did,
//! so tests can assert "the client re-fetched once", "no byte was downloaded twice", and so on.
//!
//! Every knob defaults to "off" (a healthy CDN). Values are read once at the start of a request:
//! changing a knob affects the next requests, not a body already being streamed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The fault settings. Missing fields in JSON take their defaults (all off, `error_status` 503).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KnobValues {
    /// A link carrying an `auth_key` is refused with 403 once this many seconds have passed since
    /// the CDN first saw that exact `auth_key` value (short-lived links, whatever their `ts`).
    /// Requests without `auth_key` are not affected.
    pub link_ttl_secs: Option<f64>,
    /// Every response body is cut after this many bytes by aborting the connection: the client
    /// sees an incomplete body (an error), never a clean end.
    pub reset_after_bytes: Option<u64>,
    /// A body stops after this many bytes and sends nothing for `stall_ms`, then goes on (if
    /// the client is still there).
    pub stall_after_bytes: Option<u64>,
    pub stall_ms: u64,
    /// A body carries this many bytes more (> 0) or fewer (< 0) than its `Content-Range`
    /// announces. A longer body says so in `Content-Length` (the two headers disagree before
    /// the first byte); a shorter one is sent chunked, without `Content-Length`, and ends
    /// cleanly early (not a reset), so only the byte count gives it away.
    pub body_length_delta: i64,
    /// The body faults above (`reset_after_bytes`, `stall_after_bytes`, `body_length_delta`)
    /// hit only the next N bodies, counting down (`None`: every body).
    pub body_fault_count: Option<u32>,
    /// Each response body is cut, with this probability (0 to 1), at a uniformly random point
    /// before its end, the same way: random resets for soak tests. Combines with
    /// `reset_after_bytes` (the earlier cut wins).
    pub reset_chance: f64,
    /// Pace each response body to about this many bytes per second.
    pub throughput_bytes_per_sec: Option<u64>,
    /// Delay before the response headers of every CDN request.
    pub first_byte_delay_ms: u64,
    /// The next N CDN requests answer `error_status`; the count goes down by one per request.
    pub error_burst: u32,
    /// Status of the error burst (default 503; anything but 4xx/5xx means 503). With 429 the
    /// answer carries `Retry-After: 1`.
    pub error_status: u16,
    /// Answer `Range` requests with 200 and the full body (a misbehaving CDN).
    pub ignore_range: bool,
    /// Answer `Range` requests with 206 but with a `Content-Range` (and body) whose start is off
    /// by one: `start + 1`, or `start - 1` when `start` is the last byte of the file.
    pub wrong_content_range: bool,
    /// A file already being sent on this many connections refuses another with 503, as
    /// PikPak's CDN does past 8 connections to one URL.
    pub max_connections_per_file: Option<u32>,
    /// The whole simulator is down: every request, CDN and both provider APIs alike (not the
    /// `/_sim` admin routes), answers 503 without `Retry-After`.
    pub provider_down: bool,
    /// Answer provider API calls (PikPak and 123pan, including the 123pan link hop; never the
    /// CDN or `/_sim`) with any status and JSON body, for the next `count` calls.
    pub api_fault: Option<ApiFault>,
}

/// An API answer forced on the next `count` API calls whose path contains `path_contains`
/// (every API path when empty), e.g. `{"status":503,"body":{"message":"Service Unavailable"},
/// "count":3,"path_contains":"/file/list"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiFault {
    /// Any HTTP status (outside 100-999: 500).
    pub status: u16,
    /// Sent as is, as `application/json`.
    pub body: serde_json::Value,
    /// Counts down by one per answered call.
    pub count: u32,
    #[serde(default)]
    pub path_contains: String,
}

impl Default for KnobValues {
    fn default() -> Self {
        KnobValues {
            link_ttl_secs: None,
            reset_after_bytes: None,
            stall_after_bytes: None,
            stall_ms: 0,
            body_length_delta: 0,
            body_fault_count: None,
            reset_chance: 0.0,
            throughput_bytes_per_sec: None,
            first_byte_delay_ms: 0,
            error_burst: 0,
            error_status: 503,
            ignore_range: false,
            wrong_content_range: false,
            max_connections_per_file: None,
            provider_down: false,
            api_fault: None,
        }
    }
}

/// The live knobs, shared between the server and whoever drives the test.
#[derive(Debug, Default)]
pub struct Knobs {
    values: Mutex<KnobValues>,
}

impl Knobs {
    pub fn new(values: KnobValues) -> Self {
        Knobs { values: Mutex::new(values) }
    }

    /// A copy of the current values.
    pub fn get(&self) -> KnobValues {
        self.lock().clone()
    }

    /// Replace all values.
    pub fn set(&self, values: KnobValues) {
        *self.lock() = values;
    }

    /// Change some values in place, e.g. `knobs.update(|k| k.error_burst = 2)`.
    pub fn update(&self, f: impl FnOnce(&mut KnobValues)) {
        f(&mut self.lock());
    }

    /// Back to a healthy CDN.
    pub fn reset(&self) {
        self.set(KnobValues::default());
    }

    /// Take one request out of the error burst: `Some(status)` when this request must fail.
    pub(crate) fn take_burst(&self) -> Option<u16> {
        let mut k = self.lock();
        if k.error_burst == 0 {
            return None;
        }
        k.error_burst -= 1;
        Some(k.error_status)
    }

    /// Take one call out of `api_fault`: `Some((status, body))` when the API call to `path`
    /// must be answered with them.
    pub(crate) fn take_api_fault(&self, path: &str) -> Option<(u16, serde_json::Value)> {
        let mut k = self.lock();
        let fault = k.api_fault.as_mut().filter(|f| f.count > 0 && path.contains(f.path_contains.as_str()))?;
        fault.count -= 1;
        Some((fault.status, fault.body.clone()))
    }

    /// Whether the body about to be sent gets the body faults (`body_fault_count`).
    pub(crate) fn take_body_fault(&self) -> bool {
        let mut k = self.lock();
        match &mut k.body_fault_count {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KnobValues> {
        // A panic while holding this lock cannot leave the plain-data values inconsistent.
        self.values.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counters of CDN requests (the admin endpoints are not counted).
#[derive(Debug, Default)]
pub struct Stats {
    /// CDN requests received (GET and HEAD, whatever the outcome).
    pub requests: AtomicU64,
    /// HEAD requests among them.
    pub head_requests: AtomicU64,
    /// Body bytes handed to the connection.
    pub bytes_sent: AtomicU64,
    /// Answers 200 with a body (full file).
    pub full: AtomicU64,
    /// Answers 206.
    pub ranges: AtomicU64,
    /// Answers 403 (auth refused, expired, TTL, traversal).
    pub refused_403: AtomicU64,
    /// Answers 404.
    pub not_found: AtomicU64,
    /// Answers 416.
    pub unsatisfiable_416: AtomicU64,
    /// Answers from the error burst.
    pub injected_errors: AtomicU64,
    /// Bodies cut by `reset_after_bytes`.
    pub resets: AtomicU64,
    /// Bodies paused by `stall_after_bytes`.
    pub stalls: AtomicU64,
    /// Bodies sent with `body_length_delta` bytes too many or too few.
    pub wrong_lengths: AtomicU64,
    /// Requests answered 503 because of `provider_down` (CDN and API alike; not in `requests`).
    pub down_refused: AtomicU64,
    /// Answers 503 because `max_connections_per_file` was reached.
    pub refused_busy: AtomicU64,
    /// The most bodies of one file ever streamed at once.
    pub peak_connections: AtomicU64,
}

/// A point-in-time copy of [`Stats`], as served by `GET /_sim/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub head_requests: u64,
    pub bytes_sent: u64,
    pub full: u64,
    pub ranges: u64,
    pub refused_403: u64,
    pub not_found: u64,
    pub unsatisfiable_416: u64,
    pub injected_errors: u64,
    pub resets: u64,
    pub stalls: u64,
    pub wrong_lengths: u64,
    pub down_refused: u64,
    pub refused_busy: u64,
    pub peak_connections: u64,
}

impl Stats {
    fn counters(&self) -> [&AtomicU64; 15] {
        [
            &self.requests,
            &self.head_requests,
            &self.bytes_sent,
            &self.full,
            &self.ranges,
            &self.refused_403,
            &self.not_found,
            &self.unsatisfiable_416,
            &self.injected_errors,
            &self.resets,
            &self.stalls,
            &self.wrong_lengths,
            &self.down_refused,
            &self.refused_busy,
            &self.peak_connections,
        ]
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let [a, b, c, d, e, f, g, h, i, j, m, n, o, k, l] = self.counters().map(|x| x.load(Ordering::Relaxed));
        StatsSnapshot {
            requests: a,
            head_requests: b,
            bytes_sent: c,
            full: d,
            ranges: e,
            refused_403: f,
            not_found: g,
            unsatisfiable_416: h,
            injected_errors: i,
            resets: j,
            stalls: m,
            wrong_lengths: n,
            down_refused: o,
            refused_busy: k,
            peak_connections: l,
        }
    }

    pub fn reset(&self) {
        for c in self.counters() {
            c.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_defaults() {
        let k: KnobValues = serde_json::from_str(r#"{"error_burst": 2}"#).unwrap();
        assert_eq!(k.error_burst, 2);
        assert_eq!(k.error_status, 503);
        assert_eq!(k.link_ttl_secs, None);
        assert!(!k.ignore_range);
    }

    #[test]
    fn burst_counts_down() {
        let knobs = Knobs::default();
        knobs.update(|k| {
            k.error_burst = 2;
            k.error_status = 429;
        });
        assert_eq!(knobs.take_burst(), Some(429));
        assert_eq!(knobs.take_burst(), Some(429));
        assert_eq!(knobs.take_burst(), None);
        assert_eq!(knobs.get().error_burst, 0);
    }

    #[test]
    fn api_faults_count_down_on_matching_paths() {
        let knobs = Knobs::default();
        assert_eq!(knobs.take_api_fault("/b/api/file/list/new"), None);
        let fault = r#"{"api_fault":{"status":503,"body":{"message":"x"},"count":2,"path_contains":"/list"}}"#;
        knobs.set(serde_json::from_str(fault).unwrap());
        assert_eq!(knobs.take_api_fault("/b/api/user/info"), None);
        let want = Some((503, serde_json::json!({"message": "x"})));
        assert_eq!(knobs.take_api_fault("/b/api/file/list/new"), want);
        assert_eq!(knobs.take_api_fault("/b/api/file/list/new"), want);
        assert_eq!(knobs.take_api_fault("/b/api/file/list/new"), None);
        assert_eq!(knobs.get().api_fault.unwrap().count, 0);
    }

    #[test]
    fn body_faults_count_down_or_hit_every_body() {
        let knobs = Knobs::default();
        assert!(knobs.take_body_fault() && knobs.take_body_fault(), "None: every body");
        knobs.update(|k| k.body_fault_count = Some(1));
        assert!(knobs.take_body_fault());
        assert!(!knobs.take_body_fault());
        assert_eq!(knobs.get().body_fault_count, Some(0));
    }

    #[test]
    fn stats_snapshot_and_reset() {
        let s = Stats::default();
        Stats::add(&s.bytes_sent, 10);
        Stats::add(&s.ranges, 1);
        let snap = s.snapshot();
        assert_eq!((snap.bytes_sent, snap.ranges, snap.requests), (10, 1, 0));
        s.reset();
        assert_eq!(s.snapshot(), StatsSnapshot::default());
    }
}
