//! What failures and odd inputs do to what a user sees; each test's name is the promise.
//! Through real mounts where the behaviour is the kernel's to see, else through the core with
//! the real drivers; assertions are on entries, errnos, logs and the simulator's counters.

use crate::common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::{Mount, Sim, fuse_tests_enabled};
use panmount::config::Config;
use panmount::fs::Fs;
use panmount::sim::SizeMode;
use panmount::sim::pikpak::Counters;

fn pikpak(sim: &Sim, path: &str, password: &str) -> String {
    let b = sim.handle().base_url();
    format!(
        "[[storage]]\npath = \"{path}\"\ndriver = \"pikpak\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\n\
         username = \"alice@example.com\"\npassword = \"{password}\"\n"
    )
}

fn counter(sim: &Sim, f: impl Fn(&Counters) -> &AtomicU64) -> u64 {
    f(&sim.handle().pikpak.counters).load(Ordering::Relaxed)
}

/// The core with the real drivers of `config_text`, without FUSE and without logging in.
fn core(sim: &Sim, config_text: &str) -> Arc<Fs> {
    let config = Config::parse(config_text, Path::new("health.toml")).unwrap();
    let _runtime = sim.rt.enter();
    Arc::new(panmount::app::build_fs(&config).unwrap())
}

fn names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

#[test]
fn a_listing_that_cannot_be_refreshed_stays_served_and_is_logged_once() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let mount = Mount::start(&format!("[cache]\ndir_cache_time = 1\n{}", pikpak(&sim, "/pikpak", "secret")));
    let root = mount.path("/pikpak");
    let before = names(&root).unwrap();
    assert!(before.contains(&"Movies".to_string()), "{before:?}");
    let movies = names(&root.join("Movies")).unwrap();
    sim.knobs().update(|k| k.provider_down = true);
    // Three times the listings expire and listing them again fails: the last good ones stay.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(names(&root).unwrap_or_else(|e| panic!("{e}\n{}", mount.log())), before);
        assert_eq!(names(&root.join("Movies")).unwrap(), movies);
        assert!(std::fs::metadata(root.join("Movies")).unwrap().is_dir());
    }
    assert!(sim.stats().down_refused > 0, "the provider was asked, and refused");
    let log = mount.log();
    assert_eq!(log.matches("serving the last good listings").count(), 1, "{log}");
    // The provider is back: listing works again, and says so.
    sim.knobs().update(|k| k.provider_down = false);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(names(&root).unwrap(), before);
    assert!(mount.log().contains("listing works again"), "{}", mount.log());
}

/// After a restart, listings restored from the store are revalidated in the background; with
/// the provider down they all fail, and stay served.
#[test]
fn stored_listings_that_cannot_be_revalidated_stay_served_and_are_logged_once() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let text = format!(
        "state_dir = \"{}\"\n[cache]\ndir_cache_time = 1\n{}",
        state.path().display(),
        pikpak(&sim, "/pikpak", "secret")
    );
    let mount = Mount::start(&text);
    let root = mount.path("/pikpak");
    let (before, movies) = (names(&root).unwrap(), names(&root.join("Movies")).unwrap());
    assert!(mount.stop().success());
    std::thread::sleep(Duration::from_millis(1500));
    sim.knobs().update(|k| k.provider_down = true);
    let mount = Mount::start(&text);
    let root = mount.path("/pikpak");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !mount.log().contains("serving the last good listings") {
        assert!(Instant::now() < deadline, "no background listing failed:\n{}", mount.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..3 {
        assert_eq!(names(&root).unwrap_or_else(|e| panic!("{e}\n{}", mount.log())), before);
        assert_eq!(names(&root.join("Movies")).unwrap(), movies);
        std::thread::sleep(Duration::from_millis(1500));
    }
    let log = mount.log();
    assert_eq!(log.matches("serving the last good listings").count(), 1, "{log}");
    assert!(!log.contains("background listing failed"), "{log}");
}

/// Requests in different folders (lookups of the same folder already wait on one listing)
/// each check the storage first: while a login is due, all of them wait for one.
#[test]
fn many_requests_waiting_on_a_refused_login_make_one_attempt() {
    let sim = Sim::start(false);
    let fs = core(&sim, &pikpak(&sim, "/pikpak", "wrong"));
    sim.rt.block_on(async {
        let checks: Vec<_> = (0..16)
            .map(|_| {
                let fs = fs.clone();
                tokio::spawn(async move { fs.storages()[0].ensure_up().await })
            })
            .collect();
        for c in checks {
            let err = c.await.unwrap().unwrap_err();
            assert_eq!(err.errno(), libc::EIO, "{err}");
            assert!(err.to_string().contains("Invalid username or password"), "{err}");
        }
        // And a lookup right after takes the same answer.
        let root = fs.resolve("/pikpak").await.unwrap();
        assert_eq!(fs.lookup(root, "Movies").await.err().unwrap().errno(), libc::EIO);
    });
    assert_eq!(counter(&sim, |c| &c.signin_refused), 1, "{}", sim.handle().pikpak.counters.snapshot());
}

#[test]
fn statfs_never_logs_in_and_answers_what_it_knew() {
    let sim = Sim::start(false);
    let text = format!("{}{}", pikpak(&sim, "/good", "secret"), pikpak(&sim, "/bad", "wrong"));
    let fs = core(&sim, &text);
    let snapshot = || sim.handle().pikpak.counters.snapshot();
    sim.rt.block_on(async {
        // Nothing logged in yet: `df` answers at once, without a login or a quota call.
        assert_eq!(fs.statfs().await.total, 0);
        assert_eq!(counter(&sim, |c| &c.captcha_inits), 0, "{}", snapshot());
        assert_eq!(counter(&sim, |c| &c.signins) + counter(&sim, |c| &c.signin_refused), 0, "{}", snapshot());
        assert_eq!(counter(&sim, |c| &c.abouts), 0, "{}", snapshot());
        let logins = fs.login_all().await;
        assert!(logins[0].is_ok() && logins[1].is_err());
        let attempts = counter(&sim, |c| &c.signins) + counter(&sim, |c| &c.signin_refused);
        // The storage that is up reports its quota once a minute, however often `df` runs;
        // the one that is down is not asked, nor logged in to again.
        let total = fs.statfs().await.total;
        assert!(total > 0);
        assert_eq!(fs.statfs().await.total, total);
        assert_eq!(counter(&sim, |c| &c.abouts), 1, "{}", snapshot());
        // The provider goes down: `df` still answers what it knew.
        sim.knobs().update(|k| k.provider_down = true);
        assert_eq!(fs.statfs().await.total, total);
        assert_eq!(counter(&sim, |c| &c.signins) + counter(&sim, |c| &c.signin_refused), attempts);
        assert_eq!(sim.stats().down_refused, 0, "no request reached the simulator");
    });
}

fn link_mount(sim: &Sim) -> Mount {
    // Bare URLs: link files without a size or a time.
    Mount::start(&sim.config(SizeMode::None, common::KEY, ""))
}

#[test]
fn a_name_that_is_not_utf8_is_not_found_not_matched_lossily() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start_with(true, |dir| std::fs::write(dir.join("Docs/a\u{FFFD}b"), b"replacement").unwrap());
    let mount = link_mount(&sim);
    let docs = mount.path("/links/Docs");
    assert_eq!(std::fs::read(docs.join("a\u{FFFD}b")).unwrap(), b"replacement");
    let err = std::fs::metadata(docs.join(OsStr::from_bytes(b"a\xffb"))).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    assert!(mount.stop().success());
}

#[test]
fn what_has_no_time_shows_the_mount_start_not_1970() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    let started = SystemTime::now() - Duration::from_secs(1);
    let mount = link_mount(&sim);
    // The mount's root, the storage's root, a folder and a file of the link tree have no time
    // of their own.
    for rel in ["/", "/links", "/links/Docs", "/links/Docs/readme.txt"] {
        let mtime = std::fs::metadata(mount.path(rel)).unwrap().modified().unwrap();
        assert!(mtime >= started && mtime <= SystemTime::now(), "{rel}: {mtime:?}");
    }
    assert!(mount.stop().success());
}
