//! systemd `Type=notify`: READY only once the storages are logged in and their roots listed,
//! with a STATUS that says so; WATCHDOG pings while mounted; STOPPING on SIGTERM.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::{KEY, Mount, Sim, fuse_tests_enabled, write_config};
use panmount::sim::SizeMode;

#[test]
fn notify_ready_status_watchdog_and_stopping() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    let sock_dir = tempfile::tempdir().unwrap();
    let sock_path = sock_dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut mount = Mount::start_with_env(
        write_config(&sim.config(SizeMode::Full, KEY, "")),
        tempfile::tempdir().unwrap(),
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap()), ("WATCHDOG_USEC", "1000000")],
    );
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while !messages.iter().any(|m: &String| m.contains("WATCHDOG=1")) {
        let n = sock.recv(&mut buf).expect("a notification within 20 s");
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let ready = messages.iter().find(|m| m.contains("READY=1")).unwrap_or_else(|| panic!("{messages:?}"));
    assert!(ready.contains("STATUS=1 storages (1 up), 5 entries at their roots"), "{ready}");
    assert!(messages[0].contains("STATUS=logging in"), "{messages:?}");
    assert!(mount.stop_with(libc::SIGTERM).success());
    let mut rest = Vec::new();
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    while let Ok(n) = sock.recv(&mut buf) {
        rest.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(rest.iter().any(|m| m.contains("STOPPING=1")), "{rest:?}");
}

#[test]
fn the_unit_file_verifies() {
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/systemd/panmount@.service")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Verify against the binary just built (the packaged path does not exist here).
    std::fs::write(dir.path().join("panmount@.service"), unit.replace("/usr/bin/panmount", common::bin())).unwrap();
    std::os::unix::fs::symlink("panmount@.service", dir.path().join("panmount@media.service")).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("panmount@media.service"))
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed to verify the unit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

/// Run the fstab helper as mount(8) would, with the built binary first in PATH.
fn fstab_helper(args: &[&str]) -> std::process::Output {
    let bin_dir = std::path::Path::new(common::bin()).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/mount.panmount"))
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap()
}

#[test]
fn the_fstab_helper_mounts_in_the_background_and_umount_stops_it() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    let (_c, config) = write_config(&sim.config(SizeMode::Full, KEY, ""));
    let dir = tempfile::tempdir().unwrap();
    let out = fstab_helper(&[config.to_str().unwrap(), dir.path().to_str().unwrap(), "-o", "rw,_netdev,allow_other"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(common::is_mounted(dir.path()));
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info.lines().find(|l| l.contains(dir.path().to_str().unwrap())).unwrap();
    assert!(line.contains("allow_other"), "{line}");
    assert_eq!(
        common::read_all(&dir.path().join("links/Docs/readme.txt")).unwrap(),
        sim.file_bytes("/Docs/readme.txt")
    );
    assert!(std::process::Command::new("umount").arg(dir.path()).status().unwrap().success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while common::is_mounted(dir.path()) {
        assert!(std::time::Instant::now() < deadline, "still mounted after umount");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A failing mount reports panmount's own message and exits 1.
    let (_c2, bad) = write_config("[[storage]]\npath = \"/x\"\ndriver = \"nope\"\n");
    let dir2 = tempfile::tempdir().unwrap();
    let out = fstab_helper(&[bad.to_str().unwrap(), dir2.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown driver"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
