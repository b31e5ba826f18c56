//! systemd `Type=notify`: READY only once the storages are logged in and their roots listed,
//! with a STATUS that says so; WATCHDOG pings while mounted; STOPPING on SIGTERM.
#![cfg(feature = "sim")]

mod common;

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
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/systemd/panmount@.service")).unwrap();
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
