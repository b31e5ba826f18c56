//! Copies that never download (issue 15): `cp` between files of the mount is made by the
//! provider when it has the content (an instant upload by the hash the source's listing shows),
//! counted at the simulator as no CDN byte and no upload byte; anything else falls back to
//! reading and writing the bytes, exactly.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use super::{Drive, random_bytes, write_file};
use crate::common::{Mount, Sim, fuse_tests_enabled, read_all};

const BIG: usize = 200 << 20;

/// A simulator whose data folder holds `/Media/big.mkv` (`size` random bytes), and those bytes.
fn sim_with_big(size: usize) -> (Sim, Vec<u8>) {
    let bytes = random_bytes(size, 77);
    let sim = Sim::start_with(false, |dir| {
        std::fs::create_dir_all(dir.join("Media")).unwrap();
        std::fs::write(dir.join("Media/big.mkv"), &bytes).unwrap();
    });
    sim.handle().pan123.update(|k| {
        k.list_interval_ms = 0;
        k.slice_size = 1 << 20;
    });
    (sim, bytes)
}

/// A PikPak drive rooted at /Docs (the data folder is shared with the other simulated
/// providers), PikPak's share of the whole folder at /pikshare, 123pan at /123pan and a
/// 123pan share of /Media at /123share.
fn config(sim: &Sim, state: &Path) -> String {
    let b = sim.handle().base_url();
    let pikpak = sim.handle().pikpak.clone();
    sim.handle().pan123.add_share("media", "/Media", "");
    let docs = format!("root_folder_id = \"{}\"", pikpak.id_of("/Docs").unwrap());
    let share_id = pikpak.knobs().share_id;
    format!(
        "state_dir = \"{}\"\n{}{}\
         [[storage]]\npath = \"/pikshare\"\ndriver = \"pikpak_share\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\nshare_id = \"{share_id}\"\n\n\
         [[storage]]\npath = \"/123share\"\ndriver = \"123pan_share\"\nshare_key = \"media\"\napi_base = \"{b}\"\nlist_interval_ms = 0\n",
        state.display(),
        Drive::PikPak.storage(sim, "/pikpak", &docs),
        Drive::Pan123.storage(sim, "/123pan", ""),
    )
}

fn cp(mount: &Mount, from: &str, to: &str) {
    let out = Command::new("cp").arg(mount.path(from)).arg(mount.path(to)).output().unwrap();
    assert!(out.status.success(), "cp {from} {to}: {}\n{}", String::from_utf8_lossy(&out.stderr), mount.log());
}

/// Bytes the simulated CDN served and bytes the simulated object stores took.
fn traffic(sim: &Sim) -> (u64, u64) {
    (sim.stats().bytes_sent, Drive::PikPak.sent_bytes(sim) + Drive::Pan123.sent_bytes(sim))
}

#[test]
fn cp_from_a_share_into_the_drive_moves_no_byte() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, bytes) = sim_with_big(BIG);
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path()));
    let before = traffic(&sim);
    let started = std::time::Instant::now();
    cp(&mount, "/pikshare/Media/big.mkv", "/pikpak/big.mkv");
    cp(&mount, "/123share/big.mkv", "/123pan/copied.mkv");
    eprintln!("two provider-side copies of {} MiB took {:?}", BIG >> 20, started.elapsed());
    assert_eq!(traffic(&sim), before, "no CDN byte and no upload byte\n{}", mount.log());
    Drive::PikPak.wait_stored(&sim, &mount, "/Docs/big.mkv", &bytes);
    Drive::Pan123.wait_stored(&sim, &mount, "/copied.mkv", &bytes);
    let stats = std::fs::read_to_string(mount.path("/.panmount-stats")).unwrap();
    for storage in ["/pikpak", "/123pan"] {
        let line = stats.lines().find(|l| l.starts_with(&format!("storage={storage} "))).unwrap();
        assert!(
            line.contains(" provider_copies=1 ") && line.contains(&format!(" bytes_copied_by_provider={BIG}")),
            "{line}"
        );
    }
    // Read back through the mount, from the provider's copies.
    assert!(read_all(&mount.path("/pikpak/big.mkv")).unwrap() == bytes);
    assert!(read_all(&mount.path("/123pan/copied.mkv")).unwrap() == bytes);
    // Over a file that exists: the provider's copy replaces it (the old one to the trash).
    let before = traffic(&sim);
    cp(&mount, "/pikshare/Docs/notes #1 (100%).txt", "/pikpak/big.mkv");
    let notes = sim.file_bytes("Docs/notes #1 (100%).txt");
    Drive::PikPak.wait_stored(&sim, &mount, "/Docs/big.mkv", &notes);
    Drive::PikPak.wait_trashed(&sim, &mount, "/Docs/big.mkv");
    assert_eq!(traffic(&sim), before);
    assert!(read_all(&mount.path("/pikpak/big.mkv")).unwrap() == notes);
    assert!(mount.stop().success());
}

#[test]
fn a_copy_the_provider_cannot_make_is_read_and_written_exactly() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, bytes) = sim_with_big(6 << 20);
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path()));
    // 123pan's MD5 means nothing to PikPak (and the other way round): the bytes travel.
    let (cdn, _) = traffic(&sim);
    cp(&mount, "/123share/big.mkv", "/pikpak/from123.mkv");
    cp(&mount, "/pikshare/Media/big.mkv", "/123pan/frompikpak.mkv");
    Drive::PikPak.wait_stored(&sim, &mount, "/Docs/from123.mkv", &bytes);
    Drive::Pan123.wait_stored(&sim, &mount, "/frompikpak.mkv", &bytes);
    // (Uploaded instantly, as it happens: the simulated providers share one data folder, so
    // each finds the content by its own hash once it is computed from the bytes.)
    let (cdn2, _) = traffic(&sim);
    assert!(cdn2 - cdn >= 2 * bytes.len() as u64, "the bytes were read: {}", cdn2 - cdn);
    // Part of a file (not the whole) is never a provider's copy either.
    let src = std::fs::File::open(mount.path("/pikshare/Media/big.mkv")).unwrap();
    let dst = std::fs::File::create(mount.path("/pikpak/half.mkv")).unwrap();
    let half = bytes.len() / 2;
    let n = copy_file_range(&src, 0, &dst, 0, half);
    assert_eq!(n, half.min(64 << 20));
    drop((src, dst));
    Drive::PikPak.wait_stored(&sim, &mount, "/Docs/half.mkv", &bytes[..half]);
    assert!(mount.stop().success());
}

#[test]
fn a_provider_copy_written_into_before_close_gets_its_bytes_first() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, bytes) = sim_with_big(3 << 20);
    let state = tempfile::tempdir().unwrap();
    let mount = Mount::start(&config(&sim, state.path()));
    // The simulated PikPak lists a stand-in hash for the files it found in its data folder
    // (computing GCIDs up front would be slow), and the real GCID for uploaded ones: the bytes
    // fetched into the copy are checked against the hash, so the source is uploaded first.
    write_file(&mount.path("/pikpak/src.mkv"), &bytes);
    Drive::PikPak.wait_stored(&sim, &mount, "/Docs/src.mkv", &bytes);
    for (from, to, drive, stored) in [
        ("/pikshare/Docs/src.mkv", "/pikpak/tail.mkv", Drive::PikPak, "/Docs/tail.mkv"),
        ("/123share/big.mkv", "/123pan/tail.mkv", Drive::Pan123, "/tail.mkv"),
    ] {
        let src = std::fs::File::open(mount.path(from)).unwrap();
        let dst = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(mount.path(to))
            .unwrap();
        let sent = drive.sent_bytes(&sim);
        assert_eq!(copy_file_range(&src, 0, &dst, 0, bytes.len() * 2), bytes.len());
        assert_eq!(copy_file_range(&src, bytes.len(), &dst, bytes.len(), 4096), 0, "then the end of the file");
        assert_eq!(drive.sent_bytes(&sim), sent, "copied by the provider");
        // Read and written through the same descriptor: the copy's bytes are fetched first.
        let mut head = vec![0; 4096];
        dst.read_exact_at(&mut head, 1000).unwrap_or_else(|e| panic!("{e}\n{}", mount.log()));
        assert!(head == bytes[1000..5096]);
        dst.write_all_at(b"tail", bytes.len() as u64).unwrap();
        drop((src, dst));
        let mut want = bytes.clone();
        want.extend_from_slice(b"tail");
        drive.wait_stored(&sim, &mount, stored, &want);
        assert!(read_all(&mount.path(to)).unwrap() == want);
    }
    // The provider's copies made before the writes went to the trash when the new bytes landed.
    assert!(Drive::PikPak.trashed_paths(&sim).len() + Drive::Pan123.trashed_paths(&sim).len() >= 2);
    assert!(mount.stop().success());
}

#[test]
fn mv_between_two_storages_of_one_provider_moves_no_byte() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, bytes) = sim_with_big(8 << 20);
    let state = tempfile::tempdir().unwrap();
    let docs = format!("root_folder_id = \"{}\"", sim.handle().pikpak.id_of("/Docs").unwrap());
    let config = format!(
        "state_dir = \"{}\"\n{}{}",
        state.path().display(),
        Drive::PikPak.storage(&sim, "/pikpak", &docs),
        Drive::PikPak.storage(
            &sim,
            "/media",
            &format!("root_folder_id = \"{}\"", sim.handle().pikpak.id_of("/Media").unwrap())
        ),
    );
    let mount = Mount::start(&config);
    let before = traffic(&sim);
    let st =
        Command::new("mv").arg(mount.path("/media/big.mkv")).arg(mount.path("/pikpak/moved.mkv")).status().unwrap();
    assert!(st.success(), "{}", mount.log());
    Drive::PikPak.wait_stored(&sim, &mount, "/Docs/moved.mkv", &bytes);
    Drive::PikPak.wait_trashed(&sim, &mount, "/Media/big.mkv");
    assert_eq!(traffic(&sim), before, "{}", mount.log());
    assert!(mount.stop().success());
}

/// `copy_file_range(2)` of `len` bytes; the count copied.
fn copy_file_range(src: &std::fs::File, off_in: usize, dst: &std::fs::File, off_out: usize, len: usize) -> usize {
    use std::os::fd::AsRawFd;
    let (mut off_in, mut off_out) = (off_in as i64, off_out as i64);
    let n = unsafe { libc::copy_file_range(src.as_raw_fd(), &mut off_in, dst.as_raw_fd(), &mut off_out, len, 0) };
    assert!(n >= 0, "copy_file_range: {}", std::io::Error::last_os_error());
    n as usize
}

#[test]
fn a_provider_copy_closed_and_killed_is_made_again_at_the_next_start() {
    if !fuse_tests_enabled() {
        return;
    }
    let (sim, bytes) = sim_with_big(3 << 20);
    let state = tempfile::tempdir().unwrap();
    let text = config(&sim, state.path());
    let mut mount = Mount::start(&text);
    let before = traffic(&sim);
    let src = std::fs::File::open(mount.path("/123share/big.mkv")).unwrap();
    let dst = std::fs::File::create(mount.path("/123pan/killed.mkv")).unwrap();
    // A second writer keeps the file pending after the first one's close, which records it.
    let other = std::fs::OpenOptions::new().write(true).open(mount.path("/123pan/killed.mkv")).unwrap();
    assert_eq!(copy_file_range(&src, 0, &dst, 0, bytes.len()), bytes.len());
    drop(dst);
    mount.stop_with(libc::SIGKILL);
    drop((src, other));
    // The journal says what the copy was: the next start makes it again by its hash (the first
    // copy, made before the kill, is replaced and goes to the trash), and still moves no byte.
    let mount = Mount::start(&text);
    Drive::Pan123.wait_stored(&sim, &mount, "/killed.mkv", &bytes);
    assert!(mount.log().contains("resuming uploads"), "{}", mount.log());
    Drive::Pan123.wait_trashed(&sim, &mount, "/killed.mkv");
    assert_eq!(traffic(&sim), before, "{}", mount.log());
    assert!(mount.stop().success());
}
