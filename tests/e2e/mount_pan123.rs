//! End-to-end: the `123pan` and `123pan_share` drivers against the simulated 123pan API, through
//! real mounts (FUSE) and through `panmount check/ls/cat` (no FUSE) for the refusal paths.
//! Every byte read is compared with the file the simulator serves.

use crate::common;

use std::path::Path;

use common::{Mount, Sim, fuse_tests_enabled, read_all, run, sha256, write_config};
use panmount::sim::pan123::{LoginFault, MAIL, PASSWORD, PHONE, Pan123Counters, Pan123Sim};

/// A `123pan` storage at `/123` for `username`, listing at most once per `interval_ms`.
fn personal_as(sim: &Sim, username: &str, password: &str, interval_ms: u64, extra: &str) -> String {
    let base = sim.handle().base_url();
    format!(
        "[[storage]]\npath = \"/123\"\ndriver = \"123pan\"\nusername = \"{username}\"\npassword = \"{password}\"\n\
         api_base = \"{base}\"\nlogin_base = \"{base}\"\nlist_interval_ms = {interval_ms}\n{extra}\n"
    )
}

fn personal(sim: &Sim, interval_ms: u64) -> String {
    personal_as(sim, PHONE, PASSWORD, interval_ms, "")
}

/// A `123pan_share` storage at `path`.
fn share(sim: &Sim, path: &str, key: &str, extra: &str) -> String {
    let base = sim.handle().base_url();
    format!(
        "[[storage]]\npath = \"{path}\"\ndriver = \"123pan_share\"\nshare_key = \"{key}\"\napi_base = \"{base}\"\n\
         list_interval_ms = 20\n{extra}\n"
    )
}

fn api(sim: &Sim) -> &Pan123Sim {
    &sim.handle().pan123
}

fn count(sim: &Sim, f: impl FnOnce(&Pan123Counters) -> &std::sync::atomic::AtomicU64) -> u64 {
    api(sim).count(f)
}

/// `panmount COMMAND CONFIG [rest]`: (exit code, stdout, stderr).
fn cli(command: &str, config: &str, rest: &[&str]) -> (i32, Vec<u8>, String) {
    let (_dir, path) = write_config(config);
    let mut args = vec![command, path.to_str().unwrap()];
    args.extend_from_slice(rest);
    run(&args)
}

/// `n` small files of different sizes in `dir` (under the sim's data dir).
fn many_files(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        std::fs::write(dir.join(format!("entry {i:04}.txt")), format!("entry {i}\n").repeat(i % 5)).unwrap();
    }
}

fn assert_eio(result: std::io::Result<Vec<u8>>, what: &str) {
    match result {
        Err(err) => assert_eq!(err.raw_os_error(), Some(libc::EIO), "{what}: {err}"),
        Ok(v) => panic!("{what}: expected EIO, read {} bytes", v.len()),
    }
}

#[test]
fn personal_drive_conformance_with_a_1234_entry_folder() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    many_files(&sim.data.path().join("Big folder"), 1234);
    api(&sim).update(|k| k.list_interval_ms = 20);
    let mount = Mount::start(&personal(&sim, 40));
    common::conformance(&mount.path("/123"), sim.data.path(), 40);

    // 1,234 entries at 100 a page: 13 pages for that folder alone, spaced by the driver's
    // limiter so that the server's own limit never answered 429.
    assert!(count(&sim, |c| &c.list_calls) >= 13 + 8, "list calls: {}", count(&sim, |c| &c.list_calls));
    assert_eq!(count(&sim, |c| &c.rate_limited), 0);
    assert!(count(&sim, |c| &c.min_list_gap_ms) >= 20, "min gap {} ms", count(&sim, |c| &c.min_list_gap_ms));
    assert_eq!(count(&sim, |c| &c.signature_refused), 0);
    assert_eq!(count(&sim, |c| &c.logins), 1);

    // UpdateAt (RFC 3339, +08:00) becomes the file's mtime.
    let srt = sim.files.iter().find(|f| f.rel_path == "/Movies/movie.srt").unwrap();
    let shown = std::fs::metadata(mount.path("/123/Movies/movie.srt")).unwrap().modified().unwrap();
    assert_eq!(shown.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(), srt.mtime);

    // user/info feeds statfs: 2 TiB permanent space.
    let c = std::ffi::CString::new(mount.dir.path().to_str().unwrap()).unwrap();
    // SAFETY: statvfs(3) on a valid path into a zeroed struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    let total = st.f_blocks as u64 * st.f_frsize as u64;
    assert!((2_100_000_000_000..=2_200_000_000_000).contains(&total), "statfs total {total}");
    assert!(mount.stop().success());
}

#[test]
fn shares_conform_with_password_and_access_token() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    api(&sim).update(|k| k.list_interval_ms = 10);
    api(&sim).add_share("whole-Share1", "", "AbCd");
    api(&sim).add_share("movies-only", "/Movies", "");
    let config = format!(
        "{}{}",
        // The extraction code is not case-sensitive; the access token is sent when given.
        share(
            &sim,
            "/all",
            "https://www.123pan.com/s/whole-Share1.html",
            "share_password = \"abcd\"\naccess_token = \"tok\""
        ),
        share(&sim, "/movies", "movies-only", "")
    );
    let mount = Mount::start(&config);
    common::conformance(&mount.path("/all"), sim.data.path(), 20);
    common::conformance(&mount.path("/movies"), &sim.data.path().join("Movies"), 10);
    assert!(count(&sim, |c| &c.share_calls_with_token) > 0);
    assert_eq!(count(&sim, |c| &c.share_password_refused), 0);
    assert_eq!(count(&sim, |c| &c.logins), 0, "a share needs no login");
    assert!(mount.stop().success());
}

#[test]
fn share_password_wrong_or_missing_is_a_clear_error() {
    let sim = Sim::start(false);
    api(&sim).add_share("locked", "/Docs", "s3cr");
    for (extra, ok) in [("share_password = \"S3CR\"", true), ("share_password = \"nope\"", false), ("", false)] {
        let before = count(&sim, |c| &c.share_password_refused);
        let (code, out, err) = cli("check", &share(&sim, "/s", "locked", extra), &[]);
        let text = format!("{}{err}", String::from_utf8_lossy(&out));
        if ok {
            assert_eq!(code, 0, "{text}");
        } else {
            assert_eq!(code, 1, "{text}");
            assert!(text.contains("share password is missing or wrong") && text.contains("share_password"), "{text}");
            assert_eq!(count(&sim, |c| &c.share_password_refused), before + 1, "refused once, not retried");
        }
    }
    // With the right password the files are the files.
    let (code, out, err) = cli("cat", &share(&sim, "/s", "locked", "share_password = \"s3cr\""), &["/s/readme.txt"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, sim.file_bytes("/Docs/readme.txt"));
}

#[test]
fn token_expiry_mid_read_logs_in_again() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    api(&sim).update(|k| {
        k.list_interval_ms = 10;
        k.token_ttl_secs = Some(0.3);
    });
    let mount = Mount::start(&personal(&sim, 20));
    // Links die after 0.3 s and the read takes seconds: every new link needs
    // download_info, whose token has expired by then. The whole file is asked for at its first
    // read (parallel read-ahead parts), so the requests after a link died are resumes: every
    // body is cut after 300 kB, which takes over a second at this speed.
    sim.knobs().update(|k| {
        k.link_ttl_secs = Some(0.3);
        k.throughput_bytes_per_sec = Some(256 * 1024);
        k.reset_after_bytes = Some(300_000);
    });
    let bytes = read_all(&mount.path("/123/Movies/movie.mp4")).unwrap();
    assert_eq!(sha256(&bytes), sha256(&sim.file_bytes("/Movies/movie.mp4")));
    assert!(sim.stats().refused_403 >= 1, "the read should have outlived a link");
    assert!(count(&sim, |c| &c.unauthorized) >= 1);
    assert!(count(&sim, |c| &c.logins) >= 2, "logins: {}", count(&sim, |c| &c.logins));
    assert!(mount.log().contains("logging in again"), "{}", mount.log());
    assert!(mount.stop().success());
}

#[test]
fn clock_skew_beyond_the_window_is_refused_clearly() {
    let sim = Sim::start(false);
    // The server's clock runs an hour ahead of ours; it allows 10 minutes.
    api(&sim).update(|k| k.clock_offset_secs = 3600);
    let (code, out, err) = cli("check", &personal(&sim, 0), &[]);
    let text = format!("{}{err}", String::from_utf8_lossy(&out));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("request signature") && text.contains("clock"), "{text}");
    assert!(count(&sim, |c| &c.signature_refused) >= 1);
    // Five minutes off is within the window.
    api(&sim).update(|k| k.clock_offset_secs = -300);
    let (code, _, err) = cli("check", &personal(&sim, 0), &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn both_hop_variants_reach_the_cdn_with_its_referer() {
    let sim = Sim::start(false);
    api(&sim).update(|k| k.list_interval_ms = 0);
    let config = personal(&sim, 0);
    for (hop_json, rel) in [(false, "/Docs/readme.txt"), (true, "/Music/Album/cover.jpg")] {
        api(&sim).update(|k| k.hop_json = hop_json);
        let (code, out, err) = cli("cat", &config, &[&format!("/123{rel}")]);
        assert_eq!(code, 0, "hop_json {hop_json}: {err}");
        assert_eq!(out, sim.file_bytes(rel), "hop_json {hop_json}");
    }
    assert_eq!(count(&sim, |c| &c.hops), 2);
    // The CDN insists on the Referer carried with the link: nothing was refused.
    assert_eq!(sim.stats().refused_403, 0);
    let (_, out, _) = cli("cat", &config, &["/123/Music/Album/cover.jpg", "--range", "100-199"]);
    assert_eq!(out, sim.file_bytes("/Music/Album/cover.jpg")[100..200]);
}

/// The `panmount stats` line of `/123`.
fn stats_line(mount: &Mount) -> String {
    let (_, out, _) = run(&["stats", mount.dir.path().to_str().unwrap()]);
    String::from_utf8(out).unwrap().lines().find(|l| l.starts_with("storage=/123 ")).unwrap().to_string()
}

/// Code 5113 marks the storage spent by itself (no budget configured): one `download_info`
/// answered 5113, then nothing asked of the provider until the hourly re-check or a restart.
#[test]
fn traffic_exhausted_marks_the_storage_spent_until_it_asks_again() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    api(&sim).update(|k| k.list_interval_ms = 10);
    let state = tempfile::tempdir().unwrap();
    let config = format!("state_dir = \"{}\"\n{}", state.path().display(), personal(&sim, 20));
    let mount = Mount::start(&config);
    assert_eq!(std::fs::metadata(mount.path("/123/Docs/readme.txt")).unwrap().len(), 100);
    api(&sim).update(|k| k.traffic_exhausted = true);
    assert_eio(read_all(&mount.path("/123/Docs/readme.txt")), "readme");
    assert_eq!(count(&sim, |c| &c.download_info), 1);
    let line = stats_line(&mount);
    assert!(line.contains(" traffic_budget=none traffic_state=exhausted traffic_resets="), "{line}");

    // Spent: neither download endpoint nor the CDN is asked, even once traffic is back.
    assert_eio(read_all(&mount.path("/123/top level file.txt")), "top level file");
    api(&sim).update(|k| k.traffic_exhausted = false);
    assert_eio(read_all(&mount.path("/123/Docs/readme.txt")), "readme again");
    assert_eq!((count(&sim, |c| &c.download_info), count(&sim, |c| &c.hops)), (1, 0));
    assert_eq!(sim.stats().requests, 0);
    let log = mount.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("download traffic is spent")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("storage /123") && lines[0].contains("5113"), "{}", lines[0]);
    assert!(lines[0].contains("asking again once an hour"), "{}", lines[0]);
    assert!(mount.stop().success());

    // A restart keeps the mark, and asks at once: the link handed out clears it.
    let mount = Mount::start(&config);
    assert!(stats_line(&mount).contains("traffic_state=exhausted"), "{}", stats_line(&mount));
    assert_eq!(read_all(&mount.path("/123/Docs/readme.txt")).unwrap(), sim.file_bytes("/Docs/readme.txt"));
    assert!(!stats_line(&mount).contains("traffic_"), "{}", stats_line(&mount));
    assert!(mount.stop().success());
}

#[test]
fn rate_limits_back_off_then_succeed() {
    let sim = Sim::start(false);
    many_files(&sim.data.path().join("Many"), 30);
    // Our limiter off, the server's on, small pages: most list calls are answered 429 first.
    api(&sim).update(|k| {
        k.list_interval_ms = 150;
        k.page_size = 5;
    });
    let (code, out, err) = cli("ls", &personal(&sim, 0), &["/123/Many"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8_lossy(&out).lines().count(), 30);
    assert!(count(&sim, |c| &c.rate_limited) > 0);
    // Code 429 on download_info: backed off, then the bytes.
    api(&sim).update(|k| {
        k.list_interval_ms = 0;
        k.inject_code = 429;
        k.inject_count = 2;
    });
    let (code, out, err) = cli("cat", &personal(&sim, 0), &["/123/Docs/readme.txt"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, sim.file_bytes("/Docs/readme.txt"));
    assert_eq!(count(&sim, |c| &c.injected), 2);
}

#[test]
fn login_refusals_are_clear_and_not_retried() {
    let sim = Sim::start(false);
    api(&sim).update(|k| k.list_interval_ms = 0);
    let cases = [
        (Some(LoginFault::AbroadRisk), PASSWORD, "SMS code"),
        (Some(LoginFault::TooFrequent), PASSWORD, "wait a few minutes"),
        (None, "wrong-password", "check username and password"),
    ];
    for (fault, password, hint) in cases {
        api(&sim).update(|k| k.login_fault = fault);
        let before = count(&sim, |c| &c.login_refused);
        let (code, out, err) = cli("check", &personal_as(&sim, PHONE, password, 0, ""), &[]);
        let text = format!("{}{err}", String::from_utf8_lossy(&out));
        assert_eq!(code, 1, "{text}");
        assert!(text.contains(hint), "{hint}: {text}");
        assert!(!text.contains(password) || password == PASSWORD, "the password must not be printed");
        assert_eq!(count(&sim, |c| &c.login_refused), before + 1, "{hint}: one attempt, no retry loop");
    }
    // The e-mail form logs in too; a 401 mid-session logs in again once and carries on.
    api(&sim).update(|k| {
        k.login_fault = None;
        k.inject_code = 401;
        k.inject_count = 1;
    });
    let logins = count(&sim, |c| &c.logins);
    let (code, out, err) = cli("ls", &personal_as(&sim, MAIL, PASSWORD, 0, ""), &["/123/Docs"]);
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("readme.txt"));
    assert_eq!(count(&sim, |c| &c.logins), logins + 2);
}
