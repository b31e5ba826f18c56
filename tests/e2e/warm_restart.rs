//! End-to-end: warm restarts and `panmount warm`, through real mounts of the `123pan` driver on
//! the simulator (its listings read the data directory on every call, so a test changes the
//! tree by changing files, and it counts every list call and enforces a rate limit).
//! Assertions are on the simulator's counters, the mount's own stats file and bytes; the only
//! waits are bounded polls for background work.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Mount, Sim, fuse_tests_enabled, read_all, run, walk, write_config};
use panmount::sim::pan123::{PASSWORD, PHONE, Pan123Counters};

/// The driver spaces list calls by this much; the simulator answers 429 to calls less than
/// `SIM_INTERVAL_MS` apart: much less, since a loaded machine delays one request more than
/// the next, and the simulator sees them closer together than they were sent (at 100 ms, a
/// CI-sized machine under load was seen to deliver two calls in the same millisecond).
const INTERVAL_MS: u64 = 250;
const SIM_INTERVAL_MS: u64 = 25;

/// One `123pan` storage at `/123`, listings kept in `state`, trusted for `ttl`.
fn config(sim: &Sim, state: &Path, ttl: &str) -> String {
    sim.handle().pan123.update(|k| k.list_interval_ms = SIM_INTERVAL_MS);
    let base = sim.handle().base_url();
    format!(
        "state_dir = \"{}\"\n[cache]\ndir_cache_time = \"{ttl}\"\n[[storage]]\npath = \"/123\"\ndriver = \"123pan\"\n\
         username = \"{PHONE}\"\npassword = \"{PASSWORD}\"\napi_base = \"{base}\"\nlogin_base = \"{base}\"\n\
         list_interval_ms = {INTERVAL_MS}\n",
        state.display()
    )
}

fn list_calls(sim: &Sim) -> u64 {
    sim.handle().pan123.count(|c: &Pan123Counters| &c.list_calls)
}

/// Folders of the sample tree, its root included.
fn folders(sim: &Sim) -> u64 {
    1 + walk(sim.data.path()).values().filter(|size| size.is_none()).count() as u64
}

fn stat(mount: &Mount, name: &str) -> u64 {
    let report = std::fs::read_to_string(mount.path("/.panmount-stats")).unwrap();
    report.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{name}="))).unwrap().parse().unwrap()
}

#[test]
fn a_restart_serves_the_tree_without_listing_calls() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let text = config(&sim, state.path(), "1h");
    let mount = Mount::start(&text);
    let tree = walk(&mount.path("/123"));
    assert_eq!(tree, walk(sim.data.path()));
    assert!(list_calls(&sim) >= folders(&sim));
    assert!(mount.stop().success());

    let before = list_calls(&sim);
    let mount = Mount::start(&text);
    assert_eq!(walk(&mount.path("/123")), tree, "ls -R after the restart");
    assert_eq!(list_calls(&sim), before, "a listing call reached the simulator:\n{}", mount.log());
    for rel in ["/Docs/readme.txt", "/Movies/Extras/花絮.mkv"] {
        assert_eq!(read_all(&mount.path(&format!("/123{rel}"))).unwrap(), sim.file_bytes(rel), "{rel}");
    }
    assert_eq!(list_calls(&sim), before);
    assert_eq!(stat(&mount, "listings"), 0);
    assert!(mount.stop().success());
}

#[test]
fn a_change_made_while_unmounted_is_found_in_the_background() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let text = config(&sim, state.path(), "1s");
    let mount = Mount::start(&text);
    assert_eq!(walk(&mount.path("/123")), walk(sim.data.path()));
    assert!(mount.stop().success());

    let docs = sim.data.path().join("Docs");
    std::fs::remove_file(docs.join("readme.txt")).unwrap();
    std::fs::write(docs.join("new.txt"), b"added while unmounted\n").unwrap();
    // Let every stored listing pass `dir_cache_time`: all of them are stale at the restart.
    std::thread::sleep(Duration::from_millis(1500));

    let mount = Mount::start(&text);
    let names = |rel: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(mount.path(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = names("/123/Docs");
        if now.contains(&"new.txt".to_string()) && !now.contains(&"readme.txt".to_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "the change was not picked up: {now:?}\n{}", mount.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(std::fs::metadata(mount.path("/123/Docs/readme.txt")).is_err(), "the removed file is gone");
    assert_eq!(read_all(&mount.path("/123/Docs/new.txt")).unwrap(), b"added while unmounted\n");
    assert!(stat(&mount, "revalidations") >= 1, "{}", std::fs::read_to_string(mount.path("/.panmount-stats")).unwrap());
    assert_eq!(sim.handle().pan123.count(|c| &c.rate_limited), 0, "background listings obey the rate limit");
    assert!(mount.stop().success());
}

#[test]
fn warm_lists_each_folder_once_and_a_mount_then_lists_nothing() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let text = config(&sim, state.path(), "1h");
    let (_dir, path) = write_config(&text);
    let (code, out, err) = run(&["warm", path.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{out}{err}");
    let folders = folders(&sim);
    assert_eq!(list_calls(&sim), folders, "one listing call per folder");
    assert!(
        out.contains(&format!("warmed {folders} folders")) && out.contains(&format!("{folders} listing calls")),
        "{out}"
    );
    assert!(err.contains("warm: ") || folders < 20, "progress on stderr: {err}");
    let api = &sim.handle().pan123;
    assert_eq!(
        api.count(|c| &c.rate_limited),
        0,
        "warm obeyed the rate limit; min gap {} ms",
        api.count(|c| &c.min_list_gap_ms)
    );
    assert!(
        api.count(|c| &c.min_list_gap_ms) >= SIM_INTERVAL_MS,
        "calls {} ms apart",
        api.count(|c| &c.min_list_gap_ms)
    );

    let mount = Mount::start(&text);
    assert_eq!(walk(&mount.path("/123")), walk(sim.data.path()));
    assert_eq!(list_calls(&sim), folders, "the mount listed something:\n{}", mount.log());
    assert!(mount.stop().success());

    // A subtree: its folders only.
    let (code, out, err) = run(&["warm", path.to_str().unwrap(), "/123/Movies"]);
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("warmed 3 folders"), "{}", String::from_utf8_lossy(&out));
    assert_eq!(list_calls(&sim), folders + 3);
}

#[test]
fn warm_exit_codes() {
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let text = config(&sim, state.path(), "1h");
    // No place to keep listings: a config mistake.
    let (_d1, path) = write_config(&text.replace("state_dir", "# state_dir"));
    let (code, _, err) = run(&["warm", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("state_dir"), "{err}");
    // A storage that refuses login fails, by name; the other is still walked.
    let bad = text.replace(&format!("password = \"{PASSWORD}\""), "password = \"wrong\"").replace("/123", "/bad");
    let both = format!("{text}{}", &bad[bad.find("[[storage]]").unwrap()..]);
    let (_d2, path) = write_config(&both);
    let (code, out, err) = run(&["warm", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("storage /bad") && !err.contains("storage /123"), "{err}");
    assert!(String::from_utf8_lossy(&out).contains(&format!("warmed {} folders", folders(&sim))));
    assert!(!err.contains("wrong"), "no password in messages: {err}");
    // A path that does not exist.
    let (code, _, err) = run(&["warm", path.to_str().unwrap(), "/nowhere"]);
    assert_eq!(code, 1, "{err}");
}
