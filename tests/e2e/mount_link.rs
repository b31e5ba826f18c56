//! End-to-end: a real `panmount mount` of a 123pan_link tree served by the simulator, read with
//! ordinary file APIs. Every test compares bytes with the files the simulator serves.

use crate::common;

use std::os::unix::fs::FileExt;
use std::time::Duration;

use common::{KEY, Mount, Sim, fuse_tests_enabled, read_all, sha256, walk};
use panmount::sim::SizeMode;

#[test]
fn tree_sizes_and_checksums_match() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    // Mixed: every other file is listed without a size and must be learned from the server.
    let mount = Mount::start(&sim.config(SizeMode::Mixed, KEY, ""));
    common::conformance(&mount.path("/links"), sim.data.path(), 50);
    // The root lists the storage folder; mtimes of listed files come from the tree text.
    let names: Vec<_> =
        std::fs::read_dir(mount.dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["links"]);
    let srt = sim.files.iter().find(|f| f.rel_path == "/Movies/movie.srt").unwrap();
    let meta = std::fs::metadata(mount.path("/links/Movies/movie.srt")).unwrap();
    let shown = meta.modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // Listed as `size:mtime:URL` it shows the tree's mtime; listed as a bare URL, the epoch.
    assert!(shown == srt.mtime || shown == 0, "mtime {shown}, tree says {}", srt.mtime);
    assert!(mount.stop().success());
}

#[test]
fn random_ranged_reads_are_exact() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    let mount = Mount::start(&sim.config(SizeMode::Full, KEY, ""));
    common::random_preads(&mount.path("/links"), sim.data.path(), 200);
    assert!(mount.stop().success());
}

#[test]
fn slow_read_spanning_link_expiries_succeeds() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    // The whole file is asked for at its first read (parallel read-ahead parts), so requests
    // after the first links expired come from resumes: every body is cut after 300 kB, which
    // takes over a second at this speed, three times the links' life.
    sim.knobs().update(|k| {
        k.link_ttl_secs = Some(0.4);
        k.throughput_bytes_per_sec = Some(256 * 1024);
        k.reset_after_bytes = Some(300_000);
    });
    let mount = Mount::start(&sim.config(SizeMode::Full, KEY, ""));
    let bytes = read_all(&mount.path("/links/Movies/movie.mp4")).unwrap();
    assert_eq!(sha256(&bytes), sha256(&sim.file_bytes("/Movies/movie.mp4")));
    let stats = sim.stats();
    assert!(stats.refused_403 >= 2, "the read should have outlived several links: {stats:?}");
    assert!(mount.stop().success());
}

#[test]
fn connection_resets_mid_body_still_yield_exact_bytes() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    sim.knobs().update(|k| k.reset_after_bytes = Some(200_000));
    let mount = Mount::start(&sim.config(SizeMode::Mixed, KEY, ""));
    for rel in ["/Movies/movie.mp4", "/Ünïcödé folder/1 MiB plus one.bin", "/Music/Album/01 - Intro.flac"] {
        let bytes = read_all(&mount.path(&format!("/links{rel}"))).unwrap();
        assert_eq!(sha256(&bytes), sha256(&sim.file_bytes(rel)), "{rel}");
    }
    assert!(sim.stats().resets > 0, "the knob should have cut bodies");
    assert!(mount.stop().success());
}

#[test]
fn server_errors_are_retried() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    let mount = Mount::start(&sim.config(SizeMode::Full, KEY, ""));
    sim.knobs().update(|k| k.error_burst = 3);
    let bytes = read_all(&mount.path("/links/Music/Album/cover.jpg")).unwrap();
    assert_eq!(bytes, sim.file_bytes("/Music/Album/cover.jpg"));
    assert_eq!(sim.stats().injected_errors, 3);
    assert!(mount.stop().success());
}

fn assert_eio(result: std::io::Result<impl std::fmt::Debug>, what: &str) {
    match result {
        Err(err) => assert_eq!(err.raw_os_error(), Some(libc::EIO), "{what}: {err}"),
        Ok(v) => panic!("{what}: expected EIO, read {v:?}"),
    }
}

#[test]
fn a_bad_signature_is_eio_not_garbage() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    let mount = Mount::start(&sim.config(SizeMode::Full, "not-the-key", ""));
    // Listing needs no download: sizes come from the tree text.
    assert_eq!(std::fs::metadata(mount.path("/links/Docs/readme.txt")).unwrap().len(), 100);
    assert_eio(read_all(&mount.path("/links/Docs/readme.txt")).map(|b| b.len()), "wrong key");
    assert!(sim.stats().refused_403 >= 2, "one refusal, one re-mint, then EIO");
    assert!(mount.stop().success());
}

#[test]
fn a_cdn_that_lies_about_ranges_is_eio() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    let mount = Mount::start(&sim.config(SizeMode::Full, KEY, ""));
    let movie = mount.path("/links/Movies/movie.mp4");
    sim.knobs().update(|k| k.wrong_content_range = true);
    let handle = std::fs::File::open(&movie).unwrap();
    let mut buf = vec![0u8; 4096];
    assert_eio(handle.read_at(&mut buf, 2 << 20), "wrong Content-Range");
    // Neither is retried: a CDN that lies once is not asked again for the same read. (The
    // reads are 2 MiB apart: closer, the second would count as sequential and read ahead.)
    assert_eq!(sim.stats().requests, 1);
    sim.knobs().update(|k| {
        k.wrong_content_range = false;
        k.ignore_range = true;
    });
    assert_eio(handle.read_at(&mut buf, 4 << 20), "Range ignored");
    assert_eq!(sim.stats().requests, 2, "{:?}", sim.stats());
    // Once the CDN behaves, the same handle reads the right bytes.
    sim.knobs().reset();
    let n = handle.read_at(&mut buf, 4 << 20).unwrap();
    assert_eq!(&buf[..n], &sim.file_bytes("/Movies/movie.mp4")[4 << 20..(4 << 20) + n]);
    drop(handle);
    assert!(mount.stop().success());
}

#[test]
fn a_slow_read_does_not_block_listing() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    let mount = Mount::start(&sim.config(SizeMode::Full, KEY, ""));
    sim.knobs().update(|k| k.first_byte_delay_ms = 4000);
    let movie = mount.path("/links/Movies/movie.mp4");
    let reader = std::thread::spawn(move || read_all(&movie).map(|b| b.len()));
    std::thread::sleep(Duration::from_millis(300));
    let listed = walk(&mount.path("/links"));
    assert!(listed.len() > 10);
    assert!(!reader.is_finished(), "the listing must finish while the delayed read is still waiting");
    assert_eq!(reader.join().unwrap().unwrap() as u64, 5 * 1024 * 1024 + 12_345);
    assert!(mount.stop().success());
}

#[test]
fn sigterm_and_sigint_unmount_cleanly() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut mount = Mount::start(&sim.config(SizeMode::Full, KEY, ""));
        assert!(std::fs::read_dir(mount.path("/links")).unwrap().count() > 0);
        let status = mount.stop_with(signal);
        assert_eq!(status.code(), Some(0), "exit after signal {signal}:\n{}", mount.log());
        assert!(!common::is_mounted(mount.dir.path()), "still mounted after signal {signal}");
        assert!(!common::is_stale(mount.dir.path()));
        assert!(mount.log().contains("unmounting"), "{}", mount.log());
    }
    // SIGHUP drops the directory caches and the mount goes on serving.
    let mut mount = Mount::start(&sim.config(SizeMode::Full, KEY, ""));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(mount.pid() as i32, libc::SIGHUP) };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !mount.log().contains("SIGHUP: directory caches dropped") {
        assert!(std::time::Instant::now() < deadline, "{}", mount.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read_all(&mount.path("/links/Docs/readme.txt")).unwrap(), sim.file_bytes("/Docs/readme.txt"));
    assert_eq!(mount.stop_with(libc::SIGTERM).code(), Some(0));
}

#[test]
fn a_stale_mount_from_a_crash_is_cleaned() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    let config = sim.config(SizeMode::Full, KEY, "");
    let mut crashed = Mount::start(&config);
    crashed.stop_with(libc::SIGKILL);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !common::is_stale(crashed.dir.path()) {
        assert!(std::time::Instant::now() < deadline, "SIGKILL should leave a stale mount");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Keep the stale mount point; the crashed Mount's drop must not clean it.
    let stale = std::mem::replace(&mut crashed.dir, tempfile::tempdir().unwrap());
    drop(crashed);
    let mount = Mount::start_at(common::write_config(&config), stale);
    assert_eq!(read_all(&mount.path("/links/top level file.txt")).unwrap(), sim.file_bytes("/top level file.txt"));
    assert!(mount.log().contains("stale mount"), "{}", mount.log());
    assert!(mount.stop().success());
}

#[test]
fn owner_mode_read_only_and_missing_names() {
    use std::os::unix::fs::MetadataExt;
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    let mount = Mount::start(&sim.config(SizeMode::Full, KEY, "[fuse]\nuid = 1234\ngid = 5678\numask = \"027\"\n"));
    let file = std::fs::metadata(mount.path("/links/Docs/readme.txt")).unwrap();
    assert_eq!((file.uid(), file.gid(), file.mode() & 0o7777), (1234, 5678, 0o640));
    let dir = std::fs::metadata(mount.path("/links/Docs")).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o7777), (1234, 0o750));
    // Read-only: creating, writing and removing fail with EROFS.
    let erofs = |r: std::io::Result<()>| assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EROFS));
    erofs(std::fs::write(mount.path("/links/Docs/new.txt"), b"x"));
    erofs(std::fs::OpenOptions::new().write(true).open(mount.path("/links/Docs/readme.txt")).map(|_| ()));
    erofs(std::fs::remove_file(mount.path("/links/Docs/readme.txt")));
    erofs(std::fs::create_dir(mount.path("/links/Docs/sub")));
    // Missing names are ENOENT, asked twice (the second from the negative cache).
    for _ in 0..2 {
        let err = std::fs::metadata(mount.path("/links/Movies/movie.en.srt")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
    let err = std::fs::metadata(mount.path("/nope")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    // `mount` shows panmount as the source.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(mounts.lines().any(|l| l.starts_with("panmount:123pan_link ") && l.contains(" fuse")), "{mounts}");
    assert!(mount.stop().success());
}

#[test]
fn stats_report_counts_what_was_served_and_fetched() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    let mount = Mount::start(&sim.config(SizeMode::Full, KEY, ""));
    let movie = read_all(&mount.path("/links/Movies/movie.mp4")).unwrap();
    let (code, out, err) = common::run(&["stats", mount.dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8(out).unwrap();
    let line = out.lines().find(|l| l.starts_with("storage=/links ")).unwrap_or_else(|| panic!("{out}"));
    let field = |name: &str| -> u64 {
        line.split(' ').find_map(|kv| kv.strip_prefix(&format!("{name}="))).unwrap().parse().unwrap()
    };
    assert!(field("bytes_served") >= movie.len() as u64, "{line}");
    assert_eq!(field("bytes_fetched"), sim.stats().bytes_sent, "{line}");
    assert_eq!(field("range_requests"), sim.stats().requests, "{line}");
    assert_eq!(field("link_mints"), 1, "{line}");
    assert!(field("bytes_fetched") <= movie.len() as u64 + (1 << 20), "sequential read fetches each byte once: {line}");
    // The file is found by name but never listed.
    let names: Vec<_> = std::fs::read_dir(mount.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["links"]);
    let (code, _, err) = common::run(&["stats", sim.data.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let mut mount = mount;
    assert!(mount.stop_with(libc::SIGTERM).success());
    assert!(mount.log().contains("storage=/links bytes_served="), "logged at unmount: {}", mount.log());
}

#[test]
fn parallel_ranges_stay_within_the_connection_limit() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = cdn_admitting_three_connections();
    let mount = Mount::start(&sim.config(SizeMode::Full, KEY, "[cache]\nconnections_per_file = 3\n"));
    two_readers_far_apart(&sim, &mount);
    let stats = sim.stats();
    assert_eq!(stats.refused_busy, 0, "never more connections than allowed: {stats:?}");
    assert!(stats.peak_connections >= 2, "the read should use parallel ranges: {stats:?}");
    assert!(mount.stop().success());
}

#[test]
fn a_cdn_that_admits_fewer_connections_than_assumed_costs_a_few_refusals() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = cdn_admitting_three_connections();
    // No connections_per_file: the driver assumes 16 and learns the CDN's 3 from its 503s. A
    // 4 MiB read-ahead cap makes the first window 4 parts of 1 MiB, so the two readers of this
    // 4 MiB file ask for more than 3 at once (the default 16 MiB window would split what is left
    // of the file into 2 MiB parts: 2 per reader).
    let mut mount = Mount::start(&sim.config(SizeMode::Full, KEY, "[cache]\nmax_read_ahead_mb = 4\n"));
    two_readers_far_apart(&sim, &mount);
    let stats = sim.stats();
    assert!(stats.refused_busy > 0, "the readers asked for more than 3 at once: {stats:?}");
    assert!(stats.refused_busy <= 16, "each refusal gives a connection up for good: {stats:?}");
    assert!(mount.stop_with(libc::SIGTERM).success());
    assert!(mount.log().contains("fewer parallel requests"), "{}", mount.log());
}

/// A simulator whose CDN answers a fourth connection to one file with 503, at 4 MiB/s each.
fn cdn_admitting_three_connections() -> Sim {
    let sim = Sim::start(true);
    sim.knobs().update(|k| {
        k.max_connections_per_file = Some(3);
        k.throughput_bytes_per_sec = Some(4 << 20);
    });
    sim
}

/// Two readers of one file, far apart (the limit is per file, as the CDN's is per link, not
/// per handle), each reading 2 MiB: byte-exact.
fn two_readers_far_apart(sim: &Sim, mount: &Mount) {
    let expected = sim.file_bytes("/Movies/movie.mp4");
    let readers: Vec<_> = [0u64, 3 << 20]
        .into_iter()
        .map(|start| {
            let path = mount.path("/links/Movies/movie.mp4");
            std::thread::spawn(move || {
                let file = std::fs::File::open(path).unwrap();
                let mut buf = vec![0u8; 2 << 20];
                let mut got = 0;
                while got < buf.len() {
                    let n = file.read_at(&mut buf[got..], start + got as u64).unwrap();
                    assert!(n > 0);
                    got += n;
                }
                (start, buf)
            })
        })
        .collect();
    for r in readers {
        let (start, buf) = r.join().unwrap();
        assert!(buf[..] == expected[start as usize..start as usize + buf.len()], "bytes at {start}");
    }
}
