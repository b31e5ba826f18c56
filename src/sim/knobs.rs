//! Fault knobs and counters of the simulated CDN.
//!
//! `Knobs` holds the faults the CDN injects (link TTL, connection reset after N bytes or at
//! random, throughput,
//! first-byte delay, error bursts, a CDN that ignores or mangles `Range`). Tests change them at
//! run time from Rust (`Arc<Knobs>`) or over HTTP (`/_sim/knobs`), so one simulator can walk a
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
}

impl Default for KnobValues {
    fn default() -> Self {
        KnobValues {
            link_ttl_secs: None,
            reset_after_bytes: None,
            reset_chance: 0.0,
            throughput_bytes_per_sec: None,
            first_byte_delay_ms: 0,
            error_burst: 0,
            error_status: 503,
            ignore_range: false,
            wrong_content_range: false,
            max_connections_per_file: None,
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
        Knobs {
            values: Mutex::new(values),
        }
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
    pub refused_busy: u64,
    pub peak_connections: u64,
}

impl Stats {
    fn counters(&self) -> [&AtomicU64; 12] {
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
            &self.refused_busy,
            &self.peak_connections,
        ]
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let [a, b, c, d, e, f, g, h, i, j, k, l] = self.counters().map(|x| x.load(Ordering::Relaxed));
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
