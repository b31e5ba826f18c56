//! End-to-end: the `pikpak` and `pikpak_share` drivers against the simulated PikPak, through
//! real mounts where the behaviour is user-visible, and through the CLI (`check`, `ls`,
//! `offline`) where it is not. Assertions are on bytes, exit codes, messages and the
//! simulator's counters; never on timing.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::os::unix::fs::FileExt;

use common::{Mount, Sim, fuse_tests_enabled, read_all, run, sha256, write_config};

fn pikpak(sim: &Sim, path: &str, extra: &str) -> String {
    let b = sim.handle().base_url();
    format!(
        "[[storage]]\npath = \"{path}\"\ndriver = \"pikpak\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\n\
         username = \"alice@example.com\"\npassword = \"secret\"\n{extra}\n"
    )
}

fn share(sim: &Sim, path: &str, extra: &str) -> String {
    let b = sim.handle().base_url();
    let id = sim.handle().pikpak.knobs().share_id;
    format!(
        "[[storage]]\npath = \"{path}\"\ndriver = \"pikpak_share\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\nshare_id = \"{id}\"\n{extra}\n"
    )
}

fn counter(sim: &Sim, f: impl Fn(&panmount::sim::pikpak::Counters) -> &std::sync::atomic::AtomicU64) -> u64 {
    f(&sim.handle().pikpak.counters).load(Ordering::Relaxed)
}

#[test]
fn pikpak_conformance_with_paging() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    sim.handle().pikpak.update(|k| k.page_size = 2);
    let mount = Mount::start(&pikpak(&sim, "/pikpak", ""));
    common::conformance(&mount.path("/pikpak"), sim.data.path(), 30);
    // 8 folders, most of them more than 2 entries: paging must have gone past page one.
    assert!(counter(&sim, |c| &c.list_pages) > 10, "{}", sim.handle().pikpak.counters.snapshot());
    let st = nix_statfs(&mount.path("/pikpak"));
    assert!(st > 0, "statfs shows the quota");
    assert!(mount.stop().success());
}

fn nix_statfs(path: &std::path::Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs on a valid C string into a zeroed struct.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    s.f_blocks as u64 * s.f_frsize as u64
}

#[test]
fn share_conformance_with_password_and_paging() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    sim.handle().pikpak.update(|k| {
        k.page_size = 3;
        k.share_password = "pw 1".into();
    });
    let mount = Mount::start(&share(&sim, "/share", "share_password = \"pw 1\""));
    common::conformance(&mount.path("/share"), sim.data.path(), 30);
    assert!(mount.stop().success());
}

#[test]
fn share_password_right_wrong_and_missing() {
    let sim = Sim::start(false);
    sim.handle().pikpak.update(|k| k.share_password = "right".into());
    let text = [
        share(&sim, "/right", "share_password = \"right\""),
        share(&sim, "/wrong", "share_password = \"wrong\""),
        share(&sim, "/missing", ""),
    ]
    .concat();
    let (_dir, config) = write_config(&text);
    let opens = counter(&sim, |c| &c.share_opens);
    let (code, out, err) = run(&["check", config.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 1, "{out}{err}");
    let row =
        |p: &str| out.lines().find(|l| l.starts_with(p)).unwrap_or_else(|| panic!("no row {p}: {out}")).to_owned();
    assert!(row("/right ").contains(" ok "), "{out}");
    assert!(row("/wrong ").contains("password is wrong"), "{out}");
    assert!(row("/missing ").contains("needs a password"), "{out}");
    // A wrong password never loops: a handful of opens in all.
    assert!(counter(&sim, |c| &c.share_opens) - opens < 10);
}

#[test]
fn wrong_password_and_captcha_wall_fail_only_their_storage() {
    let sim = Sim::start(false);
    let text = [pikpak(&sim, "/bad", "").replace("\"secret\"", "\"nope\""), share(&sim, "/share", "")].concat();
    let (_d1, config) = write_config(&text);
    let (code, out, _) = run(&["check", config.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 1, "{out}");
    assert!(out.lines().any(|l| l.starts_with("/bad ") && l.contains("invalid_account_or_password")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("/share ") && l.contains(" ok ")), "{out}");

    sim.handle().pikpak.update(|k| k.captcha_wall = true);
    let token = sim.handle().pikpak.issue_refresh_token();
    let walled = [
        pikpak(&sim, "/walled", ""),
        pikpak(&sim, "/ok", &format!("refresh_token = \"{token}\""))
            .replace("username = \"alice@example.com\"\npassword = \"secret\"\n", ""),
    ]
    .concat();
    let (_d2, config) = write_config(&walled);
    let (code, out, _) = run(&["check", config.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 1, "{out}");
    let row = out.lines().find(|l| l.starts_with("/walled ")).unwrap();
    assert!(row.contains("human check") && row.contains("spritePuzzle.html") && row.contains("captcha_token"), "{row}");
    assert!(out.lines().any(|l| l.starts_with("/ok ") && l.contains(" ok ")), "{out}");

    if !fuse_tests_enabled() {
        return;
    }
    // `check` spent that refresh token; a mount gets a fresh one.
    let token2 = sim.handle().pikpak.issue_refresh_token();
    let mount = Mount::start(&walled.replace(&token, &token2));
    let bytes = read_all(&mount.path("/ok/top level file.txt")).unwrap();
    assert_eq!(bytes, sim.file_bytes("/top level file.txt"));
    let err = std::fs::read_dir(mount.path("/walled")).map(|_| ()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    assert!(mount.log().contains("human check"), "the log says why");
    assert!(mount.stop().success());
}

#[test]
fn refresh_token_rotation_survives_kill_9() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    sim.handle().pikpak.update(|k| k.access_ttl_secs = 2);
    let state = tempfile::tempdir().unwrap();
    let text = format!(
        "state_dir = \"{}\"\n[cache]\ndir_cache_time = \"1s\"\n{}",
        state.path().display(),
        pikpak(&sim, "/pikpak", "")
    );
    let mut mount = Mount::start(&text);
    assert_eq!(read_all(&mount.path("/pikpak/Docs/readme.txt")).unwrap(), sim.file_bytes("/Docs/readme.txt"));
    assert_eq!(counter(&sim, |c| &c.signins), 1);
    // Keep listing until the driver has refreshed (ahead of expiry, or after a 401), then
    // kill -9 at once: the rotated token must already be on disk.
    let deadline = Instant::now() + Duration::from_secs(30);
    while counter(&sim, |c| &c.refreshes) == 0 {
        assert!(Instant::now() < deadline, "no refresh happened:\n{}", mount.log());
        let _ = std::fs::read_dir(mount.path("/pikpak/Movies")).map(|d| d.count());
        std::thread::sleep(Duration::from_millis(100));
    }
    mount.stop_with(libc::SIGKILL);
    let files: Vec<_> = std::fs::read_dir(state.path()).unwrap().map(|e| e.unwrap().path()).collect();
    let file = files.iter().find(|p| p.extension().is_some_and(|e| e == "json")).expect("a state file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(file).unwrap().permissions().mode() & 0o777, 0o600);
    let log = mount.log();
    drop(mount);
    // The restart logs in with the persisted token: no password signin, no refused refresh.
    let mount = Mount::start(&text);
    assert_eq!(
        read_all(&mount.path("/pikpak/Docs/notes #1 (100%).txt")).unwrap(),
        sim.file_bytes("/Docs/notes #1 (100%).txt")
    );
    assert_eq!(counter(&sim, |c| &c.signins), 1, "restart signed in with the password:\n{}", mount.log());
    assert_eq!(counter(&sim, |c| &c.refresh_refused), 0, "{}", mount.log());
    assert!(counter(&sim, |c| &c.refreshes) >= 2);
    // Secrets never reach the logs.
    let all = format!("{log}{}", mount.log());
    assert!(!all.contains("secret") && !all.contains("os.") && !all.contains("ck0."), "{all}");
    assert!(mount.stop().success());
}

#[test]
fn token_captcha_and_link_expiry_mid_read() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let pp = &sim.handle().pikpak;
    pp.update(|k| {
        k.access_ttl_secs = 1;
        k.captcha_ttl_secs = 1;
        k.link_ttl_secs = 1;
    });
    let text = format!("[cache]\nlink_expiry_margin = \"0s\"\n{}", pikpak(&sim, "/pikpak", ""));
    let mount = Mount::start(&text);
    let want = sim.file_bytes("/Movies/movie.mp4");
    let file = std::fs::File::open(mount.path("/pikpak/Movies/movie.mp4")).unwrap();
    let mut head = vec![0u8; 64 * 1024];
    file.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head, want[..head.len()]);
    let before = (counter(&sim, |c| &c.details), counter(&sim, |c| &c.refreshes) + counter(&sim, |c| &c.signins));
    // Access token, captcha token and download link all expire while the file is open.
    std::thread::sleep(Duration::from_millis(2500));
    let mut tail = vec![0u8; want.len() - 3_000_000];
    file.read_exact_at(&mut tail, 3_000_000).unwrap();
    assert_eq!(sha256(&tail), sha256(&want[3_000_000..]));
    let c = pp.counters.snapshot();
    assert!(counter(&sim, |c| &c.details) > before.0, "the expired link was re-minted: {c}");
    assert!(
        counter(&sim, |c| &c.refreshes) + counter(&sim, |c| &c.signins) > before.1,
        "the access token was renewed: {c}"
    );
    assert!(counter(&sim, |c| &c.captcha_refused) >= 1, "an expired captcha was refused and re-minted: {c}");
    drop(file);
    assert!(mount.stop().success());
}

#[test]
fn transcodes_are_never_passed_off_as_the_original() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    sim.handle().pikpak.update(|k| k.transcode = true);
    let text = [
        pikpak(&sim, "/pikpak", "disable_media_link = false"),
        share(&sim, "/share", ""),
        share(&sim, "/transcoded", "use_transcoding_address = true"),
    ]
    .concat();
    let mount = Mount::start(&text);
    let original = sim.file_bytes("/Movies/movie.mp4");
    assert_eq!(sha256(&read_all(&mount.path("/pikpak/Movies/movie.mp4")).unwrap()), sha256(&original));
    assert_eq!(sha256(&read_all(&mount.path("/share/Movies/movie.mp4")).unwrap()), sha256(&original));
    // With the transcoding address, the size shown is the size of the bytes served (the
    // simulator's stand-in transcode of movie.mp4 is the largest other file).
    let stand_in = sim.file_bytes("/Music/Album/01 - Intro.flac");
    let path = mount.path("/transcoded/Movies/movie.mp4");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), stand_in.len() as u64);
    assert_eq!(sha256(&read_all(&path).unwrap()), sha256(&stand_in));
    assert!(mount.stop().success());
}

#[test]
fn offline_add_list_remove_and_rate_limits() {
    let sim = Sim::start(false);
    sim.handle().pikpak.update(|k| k.offline_delay_ms = 200);
    let text = [pikpak(&sim, "/pikpak", ""), share(&sim, "/share", "")].concat();
    let (_dir, config) = write_config(&text);
    let cfg = config.to_str().unwrap();
    let (code, out, err) = run(&[
        "offline",
        "add",
        cfg,
        "--storage",
        "/pikpak",
        "magnet:?xt=urn:btih:0123456789abcdef&dn=ubuntu.iso",
        "--to",
        "/Movies",
    ]);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8(out).unwrap();
    let ids: Vec<&str> = out.lines().collect();
    assert_eq!(ids.len(), 1, "{out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out, err) = run(&["offline", "list", cfg, "--storage", "/pikpak"]);
        assert_eq!(code, 0, "{err}");
        let out = String::from_utf8(out).unwrap();
        let row = out.lines().find(|l| l.starts_with(ids[0])).unwrap_or_else(|| panic!("{out}"));
        assert!(row.contains("ubuntu.iso"), "{row}");
        if row.contains("COMPLETE") {
            assert!(row.contains(" 100 ") && row.contains("100000"), "{row}");
            break;
        }
        assert!(Instant::now() < deadline, "task never completed: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, out, err) = run(&["ls", cfg, "/pikpak/Movies"]);
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).lines().any(|l| l == "ubuntu.iso"));
    let (code, _, err) = run(&["offline", "remove", cfg, "--storage", "/pikpak", ids[0]]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(&["offline", "list", cfg, "--storage", "/pikpak"]);
    assert!(!String::from_utf8_lossy(&out).contains(ids[0]));
    // A storage without the capability, and a folder that does not exist.
    let (code, _, err) = run(&["offline", "list", cfg, "--storage", "/share"]);
    assert_eq!(code, 1);
    assert!(err.contains("/share") && err.contains("no offline downloads"), "{err}");
    let (code, _, err) =
        run(&["offline", "add", cfg, "--storage", "/pikpak", "https://example.com/a.iso", "--to", "/Nope"]);
    assert_eq!(code, 1, "{err}");

    // Rate limits (error_code 10 on drive calls, 4002 on captcha/signin) are backed off.
    sim.handle().pikpak.update(|k| k.rate_limit_burst = 3);
    let (code, out, err) = run(&["ls", cfg, "/pikpak/Docs"]);
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("readme.txt"));
    assert_eq!(counter(&sim, |c| &c.rate_limited), 3);
}

#[test]
fn a_folder_that_changed_is_not_served_from_the_kernels_copy() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let text = format!("[cache]\ndir_cache_time = \"1s\"\n\n{}", pikpak(&sim, "/pikpak", ""));
    let mount = Mount::start(&text);
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(mount.path("/pikpak/Movies"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = names();
    assert!(!before.is_empty() && !before.contains(&"ubuntu.iso".to_string()));
    assert_eq!(names(), before, "the same listing again (the kernel keeps its copy of the folder)");
    // The folder changes on the server: an offline download lands in it.
    let (_dir, config) = write_config(&text);
    let cfg = config.to_str().unwrap();
    let (code, _, err) = run(&[
        "offline",
        "add",
        cfg,
        "--storage",
        "/pikpak",
        "magnet:?xt=urn:btih:00ff&dn=ubuntu.iso",
        "--to",
        "/Movies",
    ]);
    assert_eq!(code, 0, "{err}");
    // Once the listing's validity (1 s) has passed, opening the folder shows the new file:
    // the kernel's cached copy of the old listing must have been dropped.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !names().contains(&"ubuntu.iso".to_string()) {
        assert!(Instant::now() < deadline, "the new file never appeared: {:?}", names());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(mount.stop().success());
}

/// `panmount` started with `args`, its stdout and stderr collected by threads so a test can
/// look at them while it runs; killed when dropped.
struct Running {
    child: std::process::Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
    err: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        use std::io::Read;
        use std::process::{Command, Stdio};
        let mut child = Command::new(common::bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |mut pipe: Box<dyn Read + Send>| {
            let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let sink = text.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
            text
        };
        let out = collect(Box::new(child.stdout.take().unwrap()));
        let err = collect(Box::new(child.stderr.take().unwrap()));
        Running { child, out, err }
    }

    fn out(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// The exit code, waiting at most `secs` seconds.
    fn wait(&mut self, secs: u64) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // let the readers drain the pipes
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "still running after {secs} s:\n{}\n{}",
                self.out(),
                self.err.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn offline_list_watch_follows_a_task_to_the_end_and_stops() {
    let sim = Sim::start(false);
    sim.handle().pikpak.update(|k| k.offline_delay_ms = 3000);
    let (_dir, config) = write_config(&pikpak(&sim, "/pikpak", ""));
    let cfg = config.to_str().unwrap();
    let (code, out, err) =
        run(&["offline", "add", cfg, "--storage", "/pikpak", "magnet:?xt=urn:btih:feedface&dn=watched.iso"]);
    assert_eq!(code, 0, "{err}");
    let id = String::from_utf8(out).unwrap().trim().to_owned();

    // Not a terminal: the header once, then a row each time the task changes; exit 0 by itself.
    let mut watch = Running::start(&["offline", "list", cfg, "--storage", "/pikpak", "--watch", "--interval", "1"]);
    assert_eq!(watch.wait(30), 0);
    let out = watch.out();
    let err = watch.err.lock().unwrap().clone();
    assert_eq!(out.lines().filter(|l| l.starts_with("ID ")).count(), 1, "{out}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with(&id)).collect();
    assert!(rows.len() >= 2 && rows[0].contains("RUNNING"), "{out}");
    assert!(rows.last().unwrap().contains("COMPLETE") && rows.last().unwrap().contains(" 100 "), "{out}");
    assert!(rows.windows(2).all(|w| w[0] != w[1]), "only changed rows are printed: {out}");
    assert!(err.contains("no offline task is running"), "{err}");

    // --follow keeps watching with nothing running; Ctrl-C ends it with 0.
    let mut follow = Running::start(&["offline", "list", cfg, "--storage", "/pikpak", "--watch", "--follow"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !follow.out().contains(&id) {
        assert!(Instant::now() < deadline, "no table within 20 s: {}", follow.err.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(follow.child.try_wait().unwrap().is_none(), "--follow must not stop by itself");
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(follow.child.id() as i32, libc::SIGINT) };
    assert_eq!(follow.wait(10), 0);

    // Bad intervals and --follow without --watch are usage mistakes.
    for args in [&["--watch", "--interval", "0"][..], &["--follow"], &["--interval", "5"]] {
        let (code, _, err) = run(&[&["offline", "list", cfg, "--storage", "/pikpak"][..], args].concat());
        assert_eq!(code, 2, "{args:?}: {err}");
    }
}
