//! Soak: a 256 MiB file streamed through a real mount, pass after pass, from a CDN that caps
//! each response's rate, refuses every link 2 s after its first use, and cuts a third of its
//! responses at a random point, while PikPak's access token lasts 2 s. Every byte read is
//! compared with the file on disk.
//!
//! About a minute by default; `PANMOUNT_SOAK_SECS=600` soaks longer. The first pass always
//! completes, later passes stop at the deadline. The test asserts that many expiries and
//! resets really happened, so it cannot pass by having dodged them.

use crate::common;

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Mount, Sim, fuse_tests_enabled};

const SIZE: u64 = 256 << 20;
const REL: &str = "/Soak/stream.bin";
const CHUNK: usize = 1 << 20;

fn soak_duration() -> Duration {
    let secs = std::env::var("PANMOUNT_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    Duration::from_secs(secs)
}

/// Read `mounted` from the start to the end (or until `deadline`, when `Some`), comparing
/// each chunk with `expected`. Returns the bytes verified.
fn stream_pass(mounted: &std::path::Path, expected: &std::fs::File, deadline: Option<Instant>) -> u64 {
    let mut file = std::fs::File::open(mounted).unwrap();
    let mut got = vec![0u8; CHUNK];
    let mut want = vec![0u8; CHUNK];
    let mut offset = 0u64;
    while offset < SIZE {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let n = file.read(&mut got).unwrap_or_else(|e| panic!("read at {offset}: {e}"));
        assert!(n > 0, "early end of file at {offset}");
        expected.read_exact_at(&mut want[..n], offset).unwrap();
        if got[..n] != want[..n] {
            let at = got[..n].iter().zip(&want[..n]).position(|(a, b)| a != b).unwrap();
            panic!("wrong byte at offset {}", offset + at as u64);
        }
        offset += n as u64;
    }
    offset
}

#[test]
fn stream_through_link_and_token_expiries_and_resets() {
    let _turn = crate::one_at_a_time();
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start_with(false, |dir| {
        std::fs::create_dir_all(dir.join("Soak")).unwrap();
        panmount::sim::sample::write_content(&dir.join("Soak/stream.bin"), REL, SIZE).unwrap();
    });
    sim.handle().pikpak.update(|k| k.access_ttl_secs = 2);
    sim.knobs().update(|k| {
        k.throughput_bytes_per_sec = Some(4 << 20);
        k.link_ttl_secs = Some(2.0);
        k.reset_chance = 0.3;
    });
    let b = sim.handle().base_url();
    let config = format!(
        "[[storage]]\npath = \"/pikpak\"\ndriver = \"pikpak\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\n\
         username = \"alice@example.com\"\npassword = \"secret\"\n"
    );
    let mount = Mount::start(&config);
    let expected = std::fs::File::open(sim.data.path().join("Soak/stream.bin")).unwrap();
    let mounted = mount.path(&format!("/pikpak{REL}"));

    let started = Instant::now();
    let deadline = started + soak_duration();
    let mut verified = stream_pass(&mounted, &expected, None);
    let mut passes = 1;
    while Instant::now() < deadline {
        verified += stream_pass(&mounted, &expected, Some(deadline));
        passes += 1;
    }
    let elapsed = started.elapsed();

    let cdn = sim.stats();
    let pp = &sim.handle().pikpak.counters;
    let refreshes = pp.refreshes.load(Ordering::Relaxed);
    let mints = pp.details.load(Ordering::Relaxed);
    eprintln!(
        "soak: {} MiB verified in {passes} passes, {elapsed:.0?}; {} link refusals, {mints} link mints, \
         {refreshes} token refreshes, {} resets, {} ranged requests",
        verified >> 20,
        cdn.refused_403,
        cdn.resets,
        cdn.ranges
    );
    // Per minute (measured): about 45 link refusals, 25 token refreshes, 130 resets (a third of
    // the responses). Require a good part of that, scaled to the time spent.
    let minutes = (elapsed.as_secs_f64() / 60.0).max(1.0);
    let floor = (10.0 * minutes) as u64;
    assert!(cdn.refused_403 >= floor, "too few link expiries: {}", cdn.refused_403);
    assert!(refreshes >= floor, "too few access-token expiries: {refreshes}");
    assert!(cdn.resets >= floor, "too few connection resets: {}", cdn.resets);
    assert!(mount.stop().success());
}
