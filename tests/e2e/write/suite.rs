//! The conformance suite every writable driver passes (INTERFACE.md "Writing"). Each test takes
//! the [`Drive`]; `conformance!` in the drive's module makes it a `#[test]`.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use super::{Drive, errno_of, random_bytes, write_file};
use crate::common::{self, Mount, read_all, write_config};

/// The suite's tests for one drive, each a `#[test]` of the module that invokes it.
#[macro_export]
macro_rules! conformance {
    ($drive:expr, $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                if $crate::common::fuse_tests_enabled() {
                    super::suite::$test($drive);
                }
            }
        )*
    };
}

/// Every test of the suite, for `conformance!`.
#[macro_export]
macro_rules! conformance_suite {
    ($drive:expr) => {
        $crate::conformance!(
            $drive,
            cp_of_a_file_and_a_tree_reaches_the_provider_and_a_fresh_mount_reads_it_back,
            content_the_provider_has_is_not_sent_again,
            folders_renames_moves_replace_and_trash,
            read_only_storages_and_mounts_refuse_writes,
            a_closed_file_survives_kill_9_and_arrives_after_restart,
            faults_on_the_way_still_end_with_the_exact_bytes,
            fsync_returns_after_the_upload_and_enospc_creates_nothing,
            fsync_sends_what_was_written_even_after_another_close_and_later_writes_follow,
            a_4k_write_in_the_middle_of_an_existing_file_and_times_kept,
            a_file_rewritten_in_place_reads_its_new_bytes_while_its_upload_is_pending,
            a_rewrite_that_does_not_fit_leaves_the_old_file_readable,
            rsync_a_twice_transfers_nothing_the_second_time,
            an_upload_that_fails_for_good_is_eio_at_fsync_kept_and_listed,
        );
    };
}

pub fn cp_of_a_file_and_a_tree_reaches_the_provider_and_a_fresh_mount_reads_it_back(drive: Drive) {
    let sim = drive.sim();
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&drive.config(&sim, state.path(), ""));
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
        .arg(mount.path(drive.root()))
        .status()
        .unwrap();
    assert!(st.success(), "cp failed:\n{}", mount.log());
    // Listed at once, with its size, and read back from staging before it lands.
    assert_eq!(std::fs::metadata(drive.at(&mount, "/big.bin")).unwrap().len(), big.len() as u64);
    drive.wait_stored(&sim, &mount, "/big.bin", &big);
    for (path, bytes) in &files {
        drive.wait_stored(&sim, &mount, path, bytes);
    }
    assert!(mount.stop().success());
    assert_eq!(drive.permanent_deletes(&sim), 0);

    // A fresh mount with empty caches reads them back from the provider.
    let fresh_state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&drive.config(&sim, fresh_state.path(), ""));
    assert_eq!(read_all(&drive.at(&mount, "/big.bin")).unwrap(), big);
    for (path, bytes) in files.iter().step_by(13) {
        assert_eq!(&read_all(&drive.at(&mount, path)).unwrap(), bytes, "{path}");
    }
    assert!(mount.stop().success());
}

pub fn content_the_provider_has_is_not_sent_again(drive: Drive) {
    let sim = drive.sim();
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&drive.config(&sim, state.path(), ""));
    let bytes = random_bytes(3 << 20, 7);
    write_file(&drive.at(&mount, "/one.bin"), &bytes);
    drive.wait_stored(&sim, &mount, "/one.bin", &bytes);
    let sent = drive.sent_bytes(&sim);
    assert!(sent >= bytes.len() as u64);
    write_file(&drive.at(&mount, "/two.bin"), &bytes);
    drive.wait_stored(&sim, &mount, "/two.bin", &bytes);
    assert_eq!(drive.sent_bytes(&sim), sent, "the second copy sent no byte");
    assert_eq!(drive.instant_uploads(&sim), 1);
    assert!(mount.stop().success());
}

pub fn folders_renames_moves_replace_and_trash(drive: Drive) {
    let sim = drive.sim();
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&drive.config(&sim, state.path(), ""));
    let p = |rel: &str| drive.at(&mount, rel);

    // mkdir exists on the provider when it returns; rmdir of a non-empty folder is ENOTEMPTY.
    std::fs::create_dir(p("/New")).unwrap();
    assert!(drive.stored(&sim, "/New").is_some_and(|n| n.is_dir));
    assert_eq!(errno_of(std::fs::create_dir(p("/New"))), libc::EEXIST);
    let a = random_bytes(100_000, 2);
    write_file(&p("/New/a.txt"), &a);
    drive.wait_stored(&sim, &mount, "/New/a.txt", &a);
    assert_eq!(errno_of(std::fs::remove_dir(p("/New"))), libc::ENOTEMPTY);

    // Rename, move, rename and move at once.
    std::fs::rename(p("/New/a.txt"), p("/New/b.txt")).unwrap();
    drive.wait_stored(&sim, &mount, "/New/b.txt", &a);
    std::fs::create_dir(p("/Other")).unwrap();
    std::fs::rename(p("/New/b.txt"), p("/Other/b.txt")).unwrap();
    drive.wait_stored(&sim, &mount, "/Other/b.txt", &a);
    std::fs::rename(p("/Other/b.txt"), p("/New/c.txt")).unwrap();
    drive.wait_stored(&sim, &mount, "/New/c.txt", &a);
    assert!(drive.stored(&sim, "/Other/b.txt").is_none_or(|n| !n.live));
    assert_eq!(std::fs::read_dir(p("/Other")).unwrap().count(), 0);

    // Replace: the old target goes to the trash, the source takes its name.
    let d = random_bytes(5000, 3);
    write_file(&p("/New/d.txt"), &d);
    drive.wait_stored(&sim, &mount, "/New/d.txt", &d);
    std::fs::rename(p("/New/d.txt"), p("/New/c.txt")).unwrap_or_else(|e| panic!("{e}\n{}", mount.log()));
    drive.wait_stored(&sim, &mount, "/New/c.txt", &d);
    assert_eq!(read_all(&p("/New/c.txt")).unwrap_or_else(|e| panic!("{e}\n{}", mount.log())), d);
    let trashed = drive.trashed_paths(&sim);
    assert!(trashed.contains(&"/New/c.txt".to_string()), "{trashed:?}");

    // rm and rmdir go to the trash, never a permanent delete.
    std::fs::remove_file(p("/New/c.txt")).unwrap();
    assert!(!p("/New/c.txt").exists());
    std::fs::remove_dir(p("/Other")).unwrap();
    let trashed = drive.trashed_paths(&sim);
    assert!(trashed.contains(&"/Other".to_string()), "{trashed:?}");
    assert_eq!(drive.permanent_deletes(&sim), 0);
    assert_eq!(errno_of(std::fs::remove_dir(p("/Nope"))), libc::ENOENT);

    // symlink, hard link: EPERM, nothing on the provider.
    assert_eq!(errno_of(std::os::unix::fs::symlink("x", p("/New/l"))), libc::EPERM);
    assert!(mount.stop().success());
}

pub fn read_only_storages_and_mounts_refuse_writes(drive: Drive) {
    let sim = drive.sim();
    let state = tempfile::tempdir().unwrap();
    let ro = drive.storage(&sim, "/ro", "read_only = true");
    let mount = Mount::start(&(drive.config(&sim, state.path(), "") + &ro));
    let (mkdirs, starts) = (drive.mkdirs(&sim), drive.upload_starts(&sim));
    assert_eq!(errno_of(std::fs::create_dir(mount.path("/ro/n"))), libc::EROFS);
    assert_eq!(errno_of(std::fs::File::create(mount.path("/ro/f"))), libc::EROFS);
    let listed = std::fs::read_dir(mount.path("/ro")).unwrap().next().expect("the drive is not empty").unwrap();
    let (victim, is_dir) = (listed.path(), listed.file_type().unwrap().is_dir());
    // A DirEntry holds its folder open: let it go, or the mount stays busy.
    drop(listed);
    let refused = if is_dir { std::fs::remove_dir_all(&victim) } else { std::fs::remove_file(&victim) };
    assert_eq!(errno_of(refused), libc::EROFS, "{}", victim.display());
    assert!(victim.exists());
    assert_eq!((drive.mkdirs(&sim), drive.upload_starts(&sim)), (mkdirs, starts));
    assert!(mount.stop().success());

    // --read-only: the whole mount, whatever the config says.
    let config_file = write_config(&drive.config(&sim, state.path(), ""));
    let ro = Mount::start_full(config_file, tempfile::tempdir().unwrap(), &[], &["-v"], &["--read-only"]);
    assert_eq!(errno_of(std::fs::create_dir(drive.at(&ro, "/n"))), libc::EROFS);
    assert_eq!(errno_of(std::fs::File::create(drive.at(&ro, "/f"))), libc::EROFS);
    assert_eq!((drive.mkdirs(&sim), drive.upload_starts(&sim)), (mkdirs, starts));
    assert!(ro.stop().success());
}

pub fn a_closed_file_survives_kill_9_and_arrives_after_restart(drive: Drive) {
    let sim = drive.sim();
    let state = tempfile::tempdir().unwrap();
    // Uploads crawl, so the file is surely still on its way when the mount is killed.
    drive.throttle(&sim, Some(50_000));
    let (mut mount, config_path) = drive.mount_with_config(&sim, state.path());
    let bytes = random_bytes(2 << 20, 5);
    write_file(&drive.at(&mount, "/kept.bin"), &bytes);
    let (code, out, _) = common::run(&["uploads", config_path.to_str().unwrap()]);
    assert_eq!(code, 0);
    let shown = format!("{}/kept.bin", drive.root());
    assert!(String::from_utf8_lossy(&out).contains(&shown), "{}", String::from_utf8_lossy(&out));
    mount.stop_with(libc::SIGKILL);
    assert!(drive.bytes(&sim, "/kept.bin").is_none());
    drive.throttle(&sim, None);
    let config_file = (tempfile::tempdir().unwrap(), config_path.clone());
    let mount = Mount::start_at(config_file, tempfile::tempdir().unwrap());
    drive.wait_stored(&sim, &mount, "/kept.bin", &bytes);
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

pub fn faults_on_the_way_still_end_with_the_exact_bytes(drive: Drive) {
    let sim = drive.sim();
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&drive.config(&sim, state.path(), ""));
    for (i, case) in drive.fault_cases().iter().enumerate() {
        (case.set)(sim.handle());
        let bytes = random_bytes(drive.multipart_size(), 10 + i as u64);
        let path = format!("/{}.bin", case.name);
        write_file(&drive.at(&mount, &path), &bytes);
        if let Some(after) = case.after {
            std::thread::sleep(Duration::from_millis(300));
            after(sim.handle());
        }
        drive.wait_stored(&sim, &mount, &path, &bytes);
    }
    assert_eq!(drive.permanent_deletes(&sim), 0);
    assert!(mount.stop().success());
}

pub fn fsync_returns_after_the_upload_and_enospc_creates_nothing(drive: Drive) {
    let sim = drive.sim();
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&drive.config(&sim, state.path(), ""));
    let bytes = random_bytes(1 << 20, 6);
    let mut f = std::fs::File::create(drive.at(&mount, "/synced.bin")).unwrap();
    f.write_all(&bytes).unwrap();
    f.sync_all().unwrap();
    assert!(drive.stored(&sim, "/synced.bin").is_some_and(|n| n.live), "on the provider when fsync returns");
    assert_eq!(drive.bytes(&sim, "/synced.bin").unwrap(), bytes);
    drop(f);

    // A drive too full for the file: ENOSPC, and nothing created on the provider.
    let starts = drive.upload_starts(&sim);
    drive.fill_quota(&sim);
    wait_journal_empty(state.path(), &mount);
    let mount2 = {
        assert!(mount.stop().success());
        Mount::start(&drive.config(&sim, state.path(), ""))
    };
    let mut f = std::fs::File::create(drive.at(&mount2, "/huge.bin")).unwrap();
    let err = f.write_all(&random_bytes(8 << 20, 8)).and_then(|()| f.sync_all());
    assert_eq!(errno_of(err), libc::ENOSPC);
    drop(f);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(drive.upload_starts(&sim), starts, "no upload was started\n{}", mount2.log());
    assert!(drive.stored(&sim, "/huge.bin").is_none());
    assert!(mount2.stop().success());
}

pub fn fsync_sends_what_was_written_even_after_another_close_and_later_writes_follow(drive: Drive) {
    let sim = drive.sim();
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&drive.config(&sim, state.path(), ""));
    let parts: Vec<Vec<u8>> = (0..3).map(|i| random_bytes(300_000, 30 + i)).collect();
    let mut f = std::fs::File::create(drive.at(&mount, "/open.bin")).unwrap();
    f.write_all(&parts[0]).unwrap();
    // Another descriptor of the file closes (a forked child's copy does, at exec): its close
    // records the writes, and the fsync after it must still send them.
    drop(f.try_clone().unwrap());
    f.sync_all().unwrap();
    assert_eq!(drive.bytes(&sim, "/open.bin").as_deref(), Some(&parts[0][..]), "{}", mount.log());
    // Written on after an fsync: the next fsync sends all of it, in place of the first copy.
    f.write_all(&parts[1]).unwrap();
    f.sync_all().unwrap();
    assert_eq!(drive.bytes(&sim, "/open.bin").unwrap(), parts[..2].concat(), "{}", mount.log());
    // What comes after the last fsync goes up at close.
    f.write_all(&parts[2]).unwrap();
    drop(f);
    let all = parts.concat();
    drive.wait_stored(&sim, &mount, "/open.bin", &all);
    let trashed = drive.trashed_paths(&sim).iter().filter(|p| *p == "/open.bin").count();
    assert_eq!(trashed, 2, "the copies the fsyncs sent are replaced, not left beside it");
    assert!(drive.stored(&sim, "/open(1).bin").is_none_or(|n| !n.live));
    assert_eq!(read_all(&drive.at(&mount, "/open.bin")).unwrap(), all);
    assert!(mount.stop().success());
}

/// The kernel opens a name it has looked up before without asking again: the inode must show
/// the pending file from the moment it exists, not the provider's older file (whose blocks
/// may well be cached, having just been fetched to stage the rewrite).
pub fn a_file_rewritten_in_place_reads_its_new_bytes_while_its_upload_is_pending(drive: Drive) {
    let sim = drive.sim();
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&drive.config(&sim, state.path(), ""));
    let path = drive.at(&mount, "/again.bin");
    let mut bytes = random_bytes(1 << 20, 12);
    write_file(&path, &bytes);
    drive.wait_stored(&sim, &mount, "/again.bin", &bytes);
    assert_eq!(read_all(&path).unwrap(), bytes);
    // Uploads crawl: the rewrite stays pending while it is read back.
    drive.throttle(&sim, Some(100_000));
    let patch = random_bytes(4096, 13);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&patch, 500_000).unwrap();
    drop(f);
    bytes[500_000..504_096].copy_from_slice(&patch);
    let read = read_all(&path).unwrap();
    assert!(drive.bytes(&sim, "/again.bin").is_some_and(|b| b != bytes), "still uploading while read");
    let first_difference = read.iter().zip(&bytes).position(|(a, b)| a != b);
    assert!(read == bytes, "first difference at {first_difference:?}\n{}", mount.log());
    // Renamed while pending: the name it moves to shows it too (the older file goes to the trash).
    let moved = drive.at(&mount, "/moved.bin");
    std::fs::rename(&path, &moved).unwrap();
    assert!(read_all(&moved).unwrap() == bytes, "{}", mount.log());
    drive.throttle(&sim, None);
    drive.wait_stored(&sim, &mount, "/moved.bin", &bytes);
    assert!(mount.stop().success());
}

/// A rewrite (`O_TRUNC`) refused with `ENOSPC` is dropped: the name shows the provider's file
/// again, through the inode the kernel holds, and reads its bytes.
pub fn a_rewrite_that_does_not_fit_leaves_the_old_file_readable(drive: Drive) {
    let sim = drive.sim();
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&drive.config(&sim, state.path(), ""));
    let bytes = random_bytes(1 << 20, 14);
    write_file(&drive.at(&mount, "/kept.bin"), &bytes);
    drive.wait_stored(&sim, &mount, "/kept.bin", &bytes);
    wait_journal_empty(state.path(), &mount);
    assert!(mount.stop().success());
    // A fresh mount reads the quota of a full drive.
    drive.fill_quota(&sim);
    let mount = Mount::start(&drive.config(&sim, state.path(), ""));
    let path = drive.at(&mount, "/kept.bin");
    assert_eq!(read_all(&path).unwrap(), bytes);
    let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
    assert_eq!(errno_of(f.write_all(&random_bytes(4 << 20, 15))), libc::ENOSPC);
    drop(f);
    // The release that drops the rewrite follows close(2): wait for the name to show the old file.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&path).map(|m| m.len()).ok() != Some(bytes.len() as u64) {
        assert!(std::time::Instant::now() < deadline, "{:?}\n{}", std::fs::metadata(&path), mount.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let read = read_all(&path).unwrap_or_else(|e| panic!("{e}\n{}", mount.log()));
    assert!(read == bytes, "read {} bytes\n{}", read.len(), mount.log());
    assert_eq!(drive.bytes(&sim, "/kept.bin").unwrap(), bytes);
    assert!(mount.stop().success());
}

pub fn a_4k_write_in_the_middle_of_an_existing_file_and_times_kept(drive: Drive) {
    let sim = drive.sim();
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&drive.config(&sim, state.path(), ""));
    let mut bytes = random_bytes(3 << 20, 9);
    write_file(&drive.at(&mount, "/edit.bin"), &bytes);
    drive.wait_stored(&sim, &mount, "/edit.bin", &bytes);
    let patch = random_bytes(4096, 11);
    let f = std::fs::OpenOptions::new().write(true).open(drive.at(&mount, "/edit.bin")).unwrap();
    f.write_all_at(&patch, 1_000_000).unwrap();
    drop(f);
    bytes[1_000_000..1_004_096].copy_from_slice(&patch);
    drive.wait_stored(&sim, &mount, "/edit.bin", &bytes);
    let read = read_all(&drive.at(&mount, "/edit.bin")).unwrap_or_else(|e| panic!("{e}\n{}", mount.log()));
    let first_difference = read.iter().zip(&bytes).position(|(a, b)| a != b);
    assert!(read == bytes, "read {} bytes, first difference at {first_difference:?}\n{}", read.len(), mount.log());

    // utimens is kept (and shown) for the file as uploaded.
    let when = std::time::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    let f = std::fs::File::options().write(true).open(drive.at(&mount, "/edit.bin")).unwrap();
    f.set_modified(when).unwrap();
    drop(f);
    drive.wait_stored(&sim, &mount, "/edit.bin", &bytes);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(std::fs::metadata(drive.at(&mount, "/edit.bin")).unwrap().modified().unwrap(), when);
    assert!(mount.stop().success());
}

pub fn rsync_a_twice_transfers_nothing_the_second_time(drive: Drive) {
    let sim = drive.sim();
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&drive.config(&sim, state.path(), ""));
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
            .arg(drive.at(&mount, "/rs"))
            .output()
            .expect("rsync is installed (.ci/run installs it)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{what}: {text}{}\n{}", String::from_utf8_lossy(&out.stderr), mount.log());
        text
    };
    let first = rsync("first run");
    assert!(first.contains("Number of regular files transferred: 12"), "{first}");
    for (path, bytes) in &files {
        drive.wait_stored(&sim, &mount, path, bytes);
    }
    let second = rsync("second run");
    assert!(second.contains("Number of regular files transferred: 0"), "{second}");
    assert!(mount.stop().success());
}

pub fn an_upload_that_fails_for_good_is_eio_at_fsync_kept_and_listed(drive: Drive) {
    let sim = drive.sim();
    let state = tempfile::tempdir().unwrap();
    let (mount, config_path) = drive.mount_with_config(&sim, state.path());
    // The mount learns the quota with its first write (and keeps it a minute)...
    write_file(&drive.at(&mount, "/first.txt"), b"first");
    drive.wait_stored(&sim, &mount, "/first.txt", b"first");
    // ...then the drive fills up behind its back: the provider refuses the upload.
    drive.fill_quota(&sim);
    let bytes = random_bytes(1 << 20, 13);
    let mut f = std::fs::File::create(drive.at(&mount, "/refused.bin")).unwrap();
    f.write_all(&bytes).unwrap();
    let synced = f.sync_all();
    assert_eq!(errno_of(synced), libc::EIO, "{}", mount.log());
    drop(f);
    let (code, out, _) = common::run(&["uploads", config_path.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out);
    assert_eq!(code, 1, "{table}");
    let shown = format!("{}/refused.bin", drive.root());
    assert!(table.contains("failed") && table.contains(&shown), "{table}");
    assert!(mount.log().contains("upload failed for good"), "{}", mount.log());
    // The staged copy is kept, byte for byte, until a restart tries again.
    let staged: Vec<_> = std::fs::read_dir(state.path().join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    assert_eq!(staged.len(), 1);
    assert_eq!(std::fs::read(&staged[0]).unwrap(), bytes);
    assert!(drive.stored(&sim, "/refused.bin").is_none());
    assert!(mount.stop().success());
}

/// Wait (bounded) until the upload journal in `state` is empty: the kernel sends a file's
/// release after close(2) has returned, and the file lands then; a mount stopped before that
/// uploads it again at its next start.
fn wait_journal_empty(state: &std::path::Path, mount: &Mount) {
    let journal = state.join("uploads");
    let deadline = Instant::now() + Duration::from_secs(30);
    let pending = || {
        std::fs::read_dir(&journal)
            .is_ok_and(|d| d.flatten().any(|e| e.path().extension().is_some_and(|x| x == "json")))
    };
    while pending() {
        assert!(Instant::now() < deadline, "an upload never landed\n{}", mount.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}
