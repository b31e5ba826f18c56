//! Tests of the config loader: every error names the key and the line; defaults; `${ENV}` and
//! `X_file` resolution.

use super::*;

mod fuzz;
mod notify;
mod secrets;
mod traffic;

const LINK: &str = "https://vip.123pan.cn/1/a.mp4";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/panmount.toml"))
}

fn err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts key, line and a fragment of the message.
#[track_caller]
fn assert_err(e: &ConfigError, key: Option<&str>, line: Option<usize>, fragment: &str) {
    assert_eq!(e.key.as_deref(), key, "key of {e}");
    assert_eq!(e.line, line, "line of {e}");
    assert!(e.message.contains(fragment), "message of {e:?} lacks {fragment:?}");
    assert_eq!(e.file, Path::new("/etc/panmount.toml"));
}

fn link_storage(path: &str) -> String {
    format!("[[storage]]\npath = \"{path}\"\ndriver = \"123pan_link\"\norigin_urls = \"{LINK}\"\n")
}

#[test]
fn minimal_config_gets_the_defaults() {
    let c = parse(&link_storage("/links")).unwrap();
    assert_eq!(c.mountpoint, None);
    assert_eq!(c.state_dir, None);
    assert_eq!(c.fuse, FuseConfig { allow_other: false, uid: None, gid: None, umask: 0o022 });
    assert_eq!(c.cache.dir_cache_time, Duration::from_secs(300));
    assert_eq!(c.cache.negative_cache_time, Duration::from_secs(60));
    assert_eq!(c.cache.link_expiry_margin, Duration::from_secs(60));
    assert_eq!(c.cache.memory_limit_mb, 128);
    assert_eq!(c.cache.max_read_ahead_mb, 64);
    assert_eq!(c.cache.kernel_read_ahead_kb, 128);
    assert!(c.cache.direct_io);
    assert_eq!(c.cache, CacheConfig::default());
    assert_eq!(c.storages.len(), 1);
    let s = &c.storages[0];
    assert_eq!((s.path.as_str(), s.driver.as_str()), ("/links", "123pan_link"));
    assert_eq!(s.options.table, "storage[1]");
    assert_eq!(s.options.require_str("origin_urls").unwrap(), LINK);
    assert_eq!(s.options.values["origin_urls"].line, Some(4));
}

#[test]
fn full_config() {
    let text = format!(
        r#"mountpoint = "/mnt/pan"
state_dir = "/var/lib/panmount"

[fuse]
allow_other = true
uid = 1000
gid = 1001
umask = "027"

[cache]
dir_cache_time = "1h30m"
negative_cache_time = 30
link_expiry_margin = "500ms"
memory_limit_mb = 512
max_read_ahead_mb = 32
kernel_read_ahead_kb = 0
direct_io = false

{}
[[storage]]
path = "//b//c/"
driver = "123pan_link"
origin_urls = """
Movies:
  {LINK}
"""
private_key = "k"
uid = 13
valid_duration = "45"
"#,
        link_storage("/a")
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.mountpoint.as_deref(), Some(Path::new("/mnt/pan")));
    assert_eq!(c.state_dir.as_deref(), Some(Path::new("/var/lib/panmount")));
    assert_eq!(c.fuse, FuseConfig { allow_other: true, uid: Some(1000), gid: Some(1001), umask: 0o027 });
    assert_eq!(c.cache.dir_cache_time, Duration::from_secs(5400));
    assert_eq!(c.cache.negative_cache_time, Duration::from_secs(30));
    assert_eq!(c.cache.link_expiry_margin, Duration::from_millis(500));
    assert_eq!(c.cache.memory_limit_mb, 512);
    assert_eq!(c.cache.max_read_ahead_mb, 32);
    assert_eq!(c.cache.kernel_read_ahead_kb, 0);
    assert!(!c.cache.direct_io);
    assert_eq!(c.storages[1].path, "/b/c");
    let o = &c.storages[1].options;
    assert_eq!(o.table, "storage[2]");
    assert_eq!(o.require_str("origin_urls").unwrap(), format!("Movies:\n  {LINK}\n"));
    assert_eq!(o.str("private_key").unwrap().as_deref(), Some("k"));
    assert_eq!(o.u64_or("uid", 0).unwrap(), 13);
    assert_eq!(o.i64_or("valid_duration", 30).unwrap(), 45);
    assert_eq!(o.str("proxy").unwrap(), None);
    let uid_line = text.lines().position(|l| l == "uid = 13").unwrap() + 1;
    assert_eq!(o.values["uid"].line, Some(uid_line));
}

#[test]
fn toml_syntax_error_has_its_line() {
    let e = err("mountpoint = \"/mnt\"\n\n[fuse\nallow_other = true\n");
    assert_err(&e, None, Some(3), "invalid TOML");
    let e = err("mountpoint = \"/mnt\"\nmountpoint = \"/x\"\n");
    assert_err(&e, None, Some(2), "duplicate key");
}

#[test]
fn unknown_keys() {
    let e = err(&format!("mountpoint = \"/m\"\nmount_point = \"/m\"\n{}", link_storage("/a")));
    assert_err(
        &e,
        Some("mount_point"),
        Some(2),
        "unknown key `mount_point`; valid top-level keys: mountpoint, state_dir, fuse, cache, storage, notify",
    );
    let e = err(&format!("[fuse]\nalow_other = true\n{}", link_storage("/a")));
    assert_err(&e, Some("fuse.alow_other"), Some(2), "valid keys in [fuse]: allow_other, uid, gid, umask");
    let e = err(&format!("{}[cache]\n\ndir_cache = 5\n", link_storage("/a")));
    assert_err(&e, Some("cache.dir_cache"), Some(7), "unknown key `dir_cache`; valid keys in [cache]: dir_cache_time,");
    let e = err(&format!("{}privatekey = \"x\"\n", link_storage("/a")));
    assert_err(
        &e,
        Some("storage[1].privatekey"),
        Some(5),
        "unknown option `privatekey` for driver 123pan_link; valid options: origin_urls, private_key, uid, valid_duration, proxy",
    );
    // `X_file` exists only for real options.
    let e = err(&format!("{}path_file = \"/x\"\n", link_storage("/a")));
    assert_err(&e, Some("storage[1].path_file"), Some(5), "unknown option `path_file`");
}

#[test]
fn wrong_types_say_what_was_expected() {
    let s = link_storage("/a");
    let e = err(&format!("mountpoint = 3\n{s}"));
    assert_err(&e, Some("mountpoint"), Some(1), "expected a string, found an integer");
    let e = err(&format!("[fuse]\nallow_other = \"yes\"\n{s}"));
    assert_err(&e, Some("fuse.allow_other"), Some(2), "expected a boolean (true or false), found a string");
    let e = err(&format!("[fuse]\nuid = -1\n{s}"));
    assert_err(&e, Some("fuse.uid"), Some(2), "expected a non-negative integer no larger than 4294967295");
    let e = err(&format!("[fuse]\ngid = 1.5\n{s}"));
    assert_err(&e, Some("fuse.gid"), Some(2), "expected a non-negative integer, found a float");
    let e = err(&format!("{s}[cache]\nmemory_limit_mb = \"lots\"\n"));
    assert_err(&e, Some("cache.memory_limit_mb"), Some(6), "expected a non-negative integer");
    let e = err(&format!("{s}[cache]\nmemory_limit_mb = 0\n"));
    assert_err(&e, Some("cache.memory_limit_mb"), Some(6), "must be at least 1");
    let e = err(&format!("{s}[cache]\ndir_cache_time = \"5 minutes\"\n"));
    assert_err(&e, Some("cache.dir_cache_time"), Some(6), "invalid duration \"5 minutes\"; expected a duration");
    let e = err(&format!("{s}[cache]\nlink_expiry_margin = true\n"));
    assert_err(&e, Some("cache.link_expiry_margin"), Some(6), "expected a duration");
    let e = err(&format!("fuse = 1\n{s}"));
    assert_err(&e, Some("fuse"), Some(1), "expected a table ([fuse]), found an integer");
    let e = err("[storage]\npath = \"/a\"\n");
    assert_err(&e, Some("storage"), Some(1), "expected an array of tables ([[storage]]");
    let e = err("[[storage]]\npath = 1\ndriver = \"123pan_link\"\n");
    assert_err(&e, Some("storage[1].path"), Some(2), "expected a string, found an integer");
}

#[test]
fn umask_forms() {
    let s = link_storage("/a");
    let umask = |v: &str| parse(&format!("[fuse]\numask = {v}\n{s}")).map(|c| c.fuse.umask);
    assert_eq!(umask("\"022\"").unwrap(), 0o022);
    assert_eq!(umask("\"0\"").unwrap(), 0);
    assert_eq!(umask("\"0777\"").unwrap(), 0o777);
    // TOML itself refuses a leading zero; the syntax error gets a hint.
    let e = umask("022").unwrap_err();
    assert_err(&e, None, Some(2), "invalid TOML");
    assert!(e.message.contains("write the umask as a quoted string, e.g. umask = \"022\""), "{e}");
    let e = umask("22").unwrap_err();
    assert_err(&e, Some("fuse.umask"), Some(2), "quoted string of octal digits, e.g. umask = \"022\"");
    let e = umask("0o27").unwrap_err();
    assert_err(&e, Some("fuse.umask"), Some(2), "umask = \"027\"");
    let e = umask("\"089\"").unwrap_err();
    assert_err(&e, Some("fuse.umask"), Some(2), "expected octal digits");
    assert!(umask("\"1000\"").is_err());
    assert!(umask("\"\"").is_err());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
    assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("1m500ms").unwrap(), Duration::from_millis(60_500));
    assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    for bad in ["", "m", "5x", "1.5h", "-1s", "5 m", "h1"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn missing_required_keys_point_at_the_table() {
    let e = err("mountpoint = \"/m\"\n\n[[storage]]\ndriver = \"123pan_link\"\n");
    assert_err(&e, Some("storage[1].path"), Some(3), "missing required key `path`");
    let e = err(&format!("{}\n[[storage]]\npath = \"/b\"\n", link_storage("/a")));
    assert_err(&e, Some("storage[2].driver"), Some(6), "missing required key `driver`; known drivers: pikpak,");
}

#[test]
fn unknown_driver_lists_the_known_ones() {
    let e = err("[[storage]]\npath = \"/a\"\ndriver = \"onedrive\"\n");
    assert_err(
        &e,
        Some("storage[1].driver"),
        Some(3),
        "unknown driver `onedrive`; known drivers: pikpak, pikpak_share, 123pan, 123pan_share, 123pan_link",
    );
}

#[test]
fn storage_paths_are_normalised_and_checked() {
    assert_eq!(normalize_storage_path("/").unwrap(), "/");
    assert_eq!(normalize_storage_path("///").unwrap(), "/");
    assert_eq!(normalize_storage_path("/a//b/").unwrap(), "/a/b");
    assert_eq!(normalize_storage_path("/a.b/..c").unwrap(), "/a.b/..c");
    let e = err(&link_storage("pikpak"));
    assert_err(&e, Some("storage[1].path"), Some(2), "must be absolute");
    let e = err(&link_storage("/a/../b"));
    assert_err(&e, Some("storage[1].path"), Some(2), "\".\" or \"..\"");
    let e = err(&link_storage("/a/./b"));
    assert_err(&e, Some("storage[1].path"), Some(2), "\".\" or \"..\"");
    let e = err(&link_storage(""));
    assert_err(&e, Some("storage[1].path"), Some(2), "must be absolute");
}

#[test]
fn storages_must_not_overlap() {
    let two = |a: &str, b: &str| parse(&format!("{}\n{}", link_storage(a), link_storage(b)));
    let e = two("/a", "/a/").unwrap_err();
    assert_err(&e, Some("storage[2].path"), Some(7), "storage[1] and storage[2] both use the path /a");
    let e = two("/a", "/a/b").unwrap_err();
    assert_err(&e, Some("storage[2].path"), Some(7), "/a/b is inside /a");
    let e = two("/a/b", "/a").unwrap_err();
    assert_err(&e, Some("storage[2].path"), Some(7), "/a/b is inside /a");
    let e = two("/", "/a").unwrap_err();
    assert_err(&e, Some("storage[2].path"), Some(7), "a storage at \"/\" must be the only storage");
    let e = two("/a", "/").unwrap_err();
    assert_err(&e, Some("storage[2].path"), Some(7), "must be the only storage");
    // Siblings and shared prefixes that are not parents are fine.
    let c = two("/a", "/ab").unwrap();
    assert_eq!(c.storages[1].path, "/ab");
    two("/a/b", "/a/c").unwrap();
    // `/` alone is fine.
    assert_eq!(parse(&link_storage("/")).unwrap().storages[0].path, "/");
}

#[test]
fn at_least_one_storage() {
    let e = err("mountpoint = \"/m\"\n");
    assert_err(&e, Some("storage"), None, "no storage configured");
    let e = err("");
    assert_err(&e, Some("storage"), None, "no storage configured");
    let e = err("storage = []\n");
    assert_err(&e, Some("storage"), Some(1), "no storage configured");
}

#[test]
fn load_reads_the_file_or_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let e = Config::load(&path).unwrap_err();
    assert_eq!(e.file, path);
    assert!(e.message.contains("cannot read the config file"), "{e}");
    std::fs::write(&path, link_storage("/a")).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.file, path);
    assert_eq!(c.storages[0].options.file, path);
}

#[test]
fn option_types_are_checked_at_load() {
    for (option, key, fragment) in [
        ("private_key = 7", "private_key", "expected a string, found an integer"),
        ("uid = \"12x\"", "uid", "expected a non-negative integer, found the string \"12x\""),
        ("uid = -3", "uid", "non-negative"),
        ("valid_duration = 1.5", "valid_duration", "expected an integer"),
        ("proxy = true", "proxy", "expected a string, found a boolean"),
    ] {
        let e = parse(&format!("{}{option}\n", link_storage("/a"))).unwrap_err();
        assert_err(&e, Some(&format!("storage[1].{key}")), Some(5), fragment);
    }
}

#[test]
fn option_accessors() {
    let text = format!("{}uid = \"12\"\nvalid_duration = -5\n", link_storage("/a"));
    let c = parse(&text).unwrap();
    let o = &c.storages[0].options;
    assert_eq!(o.u64_or("uid", 0).unwrap(), 12);
    assert_eq!(o.i64_or("valid_duration", 30).unwrap(), -5);
    let e = o.u64_or("valid_duration", 30).unwrap_err();
    assert_err(&e, Some("storage[1].valid_duration"), Some(6), "non-negative");
    assert!(o.bool_or("missing", true).unwrap());
    assert_eq!(o.u64_or("missing", 9).unwrap(), 9);
    let e = o.require_str("missing").unwrap_err();
    assert_err(&e, Some("storage[1].missing"), None, "missing required option");
    let e = o.bool_or("origin_urls", false).unwrap_err();
    assert_err(&e, Some("storage[1].origin_urls"), Some(4), "expected a boolean");
}

#[test]
fn display_format() {
    let e = err(&format!("[fuse]\nalow_other = true\n{}", link_storage("/a")));
    assert_eq!(
        e.to_string(),
        "/etc/panmount.toml:2: fuse.alow_other: unknown key `alow_other`; valid keys in [fuse]: allow_other, uid, gid, umask"
    );
}

#[test]
fn disk_cache_and_connection_keys() {
    let c = parse(
        "[cache]\ndir = \"/var/cache/panmount\"\nmax_size = \"20G\"\nconnections_per_file = 8\n[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\norigin_urls = \"http://x/a\"\n",
    )
    .unwrap();
    assert_eq!(c.cache.dir.as_deref(), Some(std::path::Path::new("/var/cache/panmount")));
    assert_eq!(c.cache.max_size, 20 << 30);
    assert_eq!(c.cache.connections_per_file, 8);
    assert_eq!(parse_size("512K"), Ok(512 << 10));
    assert_eq!(parse_size("3MiB"), Ok(3 << 20));
    assert_eq!(parse_size("100"), Ok(100));
    assert!(parse_size("lots").is_err());
    let err = err(
        "[cache]\nmax_size = \"big\"\n[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\norigin_urls = \"http://x/a\"\n",
    );
    assert_eq!(err.key.as_deref(), Some("cache.max_size"));
}
