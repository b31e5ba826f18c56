//! `[[notify]]`: each kind's keys, the secrets' `${ENV}` and `X_file` forms, and the errors.

use super::*;

/// `tables` after a valid storage (4 lines), so a table's lines start at 5.
fn notify(tables: &str) -> Result<Vec<NotifyConfig>, ConfigError> {
    parse(&format!("{}{tables}", link_storage("/a"))).map(|c| c.notify)
}

fn notify_err(tables: &str) -> ConfigError {
    notify(tables).map(|n| panic!("expected an error for {tables}, got {n:?}")).unwrap_err()
}

fn url(s: &str) -> url::Url {
    url::Url::parse(s).unwrap()
}

#[test]
fn each_kind() {
    let n = notify(
        "[[notify]]\nkind = \"jellyfin\"\nurl = \"http://127.0.0.1:8096\"\napi_key = \"jk\"\npath_prefix = \"/media/pan/\"\n\
         [[notify]]\nkind = \"emby\"\nurl = \"https://emby.lan/emby\"\napi_key = \"ek\"\n\
         [[notify]]\nkind = \"plex\"\nurl = \"http://plex:32400\"\ntoken = \"pt\"\n\
         [[notify]]\nkind = \"command\"\ncommand = [\"/usr/local/bin/on-change\", \"-v\"]\n",
    )
    .unwrap();
    assert_eq!(n.len(), 4);
    assert_eq!(n[0].target, NotifyTarget::Jellyfin { url: url("http://127.0.0.1:8096"), api_key: "jk".into() });
    assert_eq!(n[0].path_prefix.as_deref(), Some(Path::new("/media/pan")));
    assert_eq!(n[1].target, NotifyTarget::Emby { url: url("https://emby.lan/emby"), api_key: "ek".into() });
    assert_eq!(n[1].path_prefix, None);
    assert_eq!(n[2].target, NotifyTarget::Plex { url: url("http://plex:32400"), token: "pt".into() });
    assert_eq!(n[3].target, NotifyTarget::Command { argv: vec!["/usr/local/bin/on-change".into(), "-v".into()] });
    assert_eq!(
        n.iter().map(|n| n.table.as_str()).collect::<Vec<_>>(),
        ["notify[1]", "notify[2]", "notify[3]", "notify[4]"]
    );
    assert_eq!(n.iter().map(|n| n.inline_secret).collect::<Vec<_>>(), [true, true, true, false]);
    // Secrets never show in Debug output.
    let shown = format!("{n:?}");
    assert!(!shown.contains("\"jk\"") && !shown.contains("\"ek\"") && !shown.contains("\"pt\""), "{shown}");
    assert!(shown.contains("http://plex:32400") && shown.contains("on-change"), "{shown}");
    assert!(notify("").unwrap().is_empty(), "no [[notify]]: nothing");
}

#[test]
fn secrets_from_the_environment_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plex.token"), "t0k\n\n").unwrap();
    unsafe { std::env::set_var("PANMOUNT_TEST_JELLYFIN_KEY_1", "from-env") };
    let text = format!(
        "{}[[notify]]\nkind = \"jellyfin\"\nurl = \"http://j\"\napi_key = \"${{PANMOUNT_TEST_JELLYFIN_KEY_1}}\"\n\
         [[notify]]\nkind = \"plex\"\nurl = \"http://p\"\ntoken_file = \"plex.token\"\n",
        link_storage("/a")
    );
    let n = Config::parse(&text, &dir.path().join("panmount.toml")).unwrap().notify;
    assert_eq!(n[0].target, NotifyTarget::Jellyfin { url: url("http://j"), api_key: "from-env".into() });
    assert_eq!(n[1].target, NotifyTarget::Plex { url: url("http://p"), token: "t0k".into() });
    assert!(!n[0].inline_secret && !n[1].inline_secret);

    let e = notify_err("[[notify]]\nkind = \"emby\"\nurl = \"http://e\"\napi_key = \"a\"\napi_key_file = \"/k\"\n");
    assert_err(
        &e,
        Some("notify[1].api_key_file"),
        Some(9),
        "both `api_key` and `api_key_file` are given; use only one",
    );
    let e = notify_err("[[notify]]\nkind = \"plex\"\nurl = \"http://p\"\ntoken_file = \"/nonexistent/panmount/t\"\n");
    assert_err(&e, Some("notify[1].token_file"), Some(8), "cannot read file /nonexistent/panmount/t");
    let e = notify_err("[[notify]]\nkind = \"plex\"\nurl = \"http://p\"\ntoken = \"${PANMOUNT_TEST_UNSET_PLEX}\"\n");
    assert_err(&e, Some("notify[1].token"), Some(8), "PANMOUNT_TEST_UNSET_PLEX is not set");
}

#[test]
fn mistakes_name_the_key_and_line() {
    let e = notify_err("[[notify]]\nurl = \"http://j\"\n");
    assert_err(&e, Some("notify[1].kind"), Some(5), "missing required key `kind` (jellyfin, emby, plex, command)");
    let e = notify_err("[[notify]]\nkind = \"kodi\"\n");
    assert_err(&e, Some("notify[1].kind"), Some(6), "unknown kind `kodi`; valid kinds: jellyfin, emby, plex, command");
    let e = notify_err("[[notify]]\nkind = \"jellyfin\"\napi_key = \"k\"\n");
    assert_err(&e, Some("notify[1].url"), Some(5), "missing required key `url` for kind = \"jellyfin\"");
    let e = notify_err("[[notify]]\nkind = \"jellyfin\"\nurl = \"http://j\"\n");
    assert_err(&e, Some("notify[1].api_key"), Some(5), "missing required key `api_key`");
    let e = notify_err("[[notify]]\nkind = \"plex\"\nurl = \"http://p\"\n");
    assert_err(&e, Some("notify[1].token"), Some(5), "missing required key `token`");
    let e = notify_err("[[notify]]\nkind = \"command\"\n");
    assert_err(&e, Some("notify[1].command"), Some(5), "missing required key `command`");
    let e = notify_err("[[notify]]\nkind = \"jellyfin\"\nurl = \"127.0.0.1:8096\"\napi_key = \"k\"\n");
    assert_err(&e, Some("notify[1].url"), Some(7), "expected an http(s) URL");
    let e = notify_err("[[notify]]\nkind = \"plex\"\nurl = \"ftp://p\"\ntoken = \"t\"\n");
    assert_err(&e, Some("notify[1].url"), Some(7), "expected an http(s) URL");
    let e = notify_err("[[notify]]\nkind = \"jellyfin\"\nurl = \"http://j\"\ntoken = \"t\"\n");
    assert_err(
        &e,
        Some("notify[1].token"),
        Some(8),
        "`token` does not apply to kind = \"jellyfin\"; its keys: kind, url, api_key (or api_key_file), path_prefix",
    );
    let e = notify_err("[[notify]]\nkind = \"command\"\ncommand = [\"/x\"]\nurl = \"http://j\"\n");
    assert_err(&e, Some("notify[1].url"), Some(8), "`url` does not apply to kind = \"command\"");
    let e = notify_err("[[notify]]\nkind = \"plex\"\nurl = \"http://p\"\ntoken = \"t\"\ndebounce = \"5s\"\n");
    assert_err(&e, Some("notify[1].debounce"), Some(9), "unknown key `debounce`; valid keys in [[notify]]: kind, url,");
    let e = notify_err("[[notify]]\nkind = \"command\"\ncommand = \"/x\"\n");
    assert_err(&e, Some("notify[1].command"), Some(7), "expected an array of strings, the program first");
    let e = notify_err("[[notify]]\nkind = \"command\"\ncommand = []\n");
    assert_err(&e, Some("notify[1].command"), Some(7), "expected an array of strings, the program first");
    let e = notify_err("[[notify]]\nkind = \"command\"\ncommand = [\"/x\", 1]\n");
    assert_err(&e, Some("notify[1].command"), Some(7), "expected a string, found an integer");
    let e = notify_err("[[notify]]\nkind = \"command\"\ncommand = [\"/x\"]\npath_prefix = \"media\"\n");
    assert_err(&e, Some("notify[1].path_prefix"), Some(8), "must be absolute");
    let e = notify_err("[notify]\nkind = \"command\"\n");
    assert_err(&e, Some("notify"), Some(5), "expected an array of tables ([[notify]], with two brackets)");
    // The second table's mistake names it.
    let e = notify_err("[[notify]]\nkind = \"command\"\ncommand = [\"/x\"]\n[[notify]]\nkind = \"emby\"\n");
    assert_err(&e, Some("notify[2].url"), Some(8), "missing required key `url`");
}
