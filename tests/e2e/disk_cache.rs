//! The disk cache across restarts: a second run serves from disk with no download, a changed
//! remote file (new version) is fetched fresh, and damaged cache files are never served.

use crate::common;

use common::{KEY, Mount, Sim, fuse_tests_enabled, read_all, run, write_config};
use panmount::sim::SizeMode;

fn cache_section(dir: &std::path::Path) -> String {
    format!("[cache]\ndir = \"{}\"\nmax_size = \"1G\"\n", dir.display())
}

#[test]
fn cat_twice_downloads_once_and_a_new_version_is_fetched_fresh() {
    let sim = Sim::start(true);
    let cache = tempfile::tempdir().unwrap();
    let (_d, path) = write_config(&sim.config(SizeMode::Full, KEY, &cache_section(cache.path())));
    let cfg = path.to_str().unwrap();
    let movie = sim.file_bytes("/Movies/movie.mp4");

    let (code, out, err) = run(&["cat", cfg, "/links/Movies/movie.mp4"]);
    assert_eq!(code, 0, "{err}");
    assert!(out == movie);
    let first = sim.stats().bytes_sent;
    assert_eq!(first, movie.len() as u64);

    // A new process: everything comes from disk.
    let (code, out, err) = run(&["cat", cfg, "/links/Movies/movie.mp4"]);
    assert_eq!(code, 0, "{err}");
    assert!(out == movie);
    assert_eq!(sim.stats().bytes_sent, first, "the second run downloaded nothing");

    // Damage one stored block: it fails its digest and is fetched again; output stays exact.
    let data = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "data"))
        .unwrap();
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let (code, out, err) = run(&["cat", cfg, "/links/Movies/movie.mp4"]);
    assert_eq!(code, 0, "{err}");
    assert!(out == movie, "damaged cache bytes were served");
    assert_eq!(
        sim.stats().bytes_sent,
        first + panmount::app::BLOCK_SIZE,
        "exactly the damaged block was fetched again"
    );

    // The remote file changes (new content, new mtime in the tree): no stale bytes.
    let changed: Vec<u8> = movie.iter().map(|b| b.wrapping_add(1)).collect();
    std::fs::write(sim.data.path().join("Movies/movie.mp4"), &changed).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        &format!("{}:", sim.files.iter().find(|f| f.rel_path == "/Movies/movie.mp4").unwrap().mtime),
        "1800000000:",
    );
    std::fs::write(&path, text).unwrap();
    let (code, out, err) = run(&["cat", cfg, "/links/Movies/movie.mp4"]);
    assert_eq!(code, 0, "{err}");
    assert!(out == changed, "a new version must not be served from the old one's blocks");
}

#[test]
fn a_remount_serves_from_the_disk_cache() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    let cache = tempfile::tempdir().unwrap();
    let config = sim.config(SizeMode::Full, KEY, &cache_section(cache.path()));
    let files = ["/Movies/movie.mp4", "/Music/Album/01 - Intro.flac", "/Ünïcödé folder/1 MiB plus one.bin"];
    let mount = Mount::start(&config);
    for f in files {
        assert_eq!(read_all(&mount.path(&format!("/links{f}"))).unwrap(), sim.file_bytes(f));
    }
    assert!(mount.stop().success());
    let downloaded = sim.stats().bytes_sent;

    let mount = Mount::start(&config);
    for f in files {
        assert_eq!(read_all(&mount.path(&format!("/links{f}"))).unwrap(), sim.file_bytes(f));
    }
    let (_, out, _) = run(&["stats", mount.dir.path().to_str().unwrap()]);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("disk_hits=") && !out.contains("disk_hits=0 "), "{out}");
    assert!(mount.stop().success());
    assert_eq!(sim.stats().bytes_sent, downloaded, "the remount downloaded nothing");
}
