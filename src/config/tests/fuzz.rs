//! The fuzz target of the config file (see `crate::fuzz`): TOML assembled from the keys and
//! tables panmount reads with values of every type, plus arbitrary text. `Config::parse`
//! answers a config or an error that names the file (and, for a key, the key). Keys ending in
//! `_file` are left out: they read files, which is not the parser's input.

use std::path::Path;

use proptest::prelude::*;

use super::super::Config;

const KEYS: &[&str] = &[
    "mountpoint",
    "state_dir",
    "path",
    "driver",
    "allow_other",
    "uid",
    "gid",
    "umask",
    "dir_cache_time",
    "negative_cache_time",
    "memory_limit_mb",
    "max_read_ahead_mb",
    "connections_per_file",
    "dir",
    "max_size",
    "origin_urls",
    "private_key",
    "valid_duration",
    "username",
    "password",
    "refresh_token",
    "platform",
    "root_folder_id",
    "api_base",
    "user_base",
    "login_base",
    "proxy",
    "share_id",
    "share_key",
    "device_id",
    "disable_media_link",
    "link_lifetime_secs",
    "list_interval_ms",
];

fn line() -> impl Strategy<Value = String> {
    const VALUES: &[&str] = &[
        "\"/\"",
        "\"/mnt/pan\"",
        "\"123pan_link\"",
        "\"pikpak\"",
        "\"https://vip.123pan.cn/1/a.mp4\"",
        "\"${HOME}\"",
        "\"${PANMOUNT_FUZZ_UNSET}\"",
        "true",
        "1.5e300",
        "[1, \"a\"]",
        "{ a = 1 }",
        "1979-05-27T07:32:00Z",
    ];
    let value =
        prop_oneof![prop::sample::select(VALUES).prop_map(String::from), "-?[0-9]{1,21}", "\"[0-9a-z /.:%-]{0,12}\"",];
    let key = prop::sample::select(KEYS);
    prop_oneof![
        4 => (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        2 => prop::sample::select(&["[[storage]]", "[fuse]", "[cache]", "[[fuse]]", "[storage]"][..]).prop_map(String::from),
        1 => any::<String>().prop_filter("reads files", |s| !s.contains("_file")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::fuzz::cases(1000)))]

    #[test]
    fn fuzz_config_text(lines in prop::collection::vec(line(), 0..14)) {
        let text = lines.join("\n");
        let file = Path::new("/etc/panmount.toml");
        if let Err(e) = Config::parse(&text, file) {
            prop_assert_eq!(&e.file, file);
            prop_assert!(!e.message.is_empty());
            prop_assert!(e.to_string().starts_with("/etc/panmount.toml"), "{}", e);
            prop_assert!(e.line.is_none_or(|l| l >= 1 && l <= text.split('\n').count()), "{}", e);
        }
    }
}
