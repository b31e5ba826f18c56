//! The driver built from a config, as `drivers::build` builds it.

use std::path::Path;

use super::*;
use crate::config::Config;
use crate::http::HttpClient;
use crate::time::unix_now;

const TREE: &str = "Movies:
  1073741824:1700000000:https://vip.123pan.cn/1814435971/movies/a.mp4
  Extras:
    https://vip.123pan.cn/1814435971/movies/%E8%8A%B1%E7%B5%AE.mkv
  2048:https://vip.123pan.cn/1814435971/movies/b.srt
https://vip.123pan.cn/1814435971/readme.txt?x=1
";

fn ctx() -> BuildContext {
    BuildContext { http: HttpClient::new(None).unwrap(), state_dir: None }
}

fn options(extra: &str) -> Options {
    let text =
        format!("[[storage]]\npath = \"/links\"\ndriver = \"123pan_link\"\norigin_urls = '''\n{TREE}'''\n{extra}");
    let config = Config::parse(&text, Path::new("/etc/panmount.toml")).unwrap();
    config.storages.into_iter().next().unwrap().options
}

fn build(extra: &str) -> Result<Pan123Link, ConfigError> {
    Pan123Link::from_options(&options(extra), &ctx())
}

fn dir(id: &str) -> Entry {
    Entry { id: id.into(), name: String::new(), is_dir: true, size: None, mtime: UNIX_EPOCH, version: String::new() }
}

#[tokio::test]
async fn lists_the_tree() {
    let d = build("").unwrap();
    assert_eq!(d.kind(), "123pan_link");
    assert_eq!(d.max_connections(), crate::drivers::PAN123_CONNECTIONS);
    let root = d.root();
    assert_eq!((root.id.as_str(), root.is_dir), ("/", true));

    let top = d.list(&root).await.unwrap();
    let ids: Vec<_> = top.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["/Movies", "/readme.txt"]);
    assert!(top[0].is_dir);
    assert_eq!(top[1].name, "readme.txt");
    assert_eq!(top[1].size, None);
    assert_eq!(top[1].mtime, UNIX_EPOCH);

    let movies = d.list(&top[0]).await.unwrap();
    let names: Vec<_> = movies.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a.mp4", "Extras", "b.srt"]);
    let a = &movies[0];
    assert_eq!(a.id, "/Movies/a.mp4");
    assert_eq!(a.size, Some(1073741824));
    assert_eq!(a.mtime, UNIX_EPOCH + Duration::from_secs(1700000000));
    assert_eq!(a.version.len(), 16);
    assert_ne!(a.version, movies[2].version);
    // Stable across builds (the disk cache may outlive the process).
    let again = build("").unwrap();
    assert_eq!(again.list(&top[0]).await.unwrap()[0].version, a.version);

    let extras = d.list(&movies[1]).await.unwrap();
    assert_eq!(extras[0].id, "/Movies/Extras/花絮.mkv");
}

#[tokio::test]
async fn errors_for_unknown_ids_files_and_folders() {
    let d = build("").unwrap();
    assert!(matches!(d.list(&dir("/Nope")).await, Err(Error::NotFound)));
    assert!(matches!(d.list(&dir("/Movies/")).await, Err(Error::NotFound)));
    assert!(matches!(d.list(&dir("/readme.txt")).await, Err(Error::NotDir)));
    assert!(matches!(d.link(&dir("/Movies")).await, Err(Error::IsDir)));
    assert!(matches!(d.link(&dir("/Movies/zz.mp4")).await, Err(Error::NotFound)));
}

#[tokio::test]
async fn unsigned_links_are_the_written_urls() {
    let d = build("").unwrap();
    let link = d.link(&dir("/readme.txt")).await.unwrap();
    assert_eq!(link.url, "https://vip.123pan.cn/1814435971/readme.txt?x=1");
    assert_eq!(link.expires_at, None);
    assert!(link.headers.is_empty());
}

#[tokio::test]
async fn signed_links_expire_after_valid_duration() {
    let d = build("private_key = \"s3cr3tKey\"\nuid = \"1814435971\"\nvalid_duration = 45\n").unwrap();
    let before = unix_now();
    let link = d.link(&dir("/Movies/Extras/花絮.mkv")).await.unwrap();
    let after = unix_now();
    let (base, query) = link.url.split_once("?auth_key=").unwrap();
    assert_eq!(base, "https://vip.123pan.cn/1814435971/movies/%E8%8A%B1%E7%B5%AE.mkv");
    let parts: Vec<&str> = query.split('-').collect();
    assert_eq!(parts.len(), 4, "{query}");
    let ts: u64 = parts[0].parse().unwrap();
    let rand: u64 = parts[1].parse().unwrap();
    assert!(ts >= before + 45 * 60 && ts <= after + 45 * 60);
    assert!(rand <= i64::MAX as u64);
    assert_eq!(parts[2], "1814435971");
    let url = "https://vip.123pan.cn/1814435971/movies/%E8%8A%B1%E7%B5%AE.mkv";
    assert_eq!(link.url, auth_key::sign(url, "s3cr3tKey", 1814435971, ts, rand).unwrap());
    assert_eq!(link.expires_at, Some(UNIX_EPOCH + Duration::from_secs(ts)));
    // The existing query is kept (and sorted after auth_key).
    let link = d.link(&dir("/readme.txt")).await.unwrap();
    assert!(link.url.ends_with("&x=1"), "{}", link.redacted());
}

#[test]
fn option_errors() {
    let e = build("valid_duration = 0\n").err().unwrap();
    assert_eq!(e.key.as_deref(), Some("storage[1].valid_duration"));
    assert_eq!(e.line, Some(12));
    assert_eq!(e.message, "must be at least 1 (minutes)");
    // Wrong types are refused when the config is read (`config::driver_options`).
    let load = |extra: &str| {
        let text = format!("[[storage]]\npath = \"/l\"\ndriver = \"123pan_link\"\norigin_urls = \"x\"\n{extra}");
        Config::parse(&text, Path::new("/etc/panmount.toml")).err().unwrap()
    };
    assert_eq!(load("uid = -1\n").key.as_deref(), Some("storage[1].uid"));
    assert!(load("private_key = 5\n").message.contains("expected a string"));
    assert_eq!(load("proxy = 5\n").key.as_deref(), Some("storage[1].proxy"));

    let missing =
        Config::parse("[[storage]]\npath = \"/l\"\ndriver = \"123pan_link\"\n", Path::new("/etc/panmount.toml"))
            .unwrap();
    let e = Pan123Link::from_options(&missing.storages[0].options, &ctx()).err().unwrap();
    assert_eq!(e.key.as_deref(), Some("storage[1].origin_urls"));
    assert_eq!(e.message, "missing required option");
}

#[test]
fn tree_errors_name_the_line_of_the_text() {
    let text =
        "[[storage]]\npath = \"/l\"\ndriver = \"123pan_link\"\norigin_urls = \"\"\"\nA:\n   https://h/x\n\"\"\"\n";
    let config = Config::parse(text, Path::new("/etc/panmount.toml")).unwrap();
    let e = Pan123Link::from_options(&config.storages[0].options, &ctx()).err().unwrap();
    assert_eq!(e.key.as_deref(), Some("storage[1].origin_urls"));
    assert_eq!(e.line, Some(4));
    // The text starts after the newline that follows `"""`.
    assert_eq!(e.message, "line 2 of origin_urls: the line '   https://h/x' is not a multiple of 2");

    // With a key, URLs that cannot be signed are found at load time.
    let text = "[[storage]]\npath = \"/l\"\ndriver = \"123pan_link\"\norigin_urls = \"https://h/%zz/x\"\nprivate_key = \"k\"\n";
    let config = Config::parse(text, Path::new("/etc/panmount.toml")).unwrap();
    let e = Pan123Link::from_options(&config.storages[0].options, &ctx()).err().unwrap();
    assert_eq!(e.message, "line 1 of origin_urls: cannot sign the URL: invalid percent-escape in the path");
}

#[test]
fn built_through_the_registry() {
    let text = format!("[[storage]]\npath = \"/l\"\ndriver = \"123pan_link\"\norigin_urls = '''{TREE}'''\n");
    let config = Config::parse(&text, Path::new("/etc/panmount.toml")).unwrap();
    let driver = crate::drivers::build(&config.storages[0], &ctx()).unwrap();
    assert_eq!(driver.kind(), "123pan_link");
    assert_eq!(driver.root().id, "/");
}
