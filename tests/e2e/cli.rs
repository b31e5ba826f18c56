//! The command line as users drive it: exit codes and messages of config mistakes, and the
//! `check`, `ls` and `cat` commands against the simulator (no FUSE involved).

use crate::common;

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
    assert_config_error(
        &format!("[[storage]]\npath = \"/a\"\n{LINK}colour = \"blue\"\n"),
        &[":5", "storage[1].colour", "unknown"],
    );
    assert_config_error(
        "mountpoint = \"/mnt\"\nbogus = 1\n[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\norigin_urls = \"http://x/a\"\n",
        &[":2", "bogus"],
    );
    assert_config_error("[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\n", &["origin_urls", "missing"]);
    assert_config_error(
        &format!("[[storage]]\npath = \"/a\"\n{LINK}[[storage]]\npath = \"/a\"\n{LINK}"),
        &["/a", "both"],
    );
    assert_config_error(&format!("[[storage]]\npath = \"a\"\n{LINK}"), &["storage[1].path", "absolute"]);
    assert_config_error(
        "[[storage]]\npath = \"/a\"\ndriver = \"dropbox\"\n",
        &["storage[1].driver", "dropbox", "123pan_link"],
    );
    assert_config_error(
        "[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\norigin_urls = \"\"\"\nFolder:\n   http://x/a.mp4\n\"\"\"\n",
        &["origin_urls", "line 2", "multiple of 2"],
    );
    assert_config_error(
        "[fuse]\numask = 22\n[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\norigin_urls = \"http://x/a\"\n",
        &["fuse.umask"],
    );
    assert_config_error(
        "[cache]\ndir_cache_time = \"soon\"\n[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\norigin_urls = \"http://x/a\"\n",
        &["cache.dir_cache_time"],
    );
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
    for (range, from, to) in
        [("0-0", 0, 1), ("1048570-1048580", 1_048_570, 1_048_581), ("5000000-", 5_000_000, movie.len())]
    {
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
    assert!(
        readme
            .ends_with(&String::from_utf8_lossy(&panmount::sim::sample::content("/Docs/readme.txt", 100)).into_owned())
    );
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

/// `import-openlist` on a sample export: exit code, stdout, stderr.
fn import(name: &str) -> (i32, String, String) {
    let file = format!("{}/tests/data/openlist/{name}", env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = run(&["import-openlist", &file]);
    (code, String::from_utf8(out).unwrap(), err)
}

/// A loaded storage: path, driver and its options.
type Loaded = (String, String, Vec<(String, toml::Value)>);

/// The converted text loaded as panmount loads a config, drivers built.
fn load_converted(text: &str) -> Vec<Loaded> {
    let (_dir, path) = write_config(&format!("mountpoint = \"/mnt/pan\"\n{text}"));
    let config = panmount::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    panmount::app::build_fs(&config).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let options = |o: &panmount::config::Options| o.values.iter().map(|(k, v)| (k.clone(), v.value.clone())).collect();
    config.storages.iter().map(|s| (s.path.clone(), s.driver.clone(), options(&s.options))).collect()
}

fn loaded(path: &str, driver: &str, options: Vec<(&str, toml::Value)>) -> Loaded {
    (path.into(), driver.into(), options.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

fn s(v: &str) -> toml::Value {
    toml::Value::String(v.into())
}

#[test]
fn import_openlist_converts_each_driver_into_a_config_panmount_loads() {
    let expected: [(&str, Loaded); 5] = [
        (
            "pikpak.json",
            loaded(
                "/pikpak",
                "pikpak",
                vec![
                    ("device_id", s("0123456789abcdef0123456789abcdef")),
                    ("password", s("fake \"quoted\" pass\\word")),
                    ("platform", s("android")),
                    ("refresh_token", s("fake-refresh-token-1")),
                    ("username", s("someone@example.com")),
                ],
            ),
        ),
        (
            "pikpak-share.json",
            loaded(
                "/shared/anime",
                "pikpak_share",
                vec![
                    ("root_folder_id", s("VNfakefolder0001")),
                    ("share_id", s("VNfakeshare0001")),
                    ("use_transcoding_address", toml::Value::Boolean(true)),
                ],
            ),
        ),
        (
            "123pan.json",
            loaded("/123", "123pan", vec![("password", s("fake-123-pass")), ("username", s("13800000000"))]),
        ),
        (
            "123pan-share.json",
            loaded(
                "/123 share",
                "123pan_share",
                vec![("root_folder_id", s("1234567")), ("share_key", s("abcd-FakeK")), ("share_password", s("Ab12"))],
            ),
        ),
        (
            "123pan-link.json",
            loaded(
                "/links",
                "123pan_link",
                vec![
                    (
                        "origin_urls",
                        s(
                            "Movies:\n  1048576:1717200000:https://vip.123pan.com/1814435971/Movies/a.mp4\n  https://vip.123pan.com/1814435971/Movies/b \"quoted\".mkv\nreadme.txt:\n",
                        ),
                    ),
                    ("private_key", s("fake-private-key")),
                    ("uid", toml::Value::Integer(1_814_435_971)),
                    ("valid_duration", toml::Value::Integer(60)),
                ],
            ),
        ),
    ];
    for (file, want) in expected {
        let (code, out, err) = import(file);
        assert_eq!(code, 0, "{file}: {err}");
        assert!(err.contains("converted 1 of 1 storages"), "{file}: {err}");
        assert_eq!(load_converted(&out), vec![want], "{file}:\n{out}");
        if file.contains("pikpak.json") || file.contains("123pan.json") {
            assert!(out.contains("password_file"), "secrets get a hint: {out}");
        }
    }
    let (_, out, err) = import("123pan.json");
    assert!(out.contains("# not carried over") && err.contains("AccessToken, UploadThread"), "{out}{err}");
    assert!(!err.contains("eyJfake"), "no secret on stderr: {err}");
}

#[test]
fn import_openlist_explains_every_storage_it_skips() {
    let (code, out, err) = import("unsupported.json");
    assert_eq!(code, 1, "nothing converted: {err}");
    assert!(!out.lines().any(|l| l == "[[storage]]"), "{out}");
    for why in [
        "disabled",
        "123 Open",
        "no driver for OpenList's AliyundriveOpen",
        "missing share_key",
        "not valid JSON",
        "mount_path",
    ] {
        assert_eq!(out.matches(why).count(), 1, "{why:?} in the output once:\n{out}");
        assert_eq!(err.lines().filter(|l| l.contains(why) && l.contains("skipped")).count(), 1, "{why:?}: {err}");
    }
    assert!(out.lines().all(|l| l.is_empty() || l.starts_with('#')), "only comments: {out}");

    // Everything in one export: the five convert, the six are explained, the config loads.
    let dir = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for name in ["pikpak", "pikpak-share", "123pan", "123pan-share", "123pan-link", "unsupported"] {
        let text =
            std::fs::read_to_string(format!("{}/tests/data/openlist/{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let list = doc.get("storages").or(doc.pointer("/data/content")).unwrap_or(&doc);
        all.extend(list.as_array().unwrap().iter().cloned());
    }
    let file = dir.path().join("all.json");
    std::fs::write(&file, serde_json::to_string(&all).unwrap()).unwrap();
    let (code, out, err) = run(&["import-openlist", file.to_str().unwrap()]);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("converted 5 of 11 storages"), "{err}");
    assert_eq!(load_converted(&out).len(), 5, "{out}");
}

#[test]
fn import_openlist_refuses_what_is_not_an_export_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        ("{\"code\":200,", "JSON"),
        ("{\"settings\":[]}", "storages"),
        ("42", "a number"),
        ("{\"code\":401,\"message\":\"token is expired\",\"data\":null}", "token is expired"),
    ] {
        let file = dir.path().join("export.json");
        std::fs::write(&file, text).unwrap();
        let (code, _, err) = run(&["import-openlist", file.to_str().unwrap()]);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(file.to_str().unwrap()) && err.contains(needle), "{text}: {err}");
    }
    let missing = dir.path().join("missing.json");
    let (code, _, err) = run(&["import-openlist", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.json") && err.contains("cannot read"), "{err}");
}
