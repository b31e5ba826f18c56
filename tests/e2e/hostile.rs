//! End-to-end: what a real drive may hold but a directory cannot, through a real mount of the
//! `pikpak` driver against the simulator. Names with `/`, `..`, empty, the look-alikes
//! themselves, over 255 bytes, and two equal names in one folder each get the documented name
//! (README.md, "Names") and read their own bytes; absurd sizes are learned from the server.
//! The same shown names lead back to the remote folders (`offline add --to`).

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Mount, Sim, fuse_tests_enabled, read_all, run, write_config};
use serde_json::json;

fn listed(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
}

#[test]
fn hostile_names_and_sizes_show_and_read_through_a_mount() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let pikpak = &sim.handle().pikpak;
    let long = format!("{}.mp4", "花".repeat(100));
    // (file on disk, name on the drive, size the listing claims, name the mount shows)
    let cases: Vec<(&str, &str, Option<serde_json::Value>, String)> = vec![
        ("/Docs/readme.txt", "AC/DC.txt", None, "AC／DC.txt".into()),
        ("/Docs/empty.txt", "", None, "‛".into()),
        ("/Docs/notes #1 (100%).txt", "..", Some(json!("-2000")), "．．".into()),
        ("/top level file.txt", "x／y ‛", Some(json!(u64::MAX)), "x‛／y ‛‛".into()),
        // The .srt is the older file: it keeps the name; the real .nfo is numbered.
        ("/Movies/movie.srt", "movie.nfo", None, "movie.nfo".into()),
        ("/Movies/movie.nfo", "movie.nfo", None, "movie (2).nfo".into()),
        ("/Movies/movie.mp4", &long, Some(json!("not a size")), String::new()),
    ];
    for (rel, name, size, _) in &cases {
        pikpak.disguise(rel, name, size.clone());
    }
    pikpak.disguise("/Music/Album", "A/B", None);
    let b = sim.handle().base_url();
    let text = format!(
        "[[storage]]\npath = \"/pikpak\"\ndriver = \"pikpak\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\n\
         username = \"alice@example.com\"\npassword = \"secret\"\n"
    );
    let mount = Mount::start(&text);
    let movies = listed(&mount.path("/pikpak/Movies"));
    let long_shown = movies.iter().find(|n| n.ends_with(".mp4")).unwrap().clone();
    assert!(long_shown.len() <= 255 && long_shown.contains('~') && long_shown.starts_with("花花"), "{long_shown}");
    assert_eq!(movies, ["Extras", "movie (2).nfo", "movie.nfo", &long_shown].map(String::from).into());
    assert_eq!(listed(&mount.path("/pikpak/Docs")), ["AC／DC.txt", "‛", "．．"].map(String::from).into());
    assert!(listed(&mount.path("/pikpak/Music")).contains("A／B"));
    for (rel, _, _, shown) in &cases {
        let shown = if shown.is_empty() { &long_shown } else { shown };
        let parent = rel.rsplit_once('/').unwrap().0;
        let path = mount.path(&format!("/pikpak{parent}/{shown}"));
        let want = sim.file_bytes(rel);
        let meta = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{rel} shown as {shown}: {e}; {:?}", listed(path.parent().unwrap())));
        assert_eq!(meta.len(), want.len() as u64, "{rel} shown as {shown}");
        assert!(read_all(&path).unwrap() == want, "{rel} shown as {shown}: other bytes");
    }
    assert!(read_all(&mount.path("/pikpak/Music/A／B/cover.jpg")).unwrap() == sim.file_bytes("/Music/Album/cover.jpg"));

    // A shown path leads back to the remote folder: the download lands in "A/B".
    pikpak.update(|k| k.offline_delay_ms = 0);
    let (_dir, config) = write_config(&text);
    let cfg = config.to_str().unwrap();
    let (code, _, err) = run(&[
        "offline",
        "add",
        cfg,
        "--storage",
        "/pikpak",
        "magnet:?xt=urn:btih:00ff&dn=x.iso",
        "--to",
        "/Music/A／B",
    ]);
    assert_eq!(code, 0, "{err}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, out, err) = run(&["ls", cfg, "/pikpak/Music/A／B"]);
        assert_eq!(code, 0, "{err}");
        if String::from_utf8_lossy(&out).contains("x.iso") {
            break;
        }
        assert!(Instant::now() < deadline, "the download never appeared in A／B");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(mount.stop().success());
}

/// A 123pan direct link whose file name holds a `/` (`%2F` in its URL) is a file of the tree,
/// shown as `Docs／readme.txt`, with its bytes.
#[test]
fn a_link_whose_name_holds_a_slash_is_shown_and_read() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let url = sim.handle().cdn_url("/Docs/readme.txt");
    let slashed = url.replacen("/Docs/", "/Docs%2F", 1);
    assert_ne!(url, slashed);
    let tree = format!("{slashed}\n{url}\n");
    let text = format!(
        "[[storage]]\npath = \"/links\"\ndriver = \"123pan_link\"\norigin_urls = {}\n",
        toml::Value::String(tree)
    );
    let mount = Mount::start(&text);
    assert_eq!(listed(&mount.path("/links")), ["Docs／readme.txt", "readme.txt"].map(String::from).into());
    for name in ["Docs／readme.txt", "readme.txt"] {
        assert!(
            read_all(&mount.path(&format!("/links/{name}"))).unwrap() == sim.file_bytes("/Docs/readme.txt"),
            "{name}"
        );
    }
    assert!(mount.stop().success());
}
