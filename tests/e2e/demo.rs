//! `panmount demo` as a newcomer runs it: it mounts, the files are the sample's bytes, and
//! Ctrl-C (SIGINT) unmounts and exits 0. Also: the example configs parse.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use panmount::sim::sample;

#[test]
fn demo_mounts_sample_files_and_ctrl_c_unmounts() {
    if !common::fuse_tests_enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mountpoint = dir.path().join("pan");
    let mut child = Command::new(common::bin())
        .arg("demo")
        .arg(&mountpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !common::is_mounted(&mountpoint) {
        assert!(child.try_wait().unwrap().is_none(), "demo exited early");
        assert!(Instant::now() < deadline, "demo did not mount");
        std::thread::sleep(Duration::from_millis(50));
    }
    let root = mountpoint.join("123pan-links");
    let movie = common::read_all(&root.join("Movies/movie.mp4")).unwrap();
    assert!(movie == sample::content("/Movies/movie.mp4", movie.len() as u64) && movie.len() > 5_000_000);
    let name = "花絮.mkv";
    let extra = common::read_all(&root.join("Movies/Extras").join(name)).unwrap();
    assert_eq!(extra, sample::content(&format!("/Movies/Extras/{name}"), extra.len() as u64));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!common::is_mounted(&mountpoint));
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(out.contains("sample files"), "{out}");
}

#[test]
fn example_configs_parse() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/mount-configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        seen += 1;
        // Building the drivers must not touch the network: every example gets that far.
        // `${NAME}` values stand for secrets from the environment: any value will do here.
        let mut text = std::fs::read_to_string(&path).unwrap();
        while let Some(start) = text.find("${") {
            let end = start + text[start..].find('}').expect("closing brace");
            text.replace_range(start..=end, "example");
        }
        let config =
            panmount::config::Config::parse(&text, &path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(panmount::app::build_fs(&config).is_ok(), "{}: drivers do not build", path.display());
        // Only configs that need no network go further (the others would try to log in).
        let offline = config.storages.iter().all(|s| s.driver == "123pan_link");
        if !offline {
            continue;
        }
        let out = Command::new(common::bin())
            .args(["ls", path.to_str().unwrap(), "/"])
            .env("PAN123_PRIVATE_KEY", "example")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    }
    assert!(seen >= 1);
}
