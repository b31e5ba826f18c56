//! The traffic budget through real mounts (`crate::budget`): a 5 MiB budget read until it is
//! spent (EIO and one log line, cached data still served, the count kept across a `kill -9`),
//! and the soft mark turning read-ahead off, counted in bytes at the simulator's CDN.

use crate::common;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use common::{KEY, Mount, Sim, assert_eio, fuse_tests_enabled, mount_stat, read_all, run, write_config};
use panmount::config::TrafficPeriod;
use panmount::sim::SizeMode;

const MIB: u64 = 1 << 20;
const BLOCK: u64 = panmount::app::BLOCK_SIZE;

/// The `/links` storage of the sample tree with `state_dir`, `extra` (a `[cache]` table) and
/// `storage_keys` added to its table.
fn config(sim: &Sim, state: &Path, extra: &str, storage_keys: &str) -> String {
    let head = format!("state_dir = \"{}\"\n{extra}", state.display());
    format!("{}{storage_keys}\n", sim.config(SizeMode::Full, KEY, &head))
}

/// `YYYY-MM-DD HH:MM UTC` of the end of this month, as the log and `check` write it.
fn month_end() -> String {
    let now = panmount::time::unix_now();
    let start = panmount::budget::period_start(TrafficPeriod::Month, now);
    format!("{} UTC", panmount::time::utc_minute(panmount::budget::period_end(TrafficPeriod::Month, start)))
}

/// The CDN's byte count once it stops moving (read-ahead still running when a read returns).
fn settled_bytes(sim: &Sim) -> u64 {
    let mut last = sim.stats().bytes_sent;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = sim.stats().bytes_sent;
        if now == last {
            return now;
        }
        last = now;
    }
}

#[test]
fn a_spent_budget_is_eio_for_new_data_while_cached_data_still_reads() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    let (state, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let disk = format!("[cache]\ndir = \"{}\"\n", cache.path().display());
    let text = config(&sim, state.path(), &disk, "traffic_budget = \"5MiB\"");
    let (config_dir, config_path) = write_config(&text);
    let cfg = config_path.to_str().unwrap().to_string();
    let mut mount = Mount::start_at((config_dir, config_path), tempfile::tempdir().unwrap());
    let flac = "/Music/Album/01 - Intro.flac";
    assert_eq!(read_all(&mount.path(&format!("/links{flac}"))).unwrap(), sim.file_bytes(flac));

    // 1.5 MB spent, 5 MiB + 12 KiB to read: the movie fails partway.
    assert_eio(read_all(&mount.path("/links/Movies/movie.mp4")), "the movie past the budget");
    let sent = settled_bytes(&sim);
    // Granted requests in flight overshoot by at most a block each (8 per reader).
    assert!((5 * MIB..=5 * MIB + 8 * BLOCK).contains(&sent), "{sent} bytes for a 5 MiB budget");
    assert_eq!(mount_stat(&mount, "/links", "traffic_used"), sent, "the same bytes as the CDN's");
    assert_eq!(mount_stat(&mount, "/links", "traffic_budget"), 5 * MIB);

    // Data not cached: EIO at once, without a request.
    let requests = sim.stats().requests;
    assert_eio(read_all(&mount.path("/links/Ünïcödé folder/exactly 1 MiB.bin")), "uncached");
    assert_eio(read_all(&mount.path("/links/Docs/readme.txt")), "uncached");
    assert_eq!(sim.stats().requests, requests, "a spent budget sends nothing");
    // Cached data reads back exact.
    assert_eq!(read_all(&mount.path(&format!("/links{flac}"))).unwrap(), sim.file_bytes(flac));

    let log = mount.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("traffic budget spent")).collect();
    assert_eq!(lines.len(), 1, "one line per period:\n{log}");
    for part in ["storage /links", " used of 5.0 MiB this month", &format!("resets at {}", month_end()), "EIO"] {
        assert!(lines[0].contains(part), "{part:?} in {}", lines[0]);
    }

    // kill -9 after the saver's period: the count was written while bytes flowed.
    std::thread::sleep(panmount::budget::SAVE_EVERY + Duration::from_millis(1500));
    mount.stop_with(libc::SIGKILL);
    let (code, out, err) = run(&["check", &cfg]);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{out}{err}");
    let row = format!(
        "traffic {} of 5.0 MiB ({}%), spent, resets {}",
        panmount::config::format_size(sent),
        sent * 100 / (5 * MIB),
        month_end()
    );
    assert!(out.contains(&row), "{row:?} in:\n{out}");

    // A new process with the same state_dir: still spent, the same count, cached data served.
    let mount = Mount::start(&text);
    assert_eq!(mount_stat(&mount, "/links", "traffic_used"), sent);
    assert_eio(read_all(&mount.path("/links/Docs/readme.txt")), "uncached after the restart");
    assert_eq!(read_all(&mount.path(&format!("/links{flac}"))).unwrap(), sim.file_bytes(flac));
    assert!(mount.stop().success());
    assert_eq!(sim.stats().bytes_sent, sent, "nothing downloaded after the budget was spent");
}

/// Read the first `len` bytes of `path` in 128 KiB reads, as a player or `cp` would.
fn read_head(path: &Path, len: u64) -> Vec<u8> {
    let mut out = vec![0; len as usize];
    let mut file = std::fs::File::open(path).unwrap();
    for chunk in out.chunks_mut(128 << 10) {
        file.read_exact(chunk).unwrap();
    }
    out
}

#[test]
fn past_the_soft_mark_only_what_is_read_is_fetched() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start_with(true, |dir| {
        panmount::sim::sample::write_content(&dir.join("fill.bin"), "/fill.bin", 37 * MIB).unwrap()
    });
    let movie = "/Movies/movie.mp4";
    let head = &sim.file_bytes(movie)[..2 * MIB as usize];

    // Without a budget, 2 MiB read as a stream fetch the rest of the 5 MiB file ahead.
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path(), "", ""));
    let before = sim.stats().bytes_sent;
    assert_eq!(read_head(&mount.path(&format!("/links{movie}")), 2 * MIB), head);
    let unmetered = settled_bytes(&sim) - before;
    assert!(mount.stop().success());

    // 37 MiB of a 40 MiB budget: past 90%, and enough left for the same read.
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path(), "", "traffic_budget = \"40MiB\"\ntraffic_period = \"day\""));
    assert_eq!(read_all(&mount.path("/links/fill.bin")).unwrap().len() as u64, 37 * MIB);
    let (_, out, _) = run(&["stats", mount.dir.path().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out).contains("traffic_state=soft"), "{}", String::from_utf8_lossy(&out));
    let before = settled_bytes(&sim);
    assert_eq!(read_head(&mount.path(&format!("/links{movie}")), 2 * MIB), head);
    let metered = settled_bytes(&sim) - before;
    assert!(mount.stop().success());

    assert_eq!(metered, 2 * MIB, "past the soft mark: the blocks read, nothing ahead");
    assert!(unmetered >= 4 * MIB, "without a budget read-ahead fetched {unmetered} bytes");
}

#[test]
fn a_budget_without_state_dir_is_a_config_error() {
    let sim = Sim::start(true);
    let text = format!("{}traffic_budget = \"10GiB\"\n", sim.config(SizeMode::Full, KEY, ""));
    let (_dir, path) = write_config(&text);
    let (code, out, err) = run(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{}{err}", String::from_utf8_lossy(&out));
    assert!(err.contains("storage[1].traffic_budget") && err.contains("set `state_dir`"), "{err}");
    assert_eq!(sim.stats().requests, 0);
}
