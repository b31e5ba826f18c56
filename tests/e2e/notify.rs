//! End-to-end: library refresh hooks (`[[notify]]`) on a real mount of the `123pan` driver on
//! the simulator (whose listings read the data directory on every call, so a file added there
//! appears on the provider), with a fake Jellyfin (`panmount::sim::media`) that records what
//! it is sent.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Mount, Sim, fuse_tests_enabled, read_all};
use panmount::sim::media::{FakeMedia, Received};
use panmount::sim::pan123::{PASSWORD, PHONE};

const KEY: &str = "e2e-jellyfin-k3y";

/// One `123pan` storage at `/123` whose listings are trusted for a second, and a Jellyfin hook.
fn config(sim: &Sim, state: &Path, media: &FakeMedia) -> String {
    sim.handle().pan123.update(|k| k.list_interval_ms = 25);
    let base = sim.handle().base_url();
    format!(
        "state_dir = \"{}\"\n[cache]\ndir_cache_time = \"1s\"\n[[storage]]\npath = \"/123\"\ndriver = \"123pan\"\n\
         username = \"{PHONE}\"\npassword = \"{PASSWORD}\"\napi_base = \"{base}\"\nlogin_base = \"{base}\"\n\
         list_interval_ms = 250\n\
         [[notify]]\nkind = \"jellyfin\"\nurl = \"{}\"\napi_key = \"{KEY}\"\npath_prefix = \"/media/pan\"\n",
        state.display(),
        media.url()
    )
}

/// A simulator, a fake Jellyfin answering `status`, and a mount telling it (with its state).
fn start(status: u16) -> (Sim, FakeMedia, tempfile::TempDir, Mount) {
    let sim = Sim::start(false);
    let media = sim.rt.block_on(FakeMedia::start(status)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path(), &media));
    (sim, media, state, mount)
}

fn names(mount: &Mount, rel: &str) -> Vec<String> {
    std::fs::read_dir(mount.path(rel)).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

/// Wait (at most 20 s) until `media` has received `n` requests.
fn received(media: &FakeMedia, n: usize, mount: &Mount) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = media.received();
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "{} of {n} requests: {got:#?}\n{}", got.len(), mount.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn paths(request: &Received) -> Vec<String> {
    let body = request.json();
    let updates = body["Updates"].as_array().unwrap_or_else(|| panic!("{body}"));
    updates.iter().map(|u| u["Path"].as_str().unwrap().to_owned()).collect()
}

/// `rel` listed again (after `dir_cache_time`) until it shows `name`.
fn relist_until_shown(mount: &Mount, rel: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !names(mount, rel).iter().any(|n| n == name) {
        assert!(Instant::now() < deadline, "{name} did not appear in {rel}\n{}", mount.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_file_appearing_on_the_provider_is_told_to_jellyfin_once() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, media, _state, mount) = start(204);
    assert!(names(&mount, "/123/Docs").contains(&"readme.txt".to_string()));
    std::thread::sleep(Duration::from_secs(3));
    assert!(media.received().is_empty(), "first listings are no change: {:#?}", media.received());

    std::fs::write(sim.data.path().join("Docs/new episode.txt"), b"new\n").unwrap();
    relist_until_shown(&mount, "/123/Docs", "new episode.txt");
    let got = received(&media, 1, &mount);
    // The batch waits for 2 s of quiet; nothing else changed after it.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(media.received().len(), 1, "one request for the change: {:#?}", media.received());
    let request = &got[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/Library/Media/Updated"));
    assert_eq!(request.header("x-emby-token"), Some(KEY));
    let told = paths(request);
    assert!(told.contains(&"/media/pan/123/Docs".to_string()), "{told:?}");
    // The storage's root may be told too (the folder's time changed in it), nothing else.
    assert!(told.iter().all(|p| p == "/media/pan/123/Docs" || p == "/media/pan/123"), "{told:?}");

    // SIGHUP drops the cached listings; the next one is still compared with the last known.
    std::fs::write(sim.data.path().join("Docs/after hup.txt"), b"new\n").unwrap();
    assert_eq!(unsafe { libc::kill(mount.pid() as i32, libc::SIGHUP) }, 0);
    relist_until_shown(&mount, "/123/Docs", "after hup.txt");
    let got = received(&media, 2, &mount);
    assert!(paths(&got[1]).contains(&"/media/pan/123/Docs".to_string()), "{:?}", paths(&got[1]));

    // A change made through the mount is told once it is on the provider; an unmount right
    // after sends it without waiting for quiet.
    std::fs::create_dir(mount.path("/123/Docs/Season 1")).unwrap();
    let log = mount.log();
    assert!(mount.stop().success());
    let got = media.received();
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(paths(&got[2]).contains(&"/media/pan/123/Docs".to_string()), "{:?}", paths(&got[2]));
    assert!(!log.contains(KEY), "the key is in the log");
}

#[test]
fn a_media_server_that_fails_holds_up_no_read() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, media, _state, mount) = start(500);
    names(&mount, "/123/Docs");
    std::fs::write(sim.data.path().join("Docs/new.txt"), b"new\n").unwrap();
    relist_until_shown(&mount, "/123/Docs", "new.txt");
    received(&media, 1, &mount);
    // While the hook waits to try again, the mount answers as ever.
    let started = Instant::now();
    for _ in 0..3 {
        assert!(names(&mount, "/123/Docs").contains(&"new.txt".to_string()));
        assert_eq!(read_all(&mount.path("/123/Docs/readme.txt")).unwrap(), sim.file_bytes("/Docs/readme.txt"));
        assert_eq!(read_all(&mount.path("/123/Docs/new.txt")).unwrap(), b"new\n");
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert!(started.elapsed() < Duration::from_secs(8), "reads waited: {:?}", started.elapsed());
    // The first retry comes 5 s after the failure.
    received(&media, 2, &mount);
    let log = mount.log();
    assert!(log.contains("telling the media server which folders changed"), "{log}");
    assert!(log.contains("library refresh failed") && log.contains("500"), "{log}");
    assert!(!log.contains(KEY), "the key is in the log:\n{log}");
    assert!(mount.stop().success());
}

#[test]
fn warm_tells_the_folders_changed_since_the_store() {
    let sim = Sim::start(false);
    let media = sim.rt.block_on(FakeMedia::start(204)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let (_dir, path) = common::write_config(&config(&sim, state.path(), &media));
    let warm = || {
        let (code, out, err) = common::run(&["warm", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{}{err}", String::from_utf8_lossy(&out));
    };
    warm();
    assert!(media.received().is_empty(), "a first walk changes nothing: {:#?}", media.received());
    std::fs::write(sim.data.path().join("Movies/Extras/new.mkv"), b"new\n").unwrap();
    warm();
    let got = media.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    let told = paths(&got[0]);
    assert!(told.contains(&"/media/pan/123/Movies/Extras".to_string()), "{told:?}");
    assert!(told.iter().all(|p| p.starts_with("/media/pan/123")), "{told:?}");
}

/// The background revalidation after a restart lists folders the kernel never looked up: their
/// paths come from the stored tree.
#[test]
fn a_change_found_by_the_revalidation_after_a_restart_is_told() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, media, state, mount) = start(204);
    common::walk(&mount.path("/123"));
    assert!(mount.stop().success());
    std::fs::write(sim.data.path().join("Movies/Extras/Deleted Scenes/scene 02.mp4"), b"new\n").unwrap();
    // Every stored listing is past `dir_cache_time` at the restart.
    std::thread::sleep(Duration::from_millis(1500));
    let mount = Mount::start(&config(&sim, state.path(), &media));
    let got = received(&media, 1, &mount);
    let told = paths(&got[0]);
    assert!(told.contains(&"/media/pan/123/Movies/Extras/Deleted Scenes".to_string()), "{told:?}\n{}", mount.log());
    assert!(mount.stop().success());
}
