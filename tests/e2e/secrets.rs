//! Secret hygiene, end to end: every driver goes through login, token refresh, captcha,
//! listings, link mints and link expiry at trace level, and no secret the simulator issued or
//! received (see `panmount::sim::secrets`) may appear in panmount's output. Also: state files
//! are private, and a config file others can read while it holds a password, token or key
//! gets one warning.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{KEY, Mount, Sim, UID, fuse_tests_enabled, read_all, run, sha256, write_config};
use panmount::sim::SizeMode;
use panmount::sim::pan123::{PASSWORD, PHONE};

const PIKPAK_PASSWORD: &str = "pk-Pass-Q7v1xR";
const PIKPAK_SHARE_CODE: &str = "shr-Code-Zx9";
const PAN123_SHARE_CODE: &str = "Kq4w7T";
const PAN123_SHARE_TOKEN: &str = "share-access-Tok3n-u81";
const STORAGES: [&str; 5] = ["/pikpak", "/pikshare", "/123", "/123share", "/links"];

/// All five drivers against one simulator, with every lifetime short enough to run out while
/// the test reads (1–2 s).
fn config(sim: &Sim, state_dir: &std::path::Path) -> String {
    let b = sim.handle().base_url();
    let share_id = sim.handle().pikpak.knobs().share_id;
    let tree = toml::Value::String(sim.tree(SizeMode::Full));
    format!(
        "state_dir = \"{state}\"\n[cache]\nlink_expiry_margin = \"0s\"\ndir_cache_time = \"1s\"\n\
         [[storage]]\npath = \"/pikpak\"\ndriver = \"pikpak\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\n\
         username = \"alice@example.com\"\npassword = \"{PIKPAK_PASSWORD}\"\n\
         [[storage]]\npath = \"/pikshare\"\ndriver = \"pikpak_share\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\n\
         share_id = \"{share_id}\"\nshare_password = \"{PIKPAK_SHARE_CODE}\"\n\
         [[storage]]\npath = \"/123\"\ndriver = \"123pan\"\nusername = \"{PHONE}\"\npassword = \"{PASSWORD}\"\n\
         api_base = \"{b}\"\nlogin_base = \"{b}\"\nlist_interval_ms = 20\n\
         [[storage]]\npath = \"/123share\"\ndriver = \"123pan_share\"\nshare_key = \"sk-1\"\napi_base = \"{b}\"\n\
         share_password = \"{PAN123_SHARE_CODE}\"\naccess_token = \"{PAN123_SHARE_TOKEN}\"\nlist_interval_ms = 20\n\
         [[storage]]\npath = \"/links\"\ndriver = \"123pan_link\"\nprivate_key = \"{KEY}\"\nuid = {UID}\norigin_urls = {tree}\n",
        state = state_dir.display(),
    )
}

fn prepare(sim: &Sim) {
    let h = sim.handle();
    h.pikpak.update(|k| {
        k.password = PIKPAK_PASSWORD.into();
        k.share_password = PIKPAK_SHARE_CODE.into();
        k.access_ttl_secs = 2;
        k.captcha_ttl_secs = 2;
        k.link_ttl_secs = 2;
    });
    h.pan123.add_share("sk-1", "", PAN123_SHARE_CODE);
    h.pan123.update(|k| {
        k.list_interval_ms = 10;
        k.token_ttl_secs = Some(2.0);
        k.slice_size = 4 << 20;
    });
    // Every link (auth_key or provider signature) is refused 1.5 s after its first use.
    sim.knobs().update(|k| k.link_ttl_secs = Some(1.5));
}

/// The values a log must not contain: each secret, and the random tail of a dotted token (a
/// log that printed only part of a JWT would still leak its signature).
/// The uploads of the trace test went through the object store, in parts, and instantly.
fn h_counts_uploads(sim: &Sim) -> bool {
    let c = &sim.handle().pikpak.counters;
    c.part_puts.load(Ordering::Relaxed) >= 2
        && c.single_puts.load(Ordering::Relaxed) >= 1
        && c.instant_uploads.load(Ordering::Relaxed) >= 1
}

fn needles(secrets: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for s in secrets {
        out.push(s.clone());
        if let Some(tail) = s.rsplit('.').next().filter(|t| t.len() >= 16 && t.len() < s.len()) {
            out.push(tail.to_owned());
        }
    }
    out
}

fn assert_no_secret(secrets: &[String], output: &str, what: &str) {
    for needle in needles(secrets) {
        if let Some(at) = output.find(&needle) {
            let line_start = output[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = output[at..].find('\n').map_or(output.len(), |i| at + i);
            panic!("{what} leaks the secret {needle:?} in:\n{}", &output[line_start..line_end]);
        }
    }
}

fn warnings_about(file: &std::path::Path, log: &str) -> usize {
    let name = file.display().to_string();
    log.lines().filter(|l| l.contains(&name) && l.contains("chmod 600")).count()
}

#[test]
fn no_secret_reaches_the_log_at_trace_level() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    prepare(&sim);
    let state = tempfile::tempdir().unwrap();
    let text = config(&sim, state.path());
    let (config_dir, config_path) = write_config(&text);
    std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    // `RUST_LOG=trace` without a flag: every crate at trace, the broadest output there is.
    let mount = Mount::start_with_args(
        (config_dir, config_path.clone()),
        tempfile::tempdir().unwrap(),
        &[("RUST_LOG", "trace")],
        &[],
    );
    for storage in STORAGES {
        common::conformance(&mount.path(storage), sim.data.path(), 5);
    }
    // Access tokens, captcha tokens, 123pan sessions and links all run out; read again.
    std::thread::sleep(Duration::from_millis(2500));
    let movie = sim.file_bytes("/Movies/movie.mp4");
    for storage in STORAGES {
        let path = mount.path(&format!("{storage}/Movies/movie.mp4"));
        assert_eq!(sha256(&read_all(&path).unwrap()), sha256(&movie), "{storage}");
        assert!(std::fs::read_dir(mount.path(&format!("{storage}/Docs"))).unwrap().count() > 0);
    }
    // Uploads: a single PUT, a multipart one and an instant one, each signed with the upload
    // credentials (key id, secret, security token) the simulator counts as secrets. fsync
    // returns once each is on the provider.
    let parts: Vec<u8> = (0..12u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    // On 123pan three more go up through presigned part URLs, whose signatures are secrets. (Both
    // simulated drives serve one data folder: other names and bytes, so neither sees the other's.)
    let other: Vec<u8> = parts.iter().map(|b| b ^ 0x5a).collect();
    for (storage, parts) in [("/pikpak", &parts), ("/123", &other)] {
        for (name, bytes) in
            [("small.bin", &parts[..300_000]), ("big.bin", &parts[..]), ("again.bin", &parts[..300_000])]
        {
            let name = format!("{}-{name}", &storage[1..]);
            let mut f = std::fs::File::create(mount.path(&format!("{storage}/{name}"))).unwrap();
            std::io::Write::write_all(&mut f, bytes).unwrap();
            f.sync_all().unwrap_or_else(|e| panic!("{storage}/{name}: {e}"));
        }
    }
    assert!(h_counts_uploads(&sim), "{}", sim.handle().pikpak.counters.snapshot());
    let c = &sim.handle().pan123.counters;
    let pan123_uploads = sim.handle().pan123.counters.snapshot();
    assert!(
        c.part_puts.load(Ordering::Relaxed) >= 3 && c.instant_uploads.load(Ordering::Relaxed) >= 1,
        "{pan123_uploads}"
    );
    let log = mount.log();
    assert!(mount.stop().success());

    // The paths the test means to cover were taken.
    let h = sim.handle();
    let pp = &h.pikpak.counters;
    assert!(pp.refreshes.load(Ordering::Relaxed) >= 1, "no token refresh: {}", pp.snapshot());
    assert!(pp.captcha_refused.load(Ordering::Relaxed) >= 1, "no captcha renewal: {}", pp.snapshot());
    assert!(h.pan123.count(|c| &c.logins) >= 2, "no 123pan re-login");
    assert!(h.pan123.count(|c| &c.share_calls_with_token) >= 1);
    assert!(sim.stats().refused_403 >= 1, "a link expired: {:?}", sim.stats());
    assert!(log.contains("TRACE") && log.contains("ranged request"), "not a trace-level log");

    assert_eq!(warnings_about(&config_path, &log), 1, "{log}");

    // The same at `--log-level trace` through the commands that run without FUSE.
    let (_cli_dir, cli_config) = write_config(&text);
    std::fs::set_permissions(&cli_config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = cli_config.to_str().unwrap();
    let mut cli_log = String::new();
    for args in [
        vec!["check", cfg],
        vec!["ls", cfg, "/123share/Docs"],
        vec!["cat", cfg, "/pikpak/Docs/readme.txt"],
        vec!["cat", cfg, "/123/Docs/readme.txt"],
        vec!["cat", cfg, "/pikshare/Docs/readme.txt"],
        vec!["cat", cfg, "/links/Docs/readme.txt"],
    ] {
        let (code, out, err) = run(&[&["--log-level", "trace"][..], &args].concat());
        assert_eq!(code, 0, "{args:?}: {err}");
        cli_log.push_str(&err);
        if args[0] != "cat" {
            cli_log.push_str(&String::from_utf8_lossy(&out));
        }
    }

    let secrets = h.secrets.list();
    for expected in [PIKPAK_PASSWORD, PIKPAK_SHARE_CODE, PASSWORD, PAN123_SHARE_TOKEN, KEY] {
        assert!(secrets.iter().any(|s| s == expected), "the simulator saw {expected}");
    }
    assert!(secrets.iter().any(|s| s.starts_with("ck0.")) && secrets.iter().any(|s| s.starts_with("os.")));
    assert!(secrets.len() > 30, "{} secrets", secrets.len());
    assert_no_secret(&secrets, &log, "the mount's log");
    assert_no_secret(&secrets, &cli_log, "the commands' output");

    // State files: private, and no temp file left behind.
    let files: Vec<_> = std::fs::read_dir(state.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(files.iter().any(|f| f.file_name().unwrap().to_string_lossy().starts_with("pikpak-")), "{files:?}");
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(!name.ends_with(".tmp"), "a temp file was left: {name}");
        if file.is_file() && name.ends_with(".json") {
            let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }

    // The config holds passwords and is readable by others: one warning per run, naming the
    // file and the fix (the mount's was checked above). Once it is private, none.
    assert_eq!(warnings_about(&cli_config, &cli_log), 6, "{cli_log}");
    std::fs::set_permissions(&cli_config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, _, err) = run(&["ls", cfg, "/links"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(warnings_about(&cli_config, &err), 0, "{err}");
}

#[test]
fn a_config_without_inline_secrets_may_be_readable() {
    let sim = Sim::start(true);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), KEY).unwrap();
    let text =
        sim.config(SizeMode::Full, KEY, "").replace(&format!("private_key = \"{KEY}\""), "private_key_file = \"key\"");
    let path = dir.path().join("panmount.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out, err) = run(&["ls", path.to_str().unwrap(), "/links/Docs"]);
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("readme.txt"));
    assert_eq!(warnings_about(&path, &err), 0, "{err}");
}
