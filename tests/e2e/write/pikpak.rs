//! Writes through a mount into the simulated PikPak: the conformance suite, plus what only
//! PikPak has (its share driver beside it, names with `/`).

use std::time::{Duration, Instant};

use super::{Drive, errno_of, random_bytes, write_file};
use crate::common::{Mount, Sim, fuse_tests_enabled, read_all};

crate::conformance_suite!(Drive::PikPak);

const DRIVE: Drive = Drive::PikPak;

fn config(sim: &Sim, state: &std::path::Path, extra: &str) -> String {
    DRIVE.config(sim, state, extra)
}

#[test]
fn mv_across_storages_copies_and_shares_and_links_refuse_writes() {
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
    DRIVE.wait_stored(&sim, &mount, "/x.bin", &bytes);
    // rename(2) across storages is EXDEV; mv then copies and deletes.
    assert_eq!(errno_of(std::fs::rename(mount.path("/pikpak/x.bin"), mount.path("/rw2/x.bin"))), libc::EXDEV);
    let st = std::process::Command::new("mv")
        .arg(mount.path("/pikpak/x.bin"))
        .arg(mount.path("/rw2/x.bin"))
        .status()
        .unwrap();
    assert!(st.success(), "{}", mount.log());
    DRIVE.wait_stored(&sim, &mount, "/Docs/x.bin", &bytes);
    // The source may still have been uploading when mv removed it: it goes to the trash once
    // its upload lands.
    DRIVE.wait_trashed(&sim, &mount, "/x.bin");

    // Read-only storages: EROFS and nothing reaches the provider.
    let (mkdirs, inits) = (DRIVE.mkdirs(&sim), DRIVE.upload_starts(&sim));
    for dir in ["/ro", "/share", "/links"] {
        assert_eq!(errno_of(std::fs::create_dir(mount.path(&format!("{dir}/n")))), libc::EROFS, "{dir}");
        assert_eq!(errno_of(std::fs::File::create(mount.path(&format!("{dir}/f")))), libc::EROFS, "{dir}");
    }
    assert_eq!(errno_of(std::fs::remove_file(mount.path("/ro/Docs/readme.txt"))), libc::EROFS);
    assert_eq!((DRIVE.mkdirs(&sim), DRIVE.upload_starts(&sim)), (mkdirs, inits));
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
