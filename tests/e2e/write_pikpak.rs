//! End-to-end writes through a real mount into the simulated PikPak (issue 13): what `cp`,
//! `mv`, `rm`, `mkdir` and friends leave on the provider, byte for byte, through faults and
//! restarts. Assertions are on the simulator's stored bytes, trash and counters, and on errnos;
//! waits are bounded polls of the simulator, never timings.

use crate::common;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Mount, Sim, fuse_tests_enabled, read_all, write_config};
use panmount::sim::pikpak::PutFault;

/// A PikPak storage at `/pikpak` whose uploads are staged in `state`.
fn config(sim: &Sim, state: &Path, extra: &str) -> String {
    let b = sim.handle().base_url();
    format!(
        "state_dir = \"{}\"\n[[storage]]\npath = \"/pikpak\"\ndriver = \"pikpak\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\n\
         username = \"alice@example.com\"\npassword = \"secret\"\n{extra}\n",
        state.display()
    )
}

fn count(sim: &Sim, f: impl Fn(&panmount::sim::pikpak::Counters) -> &std::sync::atomic::AtomicU64) -> u64 {
    f(&sim.handle().pikpak.counters).load(Ordering::Relaxed)
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
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

/// Wait (bounded) until the simulator holds a complete file at `path` with exactly `bytes`.
fn wait_stored(sim: &Sim, mount: &Mount, path: &str, bytes: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let node = sim.handle().pikpak.node(path);
        if let Some(n) = &node
            && n.phase == "PHASE_TYPE_COMPLETE"
            && !n.trashed
            && sim.handle().pikpak.bytes(path).as_deref() == Some(bytes)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never reached the provider intact: {node:?}\n{}", mount.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait (bounded) until `path` is in the simulator's trash.
fn wait_trashed(sim: &Sim, mount: &Mount, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sim.handle().pikpak.trashed_paths().iter().any(|p| p == path) {
        assert!(Instant::now() < deadline, "{path} never reached the trash\n{}", mount.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn write_file(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(bytes).unwrap();
    drop(f);
}

fn errno_of<T>(result: std::io::Result<T>) -> i32 {
    result.err().and_then(|e| e.raw_os_error()).unwrap_or(0)
}

#[test]
fn cp_of_a_file_and_a_tree_reaches_the_provider_and_a_fresh_mount_reads_it_back() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path(), ""));
    let big = random_bytes(40 << 20, 1);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("big.bin"), &big).unwrap();
    let tree = src.path().join("tree");
    let mut files = Vec::new();
    for i in 0..200 {
        let dir = tree.join(format!("d{}", i % 7));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = random_bytes(1000 + i * 37, 100 + i as u64);
        std::fs::write(dir.join(format!("f{i}.dat")), &bytes).unwrap();
        files.push((format!("/tree/d{}/f{i}.dat", i % 7), bytes));
    }
    let st = std::process::Command::new("cp")
        .arg("-r")
        .arg(src.path().join("big.bin"))
        .arg(&tree)
        .arg(mount.path("/pikpak"))
        .status()
        .unwrap();
    assert!(st.success(), "cp failed:\n{}", mount.log());
    // Listed at once, with its size, and read back from staging before it lands.
    assert_eq!(std::fs::metadata(mount.path("/pikpak/big.bin")).unwrap().len(), big.len() as u64);
    wait_stored(&sim, &mount, "/big.bin", &big);
    for (path, bytes) in &files {
        wait_stored(&sim, &mount, path, bytes);
    }
    assert!(mount.stop().success());
    assert_eq!(count(&sim, |c| &c.batch_deletes), 0);

    // A fresh mount with empty caches reads them back from the provider.
    let fresh_state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, fresh_state.path(), ""));
    assert_eq!(read_all(&mount.path("/pikpak/big.bin")).unwrap(), big);
    for (path, bytes) in files.iter().step_by(13) {
        assert_eq!(&read_all(&mount.path(&format!("/pikpak{path}"))).unwrap(), bytes, "{path}");
    }
    assert!(mount.stop().success());
}

#[test]
fn content_the_provider_has_is_not_sent_again() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path(), ""));
    let bytes = random_bytes(3 << 20, 7);
    write_file(&mount.path("/pikpak/one.bin"), &bytes);
    wait_stored(&sim, &mount, "/one.bin", &bytes);
    let sent = count(&sim, |c| &c.store_body_bytes);
    assert!(sent >= bytes.len() as u64);
    write_file(&mount.path("/pikpak/two.bin"), &bytes);
    wait_stored(&sim, &mount, "/two.bin", &bytes);
    assert_eq!(count(&sim, |c| &c.store_body_bytes), sent, "the second copy sent no byte");
    assert_eq!(count(&sim, |c| &c.instant_uploads), 1);
    assert!(mount.stop().success());
}

#[test]
fn folders_renames_moves_replace_and_trash() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path(), ""));
    let p = |rel: &str| mount.path(&format!("/pikpak{rel}"));

    // mkdir exists on the provider when it returns; rmdir of a non-empty folder is ENOTEMPTY.
    std::fs::create_dir(p("/New")).unwrap();
    assert!(sim.handle().pikpak.node("/New").is_some_and(|n| n.is_dir));
    assert_eq!(errno_of(std::fs::create_dir(p("/New"))), libc::EEXIST);
    let a = random_bytes(100_000, 2);
    write_file(&p("/New/a.txt"), &a);
    wait_stored(&sim, &mount, "/New/a.txt", &a);
    assert_eq!(errno_of(std::fs::remove_dir(p("/New"))), libc::ENOTEMPTY);

    // Rename, move, rename and move at once.
    std::fs::rename(p("/New/a.txt"), p("/New/b.txt")).unwrap();
    wait_stored(&sim, &mount, "/New/b.txt", &a);
    std::fs::create_dir(p("/Other")).unwrap();
    std::fs::rename(p("/New/b.txt"), p("/Other/b.txt")).unwrap();
    wait_stored(&sim, &mount, "/Other/b.txt", &a);
    std::fs::rename(p("/Other/b.txt"), p("/New/c.txt")).unwrap();
    wait_stored(&sim, &mount, "/New/c.txt", &a);
    assert!(sim.handle().pikpak.node("/Other/b.txt").is_none());
    assert_eq!(std::fs::read_dir(p("/Other")).unwrap().count(), 0);

    // Replace: the old target goes to the trash, the source takes its name.
    let d = random_bytes(5000, 3);
    write_file(&p("/New/d.txt"), &d);
    wait_stored(&sim, &mount, "/New/d.txt", &d);
    std::fs::rename(p("/New/d.txt"), p("/New/c.txt")).unwrap_or_else(|e| panic!("{e}\n{}", mount.log()));
    wait_stored(&sim, &mount, "/New/c.txt", &d);
    assert_eq!(read_all(&p("/New/c.txt")).unwrap(), d);
    assert!(
        sim.handle().pikpak.trashed_paths().contains(&"/New/c.txt".to_string()),
        "{:?}",
        sim.handle().pikpak.trashed_paths()
    );

    // rm and rmdir go to the trash, never a permanent delete.
    std::fs::remove_file(p("/New/c.txt")).unwrap();
    assert!(!p("/New/c.txt").exists());
    std::fs::remove_dir(p("/Other")).unwrap();
    let trashed = sim.handle().pikpak.trashed_paths();
    assert!(trashed.contains(&"/Other".to_string()), "{trashed:?}");
    assert_eq!(count(&sim, |c| &c.batch_deletes), 0);
    assert_eq!(errno_of(std::fs::remove_dir(p("/Nope"))), libc::ENOENT);

    // symlink, hard link: EPERM, nothing on the provider.
    assert_eq!(errno_of(std::os::unix::fs::symlink("x", p("/New/l"))), libc::EPERM);
    assert!(mount.stop().success());
}

#[test]
fn mv_across_storages_copies_and_read_only_storages_refuse_writes() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let b = sim.handle().base_url();
    let id = sim.handle().pikpak.knobs().share_id;
    let second = format!(
        "[[storage]]\npath = \"/ro\"\ndriver = \"pikpak\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\n\
         username = \"alice@example.com\"\npassword = \"secret\"\nread_only = true\n\
         [[storage]]\npath = \"/share\"\ndriver = \"pikpak_share\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\nshare_id = \"{id}\"\n\
         [[storage]]\npath = \"/rw2\"\ndriver = \"pikpak\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\n\
         username = \"alice@example.com\"\npassword = \"secret\"\nroot_folder_id = \"{}\"\n\
         [[storage]]\npath = \"/links\"\ndriver = \"123pan_link\"\norigin_urls = {}\n",
        sim.handle().pikpak.id_of("/Docs").unwrap(),
        toml::Value::String(sim.tree(panmount::sim::SizeMode::Full))
    );
    let mount = Mount::start(&(config(&sim, state.path(), "") + &second));
    let bytes = random_bytes(70_000, 4);
    write_file(&mount.path("/pikpak/x.bin"), &bytes);
    wait_stored(&sim, &mount, "/x.bin", &bytes);
    // rename(2) across storages is EXDEV; mv then copies and deletes.
    assert_eq!(errno_of(std::fs::rename(mount.path("/pikpak/x.bin"), mount.path("/rw2/x.bin"))), libc::EXDEV);
    let st = std::process::Command::new("mv")
        .arg(mount.path("/pikpak/x.bin"))
        .arg(mount.path("/rw2/x.bin"))
        .status()
        .unwrap();
    assert!(st.success(), "{}", mount.log());
    wait_stored(&sim, &mount, "/Docs/x.bin", &bytes);
    // The source may still have been uploading when mv removed it: it goes to the trash once
    // its upload lands.
    wait_trashed(&sim, &mount, "/x.bin");

    // Read-only storages: EROFS and nothing reaches the provider.
    let (mkdirs, inits) = (count(&sim, |c| &c.mkdirs), count(&sim, |c| &c.upload_inits));
    for dir in ["/ro", "/share", "/links"] {
        assert_eq!(errno_of(std::fs::create_dir(mount.path(&format!("{dir}/n")))), libc::EROFS, "{dir}");
        assert_eq!(errno_of(std::fs::File::create(mount.path(&format!("{dir}/f")))), libc::EROFS, "{dir}");
    }
    assert_eq!(errno_of(std::fs::remove_file(mount.path("/ro/Docs/readme.txt"))), libc::EROFS);
    assert_eq!((count(&sim, |c| &c.mkdirs), count(&sim, |c| &c.upload_inits)), (mkdirs, inits));
    assert!(mount.stop().success());

    // --read-only: the whole mount, whatever the config says.
    let config_file = write_config(&config(&sim, state.path(), ""));
    let ro = Mount::start_full(config_file, tempfile::tempdir().unwrap(), &[], &["-v"], &["--read-only"]);
    assert_eq!(errno_of(std::fs::create_dir(ro.path("/pikpak/n"))), libc::EROFS);
    assert_eq!(errno_of(std::fs::File::create(ro.path("/pikpak/f"))), libc::EROFS);
    assert_eq!(errno_of(std::fs::remove_file(ro.path("/pikpak/rw2"))), libc::EROFS);
    assert_eq!((count(&sim, |c| &c.mkdirs), count(&sim, |c| &c.upload_inits)), (mkdirs, inits));
    assert!(ro.stop().success());
}

#[test]
fn a_closed_file_survives_kill_9_and_arrives_after_restart() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    // Uploads crawl, so the file is surely still on its way when the mount is killed.
    sim.handle().pikpak.update(|k| k.store_bytes_per_sec = Some(50_000));
    let config_file = write_config(&config(&sim, state.path(), ""));
    let config_path = config_file.1.clone();
    let mut mount = Mount::start_at(config_file, tempfile::tempdir().unwrap());
    let bytes = random_bytes(2 << 20, 5);
    write_file(&mount.path("/pikpak/kept.bin"), &bytes);
    let (code, out, _) = common::run(&["uploads", config_path.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(String::from_utf8_lossy(&out).contains("/pikpak/kept.bin"), "{}", String::from_utf8_lossy(&out));
    mount.stop_with(libc::SIGKILL);
    assert!(sim.handle().pikpak.bytes("/kept.bin").is_none());
    sim.handle().pikpak.update(|k| k.store_bytes_per_sec = None);
    let config_file = (tempfile::tempdir().unwrap(), config_path.clone());
    let mount = Mount::start_at(config_file, tempfile::tempdir().unwrap());
    wait_stored(&sim, &mount, "/kept.bin", &bytes);
    assert!(mount.log().contains("resuming uploads"), "{}", mount.log());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out, _) = common::run(&["uploads", config_path.to_str().unwrap()]);
        if String::from_utf8_lossy(&out).contains("no pending uploads") {
            assert_eq!(code, 0);
            break;
        }
        assert!(Instant::now() < deadline, "the journal still holds the upload");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(mount.stop().success());
}

#[test]
fn faults_on_the_way_still_end_with_the_exact_bytes() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path(), ""));
    type Knob = Box<dyn Fn(&mut panmount::sim::pikpak::PikPakKnobs)>;
    let cases: [(&str, Knob); 5] = [
        (
            "forbidden",
            Box::new(|k| {
                k.put_fault = PutFault::Forbidden;
                k.put_fault_count = 2;
            }),
        ),
        (
            "server_error",
            Box::new(|k| {
                k.put_fault = PutFault::ServerError;
                k.put_fault_count = 2;
            }),
        ),
        (
            "reset",
            Box::new(|k| {
                k.put_fault = PutFault::Reset;
                k.put_fault_count = 2;
            }),
        ),
        ("init_429", Box::new(|k| k.init_429_count = 2)),
        ("expired_credentials", Box::new(|k| k.upload_creds_ttl_secs = 0)),
    ];
    for (i, (name, knob)) in cases.iter().enumerate() {
        sim.handle().pikpak.update(|k| knob(k));
        // Above the single-PUT cutoff, so parts are in play.
        let bytes = random_bytes(12 << 20, 10 + i as u64);
        let path = format!("/{name}.bin");
        write_file(&mount.path(&format!("/pikpak{path}")), &bytes);
        if *name == "expired_credentials" {
            // Renewed credentials (a new init) get the normal lifetime again.
            std::thread::sleep(Duration::from_millis(300));
            sim.handle().pikpak.update(|k| k.upload_creds_ttl_secs = 12 * 3600);
        }
        wait_stored(&sim, &mount, &path, &bytes);
    }
    assert_eq!(count(&sim, |c| &c.batch_deletes), 0);
    assert!(mount.stop().success());
}

#[test]
fn fsync_returns_after_the_upload_and_enospc_creates_nothing() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path(), ""));
    let bytes = random_bytes(1 << 20, 6);
    let mut f = std::fs::File::create(mount.path("/pikpak/synced.bin")).unwrap();
    f.write_all(&bytes).unwrap();
    f.sync_all().unwrap();
    let node = sim.handle().pikpak.node("/synced.bin").expect("on the provider when fsync returns");
    assert_eq!(node.phase, "PHASE_TYPE_COMPLETE");
    assert_eq!(sim.handle().pikpak.bytes("/synced.bin").unwrap(), bytes);
    drop(f);

    // A drive too full for the file: ENOSPC, and nothing created on the provider.
    let inits = count(&sim, |c| &c.upload_inits);
    sim.handle().pikpak.update(|k| k.quota_limit = 1);
    let mount2 = {
        assert!(mount.stop().success());
        Mount::start(&config(&sim, state.path(), ""))
    };
    let mut f = std::fs::File::create(mount2.path("/pikpak/huge.bin")).unwrap();
    let err = f.write_all(&random_bytes(8 << 20, 8)).and_then(|()| f.sync_all());
    assert_eq!(errno_of(err), libc::ENOSPC);
    drop(f);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&sim, |c| &c.upload_inits), inits, "no upload was started");
    assert!(sim.handle().pikpak.node("/huge.bin").is_none());
    assert!(mount2.stop().success());
}

#[test]
fn a_4k_write_in_the_middle_of_an_existing_file_and_times_kept() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path(), ""));
    let mut bytes = random_bytes(3 << 20, 9);
    write_file(&mount.path("/pikpak/edit.bin"), &bytes);
    wait_stored(&sim, &mount, "/edit.bin", &bytes);
    let patch = random_bytes(4096, 11);
    let f = std::fs::OpenOptions::new().write(true).open(mount.path("/pikpak/edit.bin")).unwrap();
    f.write_all_at(&patch, 1_000_000).unwrap();
    drop(f);
    bytes[1_000_000..1_004_096].copy_from_slice(&patch);
    wait_stored(&sim, &mount, "/edit.bin", &bytes);
    assert_eq!(read_all(&mount.path("/pikpak/edit.bin")).unwrap(), bytes);

    // utimens is kept (and shown) for the file as uploaded.
    let when = std::time::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    let f = std::fs::File::options().write(true).open(mount.path("/pikpak/edit.bin")).unwrap();
    f.set_modified(when).unwrap();
    drop(f);
    wait_stored(&sim, &mount, "/edit.bin", &bytes);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(std::fs::metadata(mount.path("/pikpak/edit.bin")).unwrap().modified().unwrap(), when);
    assert!(mount.stop().success());
}

#[test]
fn rsync_a_twice_transfers_nothing_the_second_time() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path(), ""));
    let src = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..12u64 {
        let dir = src.path().join(format!("s{}", i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = random_bytes(10_000 + i as usize * 997, 300 + i);
        let path = dir.join(format!("r{i}.dat"));
        std::fs::write(&path, &bytes).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_400_000_000 + i * 86_400)).unwrap();
        files.push((format!("/rs/s{}/r{i}.dat", i % 3), bytes));
    }
    let rsync = |what: &str| {
        let out = std::process::Command::new("rsync")
            .args(["-a", "--stats"])
            .arg(format!("{}/", src.path().display()))
            .arg(mount.path("/pikpak/rs"))
            .output()
            .expect("rsync is installed (.ci/run installs it)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{what}: {text}{}\n{}", String::from_utf8_lossy(&out.stderr), mount.log());
        text
    };
    let first = rsync("first run");
    assert!(first.contains("Number of regular files transferred: 12"), "{first}");
    for (path, bytes) in &files {
        wait_stored(&sim, &mount, path, bytes);
    }
    let second = rsync("second run");
    assert!(second.contains("Number of regular files transferred: 0"), "{second}");
    assert!(mount.stop().success());
}

#[test]
fn a_name_the_mount_escapes_round_trips_through_the_provider() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path(), ""));
    // `／` is how the mount shows a `/` inside a provider's name (README, "Names"): written
    // back, the provider gets the `/`, and the listing shows the same name again.
    let bytes = random_bytes(2000, 12);
    write_file(&mount.path("/pikpak/AC／DC.txt"), &bytes);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim.handle().pikpak.node("/AC/DC.txt").is_none_or(|n| n.phase != "PHASE_TYPE_COMPLETE") {
        assert!(Instant::now() < deadline, "never stored as AC/DC.txt:\n{}", mount.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sim.handle().pikpak.node("/AC").is_none(), "one file named AC/DC.txt, not a folder AC");
    assert!(mount.stop().success());
    let fresh = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, fresh.path(), ""));
    let names: Vec<String> = std::fs::read_dir(mount.path("/pikpak"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.contains(&"AC／DC.txt".to_string()), "{names:?}");
    assert_eq!(read_all(&mount.path("/pikpak/AC／DC.txt")).unwrap(), bytes);
    assert!(mount.stop().success());
}

#[test]
fn fsync_sends_what_was_written_even_after_another_close_and_later_writes_follow() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path(), ""));
    let parts: Vec<Vec<u8>> = (0..3).map(|i| random_bytes(300_000, 30 + i)).collect();
    let mut f = std::fs::File::create(mount.path("/pikpak/open.bin")).unwrap();
    f.write_all(&parts[0]).unwrap();
    // Another descriptor of the file closes (a forked child's copy does, at exec): its close
    // records the writes, and the fsync after it must still send them.
    drop(f.try_clone().unwrap());
    f.sync_all().unwrap();
    assert_eq!(sim.handle().pikpak.bytes("/open.bin").as_deref(), Some(&parts[0][..]), "{}", mount.log());
    // Written on after an fsync: the next fsync sends all of it, in place of the first copy.
    f.write_all(&parts[1]).unwrap();
    f.sync_all().unwrap();
    assert_eq!(sim.handle().pikpak.bytes("/open.bin").unwrap(), parts[..2].concat(), "{}", mount.log());
    // What comes after the last fsync goes up at close.
    f.write_all(&parts[2]).unwrap();
    drop(f);
    let all = parts.concat();
    wait_stored(&sim, &mount, "/open.bin", &all);
    let trashed = sim.handle().pikpak.trashed_paths().iter().filter(|p| *p == "/open.bin").count();
    assert_eq!(trashed, 2, "the copies the fsyncs sent are replaced, not left beside it");
    assert!(sim.handle().pikpak.node("/open(1).bin").is_none());
    assert_eq!(read_all(&mount.path("/pikpak/open.bin")).unwrap(), all);
    assert!(mount.stop().success());
}

#[test]
fn an_upload_that_fails_for_good_is_eio_at_fsync_kept_and_listed() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let state = tempfile::tempdir().unwrap();
    let config_file = write_config(&config(&sim, state.path(), ""));
    let config_path = config_file.1.clone();
    let mount = Mount::start_at(config_file, tempfile::tempdir().unwrap());
    // The mount learns the quota with its first write (and keeps it a minute)...
    write_file(&mount.path("/pikpak/first.txt"), b"first");
    wait_stored(&sim, &mount, "/first.txt", b"first");
    // ...then the drive fills up behind its back: the provider refuses the upload (code 8).
    sim.handle().pikpak.update(|k| k.quota_limit = 1);
    let bytes = random_bytes(1 << 20, 13);
    let mut f = std::fs::File::create(mount.path("/pikpak/refused.bin")).unwrap();
    f.write_all(&bytes).unwrap();
    let synced = f.sync_all();
    assert_eq!(errno_of(synced), libc::EIO, "{}", mount.log());
    drop(f);
    let (code, out, _) = common::run(&["uploads", config_path.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out);
    assert_eq!(code, 1, "{table}");
    assert!(table.contains("failed") && table.contains("/pikpak/refused.bin"), "{table}");
    assert!(mount.log().contains("upload failed for good"), "{}", mount.log());
    // The staged copy is kept, byte for byte, until a restart tries again.
    let staged: Vec<_> = std::fs::read_dir(state.path().join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    assert_eq!(staged.len(), 1);
    assert_eq!(std::fs::read(&staged[0]).unwrap(), bytes);
    assert!(sim.handle().pikpak.node("/refused.bin").is_none());
    assert!(mount.stop().success());
}
