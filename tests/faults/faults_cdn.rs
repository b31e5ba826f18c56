//! The fault matrix (tests/README.md), CDN rows: a real mount of a 123pan_link tree, one fault
//! set on the simulated CDN at a time, and for each what the reader gets (the exact bytes or
//! EIO) and what the recovery costs in CDN requests, counted by the simulator.
//!
//! Each case reads a file no earlier case read, so nothing comes from the block cache. A whole
//! small file (at most 128 KiB) is one FUSE read and one ranged request when the CDN is
//! healthy (`healthy_reads_cost_one_request`), so "requests - 1" is what the fault cost.

use crate::common;

use std::io;
use std::time::{Duration, Instant};

use common::{KEY, Mount, Sim, assert_eio, fuse_tests_enabled, mount_stat, read_all, sha256};
use panmount::sim::{KnobValues, SizeMode, StatsSnapshot};

/// The most a read that fails for good may take: six backoffs (0.1 s doubling, up to 1.5x
/// jitter) are under 10 s; the rest is slack for a loaded CI machine.
const EIO_WITHIN: Duration = Duration::from_secs(30);

fn start() -> (Sim, Mount) {
    let sim = Sim::start(true);
    let mount = Mount::start(&sim.config(SizeMode::Full, KEY, ""));
    (sim, mount)
}

/// Read all of `rel` with `fault` set on the CDN (and cleared after): the outcome, the CDN's
/// counters for this read alone, and how long it took.
fn read_with(
    sim: &Sim,
    mount: &Mount,
    rel: &str,
    fault: impl FnOnce(&mut KnobValues),
) -> (io::Result<Vec<u8>>, StatsSnapshot, Duration) {
    sim.knobs().reset();
    sim.knobs().update(fault);
    sim.handle().stats.reset();
    let started = Instant::now();
    let result = read_all(&mount.path(&format!("/links{rel}")));
    let took = started.elapsed();
    sim.knobs().reset();
    (result, sim.stats(), took)
}

/// The read returned the file's exact bytes.
fn assert_exact(sim: &Sim, rel: &str, result: io::Result<Vec<u8>>) {
    let got = result.unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(sha256(&got), sha256(&sim.file_bytes(rel)), "{rel}");
}

#[test]
fn healthy_reads_cost_one_request() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, mount) = start();
    for rel in ["/Docs/readme.txt", "/Music/Album/cover.jpg"] {
        let (result, stats, _) = read_with(&sim, &mount, rel, |_| {});
        assert_exact(&sim, rel, result);
        assert_eq!(stats.requests, 1, "{rel}: {stats:?}");
    }
    assert!(mount.stop().success());
}

#[test]
fn error_statuses_that_may_heal_cost_one_request_each() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, mount) = start();
    // (status, burst, file): 429 (with Retry-After: 1), 500 and 503 are retried with backoff;
    // a 403 makes panmount mint a new link (123pan_link signs locally: no API call).
    for (status, burst, rel) in [
        (429, 2, "/Music/Album/cover.jpg"),
        (500, 3, "/Docs/notes #1 (100%).txt"),
        (503, 3, "/Movies/movie.srt"),
        (403, 1, "/Movies/movie.nfo"),
    ] {
        let mints = mount_stat(&mount, "/links", "link_mints");
        let (result, stats, _) = read_with(&sim, &mount, rel, |k| {
            k.error_burst = burst;
            k.error_status = status;
        });
        assert_exact(&sim, rel, result);
        assert_eq!(stats.requests, 1 + u64::from(burst), "HTTP {status} x{burst}: {stats:?}");
        let reminted = mount_stat(&mount, "/links", "link_mints") - mints;
        assert_eq!(reminted, u64::from(status == 403) + 1, "HTTP {status}: a new link only after a 403");
    }
    assert!(mount.stop().success());
}

#[test]
fn error_statuses_that_cannot_heal_are_eio_in_bounded_time() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, mount) = start();
    // (status, burst, file, requests): 404 and 416 are final at once; a 403 is answered with
    // one new link, and a second 403 in a row is final; 5xx is retried six times.
    for (status, burst, rel, requests) in [
        (404, 1, "/Docs/readme.txt", 1),
        (416, 1, "/Docs/notes #1 (100%).txt", 1),
        (403, 1000, "/Movies/movie.srt", 2),
        (503, 1000, "/Music/Album/cover.jpg", 7),
    ] {
        let (result, stats, took) = read_with(&sim, &mount, rel, |k| {
            k.error_burst = burst;
            k.error_status = status;
        });
        assert_eio(result, &format!("HTTP {status}"));
        assert_eq!(stats.requests, requests, "HTTP {status}: {stats:?}");
        assert!(took < EIO_WITHIN, "HTTP {status}: EIO after {took:?}");
        // Nothing sticks: with the CDN healthy again the same file reads.
        let (result, _, _) = read_with(&sim, &mount, rel, |_| {});
        assert_exact(&sim, rel, result);
    }
    assert!(mount.stop().success());
}

#[test]
fn link_expiry_mid_read_costs_one_refusal_and_one_mint() {
    if !fuse_tests_enabled() {
        return;
    }
    use std::os::unix::fs::FileExt;
    let (sim, mount) = start();
    let want = sim.file_bytes("/Movies/movie.mp4");
    sim.knobs().update(|k| k.link_ttl_secs = Some(1.0));
    let file = std::fs::File::open(mount.path("/links/Movies/movie.mp4")).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, want[..buf.len()]);
    let before = (sim.stats().requests, mount_stat(&mount, "/links", "link_mints"));
    // The CDN refuses the link from now on; the read resumes with a new one.
    std::thread::sleep(Duration::from_millis(1300));
    file.read_exact_at(&mut buf, 3 << 20).unwrap();
    assert_eq!(buf, want[3 << 20..(3 << 20) + buf.len()]);
    let stats = sim.stats();
    assert_eq!(stats.refused_403, 1, "{stats:?}");
    assert_eq!(stats.requests - before.0, 2, "the refused request and its retry: {stats:?}");
    assert_eq!(mount_stat(&mount, "/links", "link_mints") - before.1, 1);
    drop(file);
    assert!(mount.stop().success());
}

#[test]
fn connection_resets_once_and_every_time() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, mount) = start();
    // Once: the read resumes where the body stopped, so no byte is downloaded twice.
    let rel = "/Music/Album/cover.jpg";
    let (result, stats, _) = read_with(&sim, &mount, rel, |k| {
        k.reset_after_bytes = Some(30_000);
        k.body_fault_count = Some(1);
    });
    assert_exact(&sim, rel, result);
    assert_eq!((stats.requests, stats.resets, stats.bytes_sent), (2, 1, 65_537), "{stats:?}");

    // Every time, with progress: each cut costs one request, and progress renews the retry
    // budget, so a 1.5 MB file cut every 200 kB still arrives whole.
    let rel = "/Music/Album/01 - Intro.flac";
    let (result, stats, _) = read_with(&sim, &mount, rel, |k| k.reset_after_bytes = Some(200_000));
    assert_exact(&sim, rel, result);
    // No request carries more than 200 kB (several requests share the file, its read-ahead
    // parts, and a request's last piece under 200 kB is not cut, so not every request is).
    assert!(stats.requests >= 1_500_000u64.div_ceil(200_000), "{stats:?}");
    assert_eq!(stats.bytes_sent, 1_500_000, "no byte twice: {stats:?}");
    // The healthy cost of this read (its first request and read-ahead) on a fresh mount:
    // every cut costs one request more than that.
    let fresh = Mount::start(&sim.config(SizeMode::Full, KEY, ""));
    let (result, healthy, _) = read_with(&sim, &fresh, rel, |_| {});
    assert_exact(&sim, rel, result);
    assert_eq!(stats.requests, healthy.requests + stats.resets, "{stats:?} vs {healthy:?}");
    assert!(fresh.stop().success());

    // Every time, before any byte: no progress, so the budget runs out.
    let rel = "/Docs/readme.txt";
    let (result, stats, took) = read_with(&sim, &mount, rel, |k| k.reset_after_bytes = Some(0));
    assert_eio(result, "reset before the first byte");
    assert_eq!((stats.requests, stats.resets), (7, 7), "{stats:?}");
    assert!(took < EIO_WITHIN, "EIO after {took:?}");
    assert!(mount.stop().success());
}

#[test]
fn a_body_of_the_wrong_length() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, mount) = start();
    // Longer than its Content-Range: refused before the first byte, not retried.
    let (result, stats, _) = read_with(&sim, &mount, "/Docs/readme.txt", |k| k.body_length_delta = 10);
    assert_eio(result, "a body longer than announced");
    assert_eq!(stats.requests, 1, "{stats:?}");

    // Shorter, once: the missing tail is asked for again.
    let rel = "/Music/Album/cover.jpg";
    let (result, stats, _) = read_with(&sim, &mount, rel, |k| {
        k.body_length_delta = -1000;
        k.body_fault_count = Some(1);
    });
    assert_exact(&sim, rel, result);
    assert_eq!((stats.requests, stats.bytes_sent), (2, 65_537), "{stats:?}");

    // Shorter every time: the tail never comes; the first request made progress, the six
    // retries did not.
    let (result, stats, took) = read_with(&sim, &mount, "/Movies/movie.srt", |k| k.body_length_delta = -1000);
    assert_eio(result, "a body always shorter than announced");
    assert_eq!(stats.requests, 7, "{stats:?}");
    assert!(took < EIO_WITHIN, "EIO after {took:?}");
    assert!(mount.stop().success());
}

#[test]
fn a_stalled_body_times_out_and_resumes() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, mount) = start();
    let rel = "/Music/Album/cover.jpg";
    // 30 kB, then nothing for a minute: longer than the 30 s read timeout.
    let (result, stats, took) = read_with(&sim, &mount, rel, |k| {
        k.stall_after_bytes = Some(30_000);
        k.stall_ms = 60_000;
        k.body_fault_count = Some(1);
    });
    assert_exact(&sim, rel, result);
    assert_eq!((stats.requests, stats.stalls, stats.bytes_sent), (2, 1, 65_537), "resumed at byte 30000: {stats:?}");
    assert!(took >= Duration::from_secs(29), "resumed before the read timeout: {took:?}");
    assert!(took < Duration::from_secs(55), "not resumed after the read timeout: {took:?}");
    assert!(mount.stop().success());
}

/// `len` bytes at `offset` of `rel` through the mount, by one `pread` on a fresh descriptor.
fn pread(mount: &Mount, rel: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(mount.path(&format!("/links{rel}")))?;
    let mut buf = vec![0; len];
    let n = file.read_at(&mut buf, offset)?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn a_cold_read_deep_in_a_block_is_split_in_two_and_exact_or_eio() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, mount) = start();
    let at = |rel: &str, offset: usize, len: usize| sim.file_bytes(rel)[offset..offset + len].to_vec();
    // Healthy: the block's tail from the read's offset and its head, one request each, no
    // byte twice; the block is then cached whole.
    let rel = "/Music/Album/01 - Intro.flac";
    sim.handle().stats.reset();
    assert_eq!(pread(&mount, rel, 40_000, 4096).unwrap(), at(rel, 40_000, 4096));
    assert_eq!(pread(&mount, rel, 100, 1000).unwrap(), at(rel, 100, 1000));
    let stats = sim.stats();
    assert_eq!((stats.requests, stats.bytes_sent), (2, 65_536), "{stats:?}");

    // One of the two requests fails (a reset before its first byte, or a 500): the block is
    // fetched whole again, and the reader gets the remote bytes.
    let rel = "/Movies/movie.mp4";
    let faults: [fn(&mut KnobValues); 2] = [
        |k| k.reset_after_bytes = Some(0),
        |k| {
            k.error_burst = 1;
            k.error_status = 500;
        },
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        sim.knobs().reset();
        sim.knobs().update(|k| {
            fault(k);
            k.body_fault_count = Some(1);
        });
        let offset = (1 + i) * (1 << 20) + 50_000;
        assert_eq!(pread(&mount, rel, offset as u64, 100).unwrap(), at(rel, offset, 100), "fault {i}");
    }
    // Refused for good: EIO, in bounded time.
    sim.knobs().reset();
    sim.knobs().update(|k| {
        k.error_burst = 1000;
        k.error_status = 404;
    });
    let started = Instant::now();
    assert_eio(pread(&mount, rel, 4 * (1 << 20) + 30_000, 100), "HTTP 404");
    assert!(started.elapsed() < EIO_WITHIN);
    sim.knobs().reset();
    assert!(mount.stop().success());
}
