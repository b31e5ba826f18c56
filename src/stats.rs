//! Telemetry: what each storage cost and served. Counters only (atomics, no locks on the read
//! path), read by `panmount stats MOUNTPOINT` through the hidden file `/.panmount-stats` and
//! logged when the mount stops. Read amplification — bytes fetched from the CDN per byte served
//! to readers — is the number that says whether read-ahead is paying for itself.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The hidden file at the mount's root that holds the report. Not listed by `readdir`, so media
/// servers never index it; `lookup` of this exact name finds it.
pub const STATS_FILE: &str = ".panmount-stats";

#[derive(Debug, Default)]
pub struct StorageStats {
    /// Bytes handed to readers (the kernel, `cat`).
    pub bytes_served: AtomicU64,
    /// Bytes received from download links.
    pub bytes_fetched: AtomicU64,
    /// Ranged GETs sent (including resumed ones).
    pub range_requests: AtomicU64,
    /// Download links obtained from the driver.
    pub link_mints: AtomicU64,
    /// Folder listings obtained from the driver.
    pub listings: AtomicU64,
    /// Of those, the ones made in the background to revalidate a listing restored from the
    /// store (`crate::fs::namespace::revalidate`).
    pub revalidations: AtomicU64,
    /// Block lookups answered from memory, joined to a fetch in flight, or fetched.
    pub block_hits: AtomicU64,
    pub block_joins: AtomicU64,
    pub block_misses: AtomicU64,
    /// Blocks served from the disk cache instead of the network.
    pub disk_hits: AtomicU64,
    /// Reads that failed (EIO and friends).
    pub read_errors: AtomicU64,
    /// Uploads begun (each attempt), landed, of those landed without a byte sent (the
    /// provider had the content), failed for good; and the bytes the provider took.
    pub uploads_started: AtomicU64,
    pub uploads_done: AtomicU64,
    pub uploads_instant: AtomicU64,
    pub uploads_failed: AtomicU64,
    pub bytes_uploaded: AtomicU64,
    /// Files copied by the provider (`copy_file_range` of a whole file: no byte downloaded or
    /// uploaded), and their bytes.
    pub provider_copies: AtomicU64,
    pub bytes_copied_by_provider: AtomicU64,
}

impl StorageStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// One line: `storage=/p bytes_served=N ... amplification=1.03`.
    pub fn line(&self, path: &str) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (served, fetched) = (get(&self.bytes_served), get(&self.bytes_fetched));
        let mut out = format!("storage={path}");
        for (name, c) in [
            ("bytes_served", &self.bytes_served),
            ("bytes_fetched", &self.bytes_fetched),
            ("range_requests", &self.range_requests),
            ("link_mints", &self.link_mints),
            ("listings", &self.listings),
            ("revalidations", &self.revalidations),
            ("block_hits", &self.block_hits),
            ("block_joins", &self.block_joins),
            ("block_misses", &self.block_misses),
            ("disk_hits", &self.disk_hits),
            ("read_errors", &self.read_errors),
            ("uploads_started", &self.uploads_started),
            ("uploads_done", &self.uploads_done),
            ("uploads_instant", &self.uploads_instant),
            ("uploads_failed", &self.uploads_failed),
            ("bytes_uploaded", &self.bytes_uploaded),
            ("provider_copies", &self.provider_copies),
            ("bytes_copied_by_provider", &self.bytes_copied_by_provider),
        ] {
            let _ = write!(out, " {name}={}", get(c));
        }
        if served > 0 {
            let _ = write!(out, " amplification={:.2}", fetched as f64 / served as f64);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let s = StorageStats::default();
        StorageStats::add(&s.bytes_served, 100);
        StorageStats::add(&s.bytes_fetched, 150);
        let line = s.line("/a");
        assert!(line.starts_with("storage=/a bytes_served=100 bytes_fetched=150 "), "{line}");
        assert!(line.ends_with(" amplification=1.50"), "{line}");
    }
}
