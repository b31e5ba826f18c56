//! What failures and odd inputs do to what a user sees; each test's name is the promise.
//! Through real mounts where the behaviour is the kernel's to see, else through the core with
//! the real drivers; assertions are on entries, errnos, logs and the simulator's counters.
#![cfg(feature = "sim")]

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime};

use common::{Mount, Sim, fuse_tests_enabled};
use panmount::sim::SizeMode;

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
