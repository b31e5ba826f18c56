//! `${ENV}` values and `X_file` options: how secrets stay out of the config file, and the
//! errors that name the key and the variable or file when they cannot be read.

use super::*;

#[test]
fn env_values() {
    unsafe {
        std::env::set_var("PANMOUNT_TEST_ENV_KEY_1", "s3cr3t");
        std::env::set_var("PANMOUNT_TEST_ENV_MNT_1", "/mnt/env");
        std::env::set_var("PANMOUNT_TEST_ENV_UID_1", "1814435971");
        std::env::set_var("PANMOUNT_TEST_ENV_FUSEUID_1", "33");
    }
    let text = format!(
        "mountpoint = \"${{PANMOUNT_TEST_ENV_MNT_1}}\"\n[fuse]\nuid = \"${{PANMOUNT_TEST_ENV_FUSEUID_1}}\"\n{}\
         private_key = \"${{PANMOUNT_TEST_ENV_KEY_1}}\"\nuid = \"${{PANMOUNT_TEST_ENV_UID_1}}\"\n\
         proxy = \"$PANMOUNT_TEST_ENV_KEY_1 ${{PANMOUNT_TEST_ENV_KEY_1}}\"\n",
        link_storage("/a")
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.mountpoint.as_deref(), Some(Path::new("/mnt/env")));
    assert_eq!(c.fuse.uid, Some(33));
    let o = &c.storages[0].options;
    assert_eq!(o.str("private_key").unwrap().as_deref(), Some("s3cr3t"));
    assert_eq!(o.u64_or("uid", 0).unwrap(), 1814435971);
    // Only a whole-string `${NAME}` is expanded.
    assert_eq!(o.str("proxy").unwrap().as_deref(), Some("$PANMOUNT_TEST_ENV_KEY_1 ${PANMOUNT_TEST_ENV_KEY_1}"));
}

#[test]
fn unset_env_names_key_and_variable() {
    let text = format!("{}password = 1\nprivate_key = \"${{PANMOUNT_TEST_UNSET_2}}\"\n", link_storage("/a"))
        .replace("password = 1\n", "");
    let e = err(&text);
    assert_err(&e, Some("storage[1].private_key"), Some(5), "environment variable PANMOUNT_TEST_UNSET_2 is not set");
    let e = err(&format!("state_dir = \"${{PANMOUNT_TEST_UNSET_3}}\"\n{}", link_storage("/a")));
    assert_err(&e, Some("state_dir"), Some(1), "PANMOUNT_TEST_UNSET_3 is not set");
}

#[test]
fn file_values() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "k3y\r\n\n").unwrap();
    let urls = dir.path().join("urls.txt");
    std::fs::write(&urls, format!("Movies:\n  {LINK}\n\n")).unwrap();
    std::fs::write(dir.path().join("uid"), "13\n").unwrap();
    unsafe { std::env::set_var("PANMOUNT_TEST_FILE_URLS_4", &urls) };
    let cfg = dir.path().join("panmount.toml");
    let text = format!(
        "[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\norigin_urls_file = \"${{PANMOUNT_TEST_FILE_URLS_4}}\"\n\
         private_key_file = \"{}\"\nuid_file = \"uid\"\n",
        key.display()
    );
    let c = Config::parse(&text, &cfg).unwrap();
    let o = &c.storages[0].options;
    assert_eq!(o.require_str("origin_urls").unwrap(), format!("Movies:\n  {LINK}"));
    assert_eq!(o.str("private_key").unwrap().as_deref(), Some("k3y"));
    // Relative to the config file's folder; a file's contents are a string, digits accepted.
    assert_eq!(o.u64_or("uid", 0).unwrap(), 13);
    assert_eq!(o.values["origin_urls"].line, Some(4));
    assert_eq!(o.values["private_key"].line, Some(5));
}

#[test]
fn unreadable_file_names_key_and_file() {
    let e = err(&format!("{}private_key_file = \"/nonexistent/panmount-test/key\"\n", link_storage("/a")));
    assert_err(&e, Some("storage[1].private_key_file"), Some(5), "cannot read file /nonexistent/panmount-test/key");
    let e = err(&format!("{}private_key_file = 5\n", link_storage("/a")));
    assert_err(&e, Some("storage[1].private_key_file"), Some(5), "expected a string, found an integer");
}

#[test]
fn both_x_and_x_file_is_an_error() {
    let e = err(&format!("{}origin_urls_file = \"/x\"\n", link_storage("/a")));
    assert_err(&e, Some("storage[1].origin_urls_file"), Some(5), "both `origin_urls` and `origin_urls_file` are given");
    let text = "[[storage]]\npath = \"/a\"\ndriver = \"123pan_link\"\norigin_urls_file = \"/x\"\norigin_urls = \"u\"\n";
    let e = err(text);
    assert_err(&e, Some("storage[1].origin_urls"), Some(5), "both `origin_urls_file` and `origin_urls` are given");
}

#[test]
fn inline_secrets_are_told_apart_from_env_and_file_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.txt"), "k\n").unwrap();
    unsafe { std::env::set_var("PANMOUNT_TEST_ENV_PW_3", "pw") };
    let file = dir.path().join("c.toml");
    let text = format!(
        "{}private_key_file = \"key.txt\"\n\
         [[storage]]\npath = \"/p\"\ndriver = \"pikpak\"\nusername = \"u\"\npassword = \"${{PANMOUNT_TEST_ENV_PW_3}}\"\n\
         [[storage]]\npath = \"/q\"\ndriver = \"pikpak\"\nrefresh_token = \"os.abc\"\n\
         proxy = \"http://me:hunter2@127.0.0.1:3128\"\n\
         [[storage]]\npath = \"/r\"\ndriver = \"pikpak\"\nusername = \"u\"\npassword_file = \"key.txt\"\n\
         proxy = \"http://me@127.0.0.1:3128\"\n",
        link_storage("/a")
    );
    let c = Config::parse(&text, &file).unwrap();
    let inline: Vec<&Vec<String>> = c.storages.iter().map(|s| &s.options.inline_secrets).collect();
    let (proxy, token) = ("proxy".to_string(), "refresh_token".to_string());
    assert_eq!(inline, [&vec![], &vec![], &vec![token, proxy], &vec![]], "a proxy with a password is a secret");
    // Debug output shows which options are set, never the secret values.
    let shown = format!("{c:?}");
    assert!(shown.contains("refresh_token") && !shown.contains("os.abc") && !shown.contains("\"k\""), "{shown}");
    assert!(!shown.contains("hunter2") && shown.contains("http://me@127.0.0.1:3128"), "{shown}");
}
