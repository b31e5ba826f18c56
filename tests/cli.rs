//! The command line as users drive it: exit codes and messages of config mistakes, and the
//! `check`, `ls` and `cat` commands against the simulator (no FUSE involved).
#![cfg(feature = "sim")]

mod common;

use common::{KEY, Sim, run, write_config};
use panmount::sim::SizeMode;

/// Run `check` on `text`; assert exit 2 and that stderr names the file and contains `needles`.
fn assert_config_error(text: &str, needles: &[&str]) {
    let (_dir, path) = write_config(text);
    let (code, _, stderr) = run(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 2, "exit code for {text:?}: {stderr}");
    assert!(stderr.contains(path.to_str().unwrap()), "the message names the file: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
}

const LINK: &str = "driver = \"123pan_link\"\norigin_urls = \"http://127.0.0.1:9/a.txt\"\n";

#[test]
fn config_mistakes_exit_2_naming_file_key_and_line() {
    assert_config_error(&format!("[[storage]]\npath = \"/a\"\n{LINK}colour = \"blue\"\n"), &[":5", "storage[1].colour", "unknown"]);
    assert_config_error("mountpoint = \"/mnt\"\nbogus = 1\n[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\norigin_urls = \"http://x/a\"\n", &[":2", "bogus"]);
    assert_config_error("[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\n", &["origin_urls", "missing"]);
    assert_config_error(&format!("[[storage]]\npath = \"/a\"\n{LINK}[[storage]]\npath = \"/a\"\n{LINK}"), &["/a", "both"]);
    assert_config_error(&format!("[[storage]]\npath = \"a\"\n{LINK}"), &["storage[1].path", "absolute"]);
    assert_config_error("[[storage]]\npath = \"/a\"\ndriver = \"dropbox\"\n", &["storage[1].driver", "dropbox", "123pan_link"]);
    assert_config_error(
        "[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\norigin_urls = \"\"\"\nFolder:\n   http://x/a.mp4\n\"\"\"\n",
        &["origin_urls", "line 2", "multiple of 2"],
    );
    assert_config_error("[fuse]\numask = 22\n[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\norigin_urls = \"http://x/a\"\n", &["fuse.umask"]);
    assert_config_error("[cache]\ndir_cache_time = \"soon\"\n[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\norigin_urls = \"http://x/a\"\n", &["cache.dir_cache_time"]);
    assert_config_error("[[storage]\n", &["TOML"]);
    assert_config_error("", &["storage"]);
}

#[test]
fn secrets_from_env_and_files() {
    let sim = Sim::start(true);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tree.txt"), sim.tree(SizeMode::Full) + "\n").unwrap();
    let text = format!(
        "[[storage]]\npath = \"/links\"\ndriver = \"123pan_link\"\nuid = {}\nprivate_key = \"${{PANMOUNT_TEST_KEY}}\"\norigin_urls_file = \"{}\"\n",
        common::UID,
        dir.path().join("tree.txt").display()
    );
    let (_d, path) = write_config(&text);
    let out = std::process::Command::new(common::bin())
        .args(["cat", path.to_str().unwrap(), "/links/Docs/readme.txt"])
        .env("PANMOUNT_TEST_KEY", KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, sim.file_bytes("/Docs/readme.txt"));
    let (code, _, stderr) = run(&["cat", path.to_str().unwrap(), "/links/Docs/readme.txt"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("PANMOUNT_TEST_KEY"), "{stderr}");
}

#[test]
fn check_ls_and_cat() {
    let sim = Sim::start(true);
    let (_d, path) = write_config(&sim.config(SizeMode::Mixed, KEY, ""));
    let cfg = path.to_str().unwrap();

    let (code, out, err) = run(&["check", cfg]);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let row = out.lines().find(|l| l.starts_with("/links")).expect(&out);
    assert!(row.contains("123pan_link") && row.contains(" ok ") && row.contains(" 5 "), "{row}");

    let (code, out, err) = run(&["ls", cfg, "/links/Ünïcödé folder", "-l"]);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8(out).unwrap();
    // Sizes learned from the server show exactly; nothing shows as 0 bytes that is not.
    for f in sim.files.iter().filter(|f| f.rel_path.starts_with("/Ünïcödé folder/")) {
        let name = f.rel_path.rsplit('/').next().unwrap();
        let line = out.lines().find(|l| l.ends_with(name)).unwrap_or_else(|| panic!("{name} in {out}"));
        assert!(line.contains(&format!(" {} ", f.size)), "{line}");
    }

    let (code, out, _) = run(&["ls", cfg, "/"]);
    assert_eq!((code, String::from_utf8(out).unwrap()), (0, "links/\n".to_string()));

    let movie = sim.file_bytes("/Movies/movie.mp4");
    let (code, out, err) = run(&["cat", cfg, "/links/Movies/movie.mp4"]);
    assert_eq!(code, 0, "{err}");
    assert!(out == movie, "cat: {} bytes, expected {}", out.len(), movie.len());
    for (range, from, to) in [("0-0", 0, 1), ("1048570-1048580", 1_048_570, 1_048_581), ("5000000-", 5_000_000, movie.len())] {
        let (code, out, err) = run(&["cat", cfg, "/links/Movies/movie.mp4", "--range", range]);
        assert_eq!(code, 0, "{err}");
        assert!(out == movie[from..to], "range {range}");
    }
    let (code, _, err) = run(&["cat", cfg, "/links/Movies/movie.mp4", "--range", "9-3"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(&["cat", cfg, "/links/Movies/missing.mp4"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("missing.mp4"), "{err}");
}

#[test]
fn a_bad_key_fails_cat_with_exit_1_and_no_secret_in_output() {
    let sim = Sim::start(true);
    let (_d, path) = write_config(&sim.config(SizeMode::Full, "wrong-key-0123", ""));
    let (code, out, err) = run(&["-vv", "cat", path.to_str().unwrap(), "/links/Docs/readme.txt"]);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "no bytes on a refused read");
    assert!(err.contains("403"), "{err}");
    assert!(!err.contains("wrong-key-0123") && !err.contains("auth_key="), "secret in log: {err}");
}

#[test]
fn sim_command_serves_the_sample_and_its_admin_endpoints() {
    use std::io::{BufRead, Read, Write};
    let mut child = std::process::Command::new(common::bin())
        .args(["sim", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.strip_prefix("listening on http://").unwrap_or_else(|| panic!("{first}")).to_string();
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    let readme = get("/cdn/Docs/readme.txt");
    assert!(readme.starts_with("HTTP/1.1 200"), "{readme}");
    assert!(readme.ends_with(&String::from_utf8_lossy(&panmount::sim::sample::content("/Docs/readme.txt", 100)).into_owned()));
    let stats = get("/_sim/stats");
    assert!(stats.starts_with("HTTP/1.1 200") && stats.contains("\"requests\":1"), "{stats}");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn completions_and_man_page_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run(&["completions", shell]);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(code, 0, "{err}");
        for sub in ["mount", "check", "offline", "stats"] {
            assert!(out.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let (code, out, err) = run(&["man"]);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".TH panmount 1") && out.contains("mount") && out.contains("offline"), "{out}");
    let (code, _, _) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error");
}
