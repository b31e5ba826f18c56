//! Writes through a mount into the simulated 123pan: the conformance suite, plus what only
//! 123pan does (presigned part URLs that expire, a `FileId` that changes at completion, mkdir
//! answered with an existing folder, empty files it may refuse).

use std::io::Write;
use std::time::Duration;

use super::{Drive, errno_of, random_bytes, write_file};
use crate::common::{self, Mount, fuse_tests_enabled, read_all};

crate::conformance_suite!(Drive::Pan123);

const DRIVE: Drive = Drive::Pan123;

#[test]
fn a_three_part_upload_whose_second_part_url_expires_midway() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = DRIVE.sim();
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&DRIVE.config(&sim, state.path(), ""));
    let c = &sim.handle().pan123.counters;
    let (presigns, refused) = (
        c.presign_calls.load(std::sync::atomic::Ordering::Relaxed),
        c.part_403s.load(std::sync::atomic::Ordering::Relaxed),
    );
    sim.handle().pan123.update(|k| k.expire_part = Some(2));
    let bytes = random_bytes(3 << 20, 41);
    write_file(&DRIVE.at(&mount, "/three.bin"), &bytes);
    DRIVE.wait_stored(&sim, &mount, "/three.bin", &bytes);
    let c = &sim.handle().pan123.counters;
    assert_eq!(c.part_403s.load(std::sync::atomic::Ordering::Relaxed) - refused, 1, "part 2's first URL was refused");
    // One call for the three URLs, one refresh for the part left.
    assert_eq!(c.presign_calls.load(std::sync::atomic::Ordering::Relaxed) - presigns, 2);
    assert!(mount.stop().success());
}

#[test]
fn a_new_file_id_at_completion_leaves_no_ghost() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = DRIVE.sim();
    sim.handle().pan123.update(|k| k.new_id_on_complete = true);
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&DRIVE.config(&sim, state.path(), ""));
    let bytes = random_bytes(2 << 20, 42);
    write_file(&DRIVE.at(&mount, "/moved-id.bin"), &bytes);
    DRIVE.wait_stored(&sim, &mount, "/moved-id.bin", &bytes);
    std::thread::sleep(Duration::from_millis(300));
    let names: Vec<String> = std::fs::read_dir(mount.path(DRIVE.root()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("moved-id"))
        .collect();
    assert_eq!(names, ["moved-id.bin"]);
    assert_eq!(read_all(&DRIVE.at(&mount, "/moved-id.bin")).unwrap(), bytes);
    // Acting on it reaches the file the provider made, under its new id.
    std::fs::rename(DRIVE.at(&mount, "/moved-id.bin"), DRIVE.at(&mount, "/renamed-id.bin"))
        .unwrap_or_else(|e| panic!("{e}\n{}", mount.log()));
    DRIVE.wait_stored(&sim, &mount, "/renamed-id.bin", &bytes);
    assert!(mount.stop().success());
}

#[test]
fn mkdir_of_a_name_another_client_took_is_eexist_without_a_duplicate() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = DRIVE.sim();
    let state = tempfile::tempdir().unwrap();
    let other_state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&DRIVE.config(&sim, state.path(), ""));
    let other = Mount::start(&DRIVE.config(&sim, other_state.path(), ""));
    // The first mount has the root listed (and cached); the other makes the folder.
    assert!(!DRIVE.at(&mount, "/Taken").exists());
    std::fs::create_dir(DRIVE.at(&other, "/Taken")).unwrap();
    let mkdirs = DRIVE.mkdirs(&sim);
    assert_eq!(errno_of(std::fs::create_dir(DRIVE.at(&mount, "/Taken"))), libc::EEXIST, "{}", mount.log());
    assert_eq!(DRIVE.mkdirs(&sim), mkdirs, "no second folder");
    assert!(DRIVE.stored(&sim, "/Taken(1)").is_none());
    assert!(other.stop().success());
    assert!(mount.stop().success());
}

#[test]
fn an_empty_file_is_refused_or_instant_as_the_provider_answers() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = DRIVE.sim();
    let state = tempfile::tempdir().unwrap();
    let (mount, config_path) = DRIVE.mount_with_config(&sim, state.path());
    // Refused (as 123pan is reported to do): EIO at fsync, one log line, a row in `uploads`.
    sim.handle().pan123.update(|k| k.refuse_empty = true);
    let f = std::fs::File::create(DRIVE.at(&mount, "/empty.txt")).unwrap();
    assert_eq!(errno_of(f.sync_all()), libc::EIO, "{}", mount.log());
    drop(f);
    assert!(mount.log().contains("refused an empty file"), "{}", mount.log());
    let (code, out, _) = common::run(&["uploads", config_path.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out);
    assert!(code == 1 && table.contains("/123pan/empty.txt"), "{table}");
    // Taken by its MD5 (d41d8cd9...): an instant upload, no byte sent.
    sim.handle().pan123.update(|k| k.refuse_empty = false);
    let mut f = std::fs::File::create(DRIVE.at(&mount, "/empty2.txt")).unwrap();
    f.write_all(b"").unwrap();
    f.sync_all().unwrap_or_else(|e| panic!("{e}\n{}", mount.log()));
    drop(f);
    DRIVE.wait_stored(&sim, &mount, "/empty2.txt", b"");
    assert!(mount.stop().success());
}

#[test]
fn mv_from_pikpak_into_123pan_copies_and_trashes_the_source() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = DRIVE.sim();
    let state = tempfile::tempdir().unwrap();
    // Both simulated drives serve one data folder: PikPak's storage is rooted at /Docs so the
    // two files are apart.
    let docs = format!("root_folder_id = \"{}\"", sim.handle().pikpak.id_of("/Docs").unwrap());
    let config = DRIVE.config(&sim, state.path(), "") + &Drive::PikPak.storage(&sim, "/pikpak", &docs);
    let mount = Mount::start(&config);
    let bytes = random_bytes(1 << 20, 43);
    write_file(&mount.path("/pikpak/travel.bin"), &bytes);
    Drive::PikPak.wait_stored(&sim, &mount, "/Docs/travel.bin", &bytes);
    let st = std::process::Command::new("mv")
        .arg(mount.path("/pikpak/travel.bin"))
        .arg(DRIVE.at(&mount, "/travel.bin"))
        .status()
        .unwrap();
    assert!(st.success(), "{}", mount.log());
    DRIVE.wait_stored(&sim, &mount, "/travel.bin", &bytes);
    Drive::PikPak.wait_trashed(&sim, &mount, "/Docs/travel.bin");
    assert!(mount.path("/pikpak/travel.bin").symlink_metadata().is_err());
    assert!(mount.stop().success());
}

#[test]
fn a_login_refused_mid_upload_keeps_the_upload_until_the_storage_is_back() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = DRIVE.sim();
    let state = tempfile::tempdir().unwrap();
    let (mount, config_path) = DRIVE.mount_with_config(&sim, state.path());
    // The parts crawl; meanwhile the session ends and the login is refused (a risk check).
    DRIVE.throttle(&sim, Some(400_000));
    let bytes = random_bytes(2 << 20, 44);
    write_file(&DRIVE.at(&mount, "/patient.bin"), &bytes);
    sim.handle().pan123.update(|k| k.login_fault = Some(panmount::sim::pan123::LoginFault::AbroadRisk));
    sim.handle().pan123.expire_tokens();
    DRIVE.throttle(&sim, None);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !mount.log().contains("storage unavailable") {
        assert!(std::time::Instant::now() < deadline, "the login was never refused\n{}", mount.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Waiting, not failed: the journal keeps it and `uploads` says it is pending.
    std::thread::sleep(Duration::from_secs(2));
    let (code, out, _) = common::run(&["uploads", config_path.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out);
    assert!(code == 0 && table.contains("/123pan/patient.bin"), "{table}");
    assert!(!mount.log().contains("upload failed for good"), "{}", mount.log());
    // The account is fixed: the storage logs in again by itself and the upload lands.
    sim.handle().pan123.update(|k| k.login_fault = None);
    DRIVE.wait_stored(&sim, &mount, "/patient.bin", &bytes);
    assert!(mount.stop().success());
}
