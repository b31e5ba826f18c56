//! End-to-end writes through a real mount (issues 13 and 14): what `cp`, `mv`, `rm`, `mkdir`
//! and friends leave on the provider, byte for byte, through faults and restarts.
//!
//! One conformance suite ([`suite`]) runs for every writable driver: [`Drive`] says how each
//! simulated provider is configured, inspected and upset; `conformance!` makes the suite's
//! tests for one drive. Provider-specific tests live beside it ([`pikpak`], [`pan123`]).
//! Assertions are on the simulator's stored bytes, trash and counters, and on errnos; waits are
//! bounded polls of the simulator, never timings.

mod copy;
mod pan123;
mod pikpak;
mod suite;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Mount, Sim};
use panmount::sim::SimHandle;

/// A writable driver under test, against its simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drive {
    PikPak,
    Pan123,
}

/// A fault to upload through: set before the write, undone after it when `after` says so.
pub struct FaultCase {
    pub name: &'static str,
    pub set: fn(&SimHandle),
    pub after: Option<fn(&SimHandle)>,
}

/// What the simulator holds at a path.
#[derive(Debug)]
pub struct Stored {
    pub is_dir: bool,
    /// Complete and not in the trash.
    pub live: bool,
}

impl Drive {
    /// Where the storage is mounted.
    pub fn root(self) -> &'static str {
        match self {
            Drive::PikPak => "/pikpak",
            Drive::Pan123 => "/123pan",
        }
    }

    /// A config with this drive's storage at [`Drive::root`], its uploads staged in `state`.
    pub fn config(self, sim: &Sim, state: &Path, extra: &str) -> String {
        format!("state_dir = \"{}\"\n{}", state.display(), self.storage(sim, self.root(), extra))
    }

    /// One `[[storage]]` table of this drive at `path`.
    pub fn storage(self, sim: &Sim, path: &str, extra: &str) -> String {
        let b = sim.handle().base_url();
        match self {
            Drive::PikPak => format!(
                "[[storage]]\npath = \"{path}\"\ndriver = \"pikpak\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\n\
                 username = \"alice@example.com\"\npassword = \"secret\"\n{extra}\n"
            ),
            Drive::Pan123 => format!(
                "[[storage]]\npath = \"{path}\"\ndriver = \"123pan\"\napi_base = \"{b}\"\nlogin_base = \"{b}\"\n\
                 username = \"{}\"\npassword = \"{}\"\nlist_interval_ms = 20\nwrite_interval_ms = 20\n{extra}\n",
                panmount::sim::pan123::PHONE,
                panmount::sim::pan123::PASSWORD
            ),
        }
    }

    /// A simulator set up for write tests: listings not spaced (the driver spaces them itself),
    /// parts small enough that a few MiB take several.
    pub fn sim(self) -> Sim {
        let sim = Sim::start(false);
        if self == Drive::Pan123 {
            sim.handle().pan123.update(|k| {
                k.list_interval_ms = 0;
                k.slice_size = 1 << 20;
            });
        }
        sim
    }

    /// A size that the upload sends in several parts.
    pub fn multipart_size(self) -> usize {
        match self {
            Drive::PikPak => 12 << 20,
            Drive::Pan123 => 3 << 20,
        }
    }

    pub fn stored(self, sim: &Sim, path: &str) -> Option<Stored> {
        match self {
            Drive::PikPak => sim
                .handle()
                .pikpak
                .node(path)
                .map(|n| Stored { is_dir: n.is_dir, live: n.phase == "PHASE_TYPE_COMPLETE" && !n.trashed }),
            Drive::Pan123 => sim.handle().pan123.node(path).map(|n| Stored { is_dir: n.is_dir, live: !n.trashed }),
        }
    }

    pub fn bytes(self, sim: &Sim, path: &str) -> Option<Vec<u8>> {
        match self {
            Drive::PikPak => sim.handle().pikpak.bytes(path),
            Drive::Pan123 => sim.handle().pan123.bytes(path),
        }
    }

    pub fn trashed_paths(self, sim: &Sim) -> Vec<String> {
        match self {
            Drive::PikPak => sim.handle().pikpak.trashed_paths(),
            Drive::Pan123 => sim.handle().pan123.trashed_paths(),
        }
    }

    fn counter(self, sim: &Sim, pick: fn(Counter) -> Option<&AtomicU64>) -> u64 {
        let counter = match self {
            Drive::PikPak => Counter::PikPak(&sim.handle().pikpak.counters),
            Drive::Pan123 => Counter::Pan123(&sim.handle().pan123.counters),
        };
        pick(counter).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// File bytes the object store took.
    pub fn sent_bytes(self, sim: &Sim) -> u64 {
        self.counter(sim, |c| match c {
            Counter::PikPak(c) => Some(&c.store_body_bytes),
            Counter::Pan123(c) => Some(&c.part_bytes),
        })
    }

    pub fn instant_uploads(self, sim: &Sim) -> u64 {
        self.counter(sim, |c| match c {
            Counter::PikPak(c) => Some(&c.instant_uploads),
            Counter::Pan123(c) => Some(&c.instant_uploads),
        })
    }

    /// Uploads begun at the provider (init, `upload_request`).
    pub fn upload_starts(self, sim: &Sim) -> u64 {
        self.counter(sim, |c| match c {
            Counter::PikPak(c) => Some(&c.upload_inits),
            Counter::Pan123(c) => Some(&c.upload_requests),
        })
    }

    pub fn mkdirs(self, sim: &Sim) -> u64 {
        self.counter(sim, |c| match c {
            Counter::PikPak(c) => Some(&c.mkdirs),
            Counter::Pan123(c) => Some(&c.mkdirs),
        })
    }

    /// Permanent deletes (123pan's simulator has no such endpoint: always 0).
    pub fn permanent_deletes(self, sim: &Sim) -> u64 {
        self.counter(sim, |c| match c {
            Counter::PikPak(c) => Some(&c.batch_deletes),
            Counter::Pan123(_) => None,
        })
    }

    /// Slow the object store down to `rate` bytes a second (`None`: full speed).
    pub fn throttle(self, sim: &Sim, rate: Option<u64>) {
        match self {
            Drive::PikPak => sim.handle().pikpak.update(|k| k.store_bytes_per_sec = rate),
            Drive::Pan123 => sim.handle().pan123.update(|k| k.store_bytes_per_sec = rate),
        }
    }

    /// The drive is full: the provider refuses uploads (and reports no free space).
    pub fn fill_quota(self, sim: &Sim) {
        match self {
            Drive::PikPak => sim.handle().pikpak.update(|k| k.quota_limit = 1),
            Drive::Pan123 => sim.handle().pan123.update(|k| k.quota_limit = 1),
        }
    }

    /// Faults on the way of a multipart upload that must still end with the exact bytes.
    pub fn fault_cases(self) -> Vec<FaultCase> {
        use panmount::sim::pikpak::PutFault;
        match self {
            Drive::PikPak => vec![
                FaultCase {
                    name: "forbidden",
                    set: |s| s.pikpak.update(|k| (k.put_fault, k.put_fault_count) = (PutFault::Forbidden, 2)),
                    after: None,
                },
                FaultCase {
                    name: "server_error",
                    set: |s| s.pikpak.update(|k| (k.put_fault, k.put_fault_count) = (PutFault::ServerError, 2)),
                    after: None,
                },
                FaultCase {
                    name: "reset",
                    set: |s| s.pikpak.update(|k| (k.put_fault, k.put_fault_count) = (PutFault::Reset, 2)),
                    after: None,
                },
                FaultCase { name: "init_429", set: |s| s.pikpak.update(|k| k.init_429_count = 2), after: None },
                FaultCase {
                    name: "expired_credentials",
                    set: |s| s.pikpak.update(|k| k.upload_creds_ttl_secs = 0),
                    // Renewed credentials (a new init) get the normal lifetime again.
                    after: Some(|s| s.pikpak.update(|k| k.upload_creds_ttl_secs = 12 * 3600)),
                },
            ],
            Drive::Pan123 => vec![
                FaultCase {
                    name: "forbidden",
                    set: |s| s.pan123.update(|k| (k.put_fault, k.put_fault_count) = (PutFault::Forbidden, 2)),
                    after: None,
                },
                FaultCase {
                    name: "server_error",
                    set: |s| s.pan123.update(|k| (k.put_fault, k.put_fault_count) = (PutFault::ServerError, 2)),
                    after: None,
                },
                FaultCase {
                    name: "reset",
                    set: |s| s.pan123.update(|k| (k.put_fault, k.put_fault_count) = (PutFault::Reset, 2)),
                    after: None,
                },
                FaultCase {
                    name: "request_429",
                    set: |s| s.pan123.update(|k| (k.inject_code, k.inject_count) = (429, 2)),
                    after: None,
                },
                FaultCase {
                    name: "expired_urls",
                    set: |s| s.pan123.update(|k| k.presign_ttl_secs = 0),
                    after: Some(|s| s.pan123.update(|k| k.presign_ttl_secs = 3600)),
                },
            ],
        }
    }

    /// Wait (bounded) until the simulator holds a complete file at `path` with exactly `bytes`.
    pub fn wait_stored(self, sim: &Sim, mount: &Mount, path: &str, bytes: &[u8]) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let stored = self.stored(sim, path);
            if stored.as_ref().is_some_and(|s| s.live && !s.is_dir) && self.bytes(sim, path).as_deref() == Some(bytes) {
                return;
            }
            assert!(Instant::now() < deadline, "{path} never reached the provider intact: {stored:?}\n{}", mount.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait (bounded) until `path` is in the simulator's trash.
    pub fn wait_trashed(self, sim: &Sim, mount: &Mount, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.trashed_paths(sim).iter().any(|p| p == path) {
            assert!(Instant::now() < deadline, "{path} never reached the trash\n{}", mount.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A mount of this drive whose uploads are staged in `state`, and its config file (for
    /// `panmount uploads` and restarts).
    pub fn mount_with_config(self, sim: &Sim, state: &Path) -> (Mount, PathBuf) {
        let config_file = crate::common::write_config(&self.config(sim, state, ""));
        let config_path = config_file.1.clone();
        (Mount::start_at(config_file, tempfile::tempdir().unwrap()), config_path)
    }

    /// `rel` under this drive's root in `mount`.
    pub fn at(self, mount: &Mount, rel: &str) -> PathBuf {
        mount.path(&format!("{}{rel}", self.root()))
    }
}

enum Counter<'a> {
    PikPak(&'a panmount::sim::pikpak::Counters),
    Pan123(&'a panmount::sim::pan123::Pan123Counters),
}

pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn write_file(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(bytes).unwrap();
    drop(f);
}

pub fn errno_of<T>(result: std::io::Result<T>) -> i32 {
    result.err().and_then(|e| e.raw_os_error()).unwrap_or(0)
}
