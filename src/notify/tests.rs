//! The hooks against a fake media server (`crate::sim::media`): batching and its timing, path
//! rewriting, each API's exact requests, a command's arguments, retries, and secrets kept out
//! of the log. The waits are shortened ([`FAST`]); each test polls for what it expects.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::config::Config;
use crate::sim::media::FakeMedia;

const FAST: Timing = Timing {
    quiet: Duration::from_millis(150),
    max_wait: Duration::from_millis(600),
    request_timeout: Duration::from_secs(5),
    command_timeout: Duration::from_secs(5),
    retry_after: [Duration::from_millis(50), Duration::from_millis(50), Duration::from_millis(50)],
};

const MOUNT: &str = "/mnt/pan";

/// The `[[notify]]` tables of `tables` (a storage is added to make a valid config).
fn hooks(tables: &str) -> Vec<NotifyConfig> {
    let text = format!(
        "{tables}\n[[storage]]\npath = \"/links\"\ndriver = \"123pan_link\"\norigin_urls = \"https://vip.123pan.cn/1/a.mp4\"\n"
    );
    Config::parse(&text, Path::new("/etc/panmount.toml")).unwrap().notify
}

fn jellyfin(media: &FakeMedia, extra: &str) -> Vec<NotifyConfig> {
    hooks(&format!(
        "[[notify]]\nkind = \"jellyfin\"\nurl = \"{}\"\napi_key = \"k3y-of-jellyfin\"\n{extra}",
        media.url()
    ))
}

/// Wait (at most 5 s) until `media` has received `n` requests.
async fn received(media: &FakeMedia, n: usize) -> Vec<crate::sim::media::Received> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = media.received();
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "{} of {n} requests received: {got:#?}", got.len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn updates(body: &serde_json::Value) -> Vec<(String, String)> {
    let updates = body["Updates"].as_array().unwrap_or_else(|| panic!("no Updates in {body}"));
    updates
        .iter()
        .map(|u| (u["Path"].as_str().unwrap().to_owned(), u["UpdateType"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn paths_are_rewritten_from_the_mount_point() {
    assert_eq!(rewrite("/media/pan", "/pikpak/TV"), "/media/pan/pikpak/TV");
    assert_eq!(rewrite("/media/pan/", "/pikpak/TV"), "/media/pan/pikpak/TV");
    assert_eq!(rewrite("/media/pan", "/"), "/media/pan");
    assert_eq!(rewrite("/", "/pikpak"), "/pikpak");
    assert_eq!(rewrite("/", "/"), "/");
}

#[tokio::test]
async fn a_burst_is_one_jellyfin_request_with_every_folder_once() {
    let media = FakeMedia::start(204).await.unwrap();
    let notifier = Notifier::with_timing(&jellyfin(&media, "path_prefix = \"/media/pan\""), Path::new(MOUNT), FAST);
    for path in ["/pikpak/TV", "/123/Movies", "/pikpak/TV", "/pikpak/TV/Show A", "/123/Movies"] {
        notifier.changed(path);
    }
    let got = received(&media, 1).await;
    tokio::time::sleep(FAST.max_wait).await;
    assert_eq!(media.received().len(), 1, "one request for the burst: {:#?}", media.received());
    let request = &got[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/Library/Media/Updated"));
    assert_eq!(request.header("x-emby-token"), Some("k3y-of-jellyfin"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let modified = |p: &str| (p.to_owned(), "Modified".to_owned());
    assert_eq!(
        updates(&request.json()),
        [modified("/media/pan/123/Movies"), modified("/media/pan/pikpak/TV"), modified("/media/pan/pikpak/TV/Show A")]
    );
}

#[tokio::test]
async fn a_steady_trickle_is_sent_after_the_longest_wait() {
    let media = FakeMedia::start(204).await.unwrap();
    let timing = Timing { quiet: Duration::from_millis(500), max_wait: Duration::from_millis(1000), ..FAST };
    let notifier = Notifier::with_timing(&jellyfin(&media, ""), Path::new(MOUNT), timing);
    // A change every 50 ms never leaves 500 ms of quiet; the batch goes after 1 s anyway.
    let started = Instant::now();
    let mut n = 0;
    while media.received().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(3), "nothing sent while changes kept coming");
        notifier.changed(&format!("/pikpak/{n}"));
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() >= timing.max_wait, "sent after {:?}", started.elapsed());
    // Without path_prefix the mount point is the prefix.
    let paths = updates(&media.received()[0].json());
    assert!(paths.len() > 5 && paths.iter().all(|(p, _)| p.starts_with("/mnt/pan/pikpak/")), "{paths:?}");
}

#[tokio::test]
async fn emby_gets_the_same_request_under_its_base_path() {
    let media = FakeMedia::start(200).await.unwrap();
    let config =
        hooks(&format!("[[notify]]\nkind = \"emby\"\nurl = \"{}/emby/\"\napi_key = \"emby-k3y\"\n", media.url()));
    let notifier = Notifier::with_timing(&config, Path::new(MOUNT), FAST);
    notifier.changed("/");
    let got = received(&media, 1).await;
    assert_eq!((got[0].method.as_str(), got[0].path.as_str()), ("POST", "/emby/Library/Media/Updated"));
    assert_eq!(got[0].header("x-emby-token"), Some("emby-k3y"));
    assert_eq!(updates(&got[0].json()), [("/mnt/pan".to_owned(), "Modified".to_owned())]);
}

const SECTIONS: &str = r#"{"MediaContainer":{"size":2,"Directory":[
    {"key":"1","title":"TV","type":"show","Location":[{"id":1,"path":"/media/pan/pikpak/TV"}]},
    {"key":"2","title":"Movies","type":"movie","Location":[{"id":2,"path":"/media/pan/123/Movies"},{"id":3,"path":"/media/pan/123/Films/"}]}
]}}"#;

#[tokio::test]
async fn plex_scans_the_section_of_each_path_and_skips_the_others() {
    let media = FakeMedia::start(200).await.unwrap();
    media.serve("/library/sections", SECTIONS);
    let config = hooks(&format!(
        "[[notify]]\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"plex-t0ken\"\npath_prefix = \"/media/pan\"\n",
        media.url()
    ));
    let notifier = Notifier::with_timing(&config, Path::new(MOUNT), FAST);
    for path in ["/pikpak/TV/Show A", "/123/Films", "/pikpak/Music", "/123/Movies2"] {
        notifier.changed(path);
    }
    let got = received(&media, 3).await;
    let sections = &got[0];
    assert_eq!((sections.method.as_str(), sections.path.as_str()), ("GET", "/library/sections"));
    assert_eq!(sections.header("x-plex-token"), Some("plex-t0ken"));
    assert_eq!(sections.header("accept"), Some("application/json"));
    let refreshes: Vec<(&str, &str, &str)> =
        got[1..].iter().map(|r| (r.method.as_str(), r.path.as_str(), r.query.as_str())).collect();
    assert_eq!(
        refreshes,
        [
            ("GET", "/library/sections/2/refresh", "path=%2Fmedia%2Fpan%2F123%2FFilms"),
            ("GET", "/library/sections/1/refresh", "path=%2Fmedia%2Fpan%2Fpikpak%2FTV%2FShow%20A"),
        ]
    );
    assert!(got[1..].iter().all(|r| r.header("x-plex-token") == Some("plex-t0ken")));

    // The next batch: a path in a section uses the sections known; one in none asks again, once.
    notifier.changed("/pikpak/TV");
    let got = received(&media, 4).await;
    assert_eq!(
        (got[3].path.as_str(), got[3].query.as_str()),
        ("/library/sections/1/refresh", "path=%2Fmedia%2Fpan%2Fpikpak%2FTV")
    );
    notifier.changed("/pikpak/Music");
    let got = received(&media, 5).await;
    tokio::time::sleep(FAST.max_wait).await;
    assert_eq!(got[4].path, "/library/sections");
    assert_eq!(media.received().len(), 5, "{:#?}", media.received());
}

#[tokio::test]
async fn a_command_gets_the_paths_as_arguments() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("args.txt");
    let script = dir.path().join("on-change");
    std::fs::write(&script, format!("#!/bin/sh\nfor a in \"$@\"; do echo \"$a\" >> '{}'; done\n", out.display()))
        .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = hooks(&format!(
        "[[notify]]\nkind = \"command\"\ncommand = [\"{}\", \"--changed\"]\npath_prefix = \"/srv\"\n",
        script.display()
    ));
    let notifier = Notifier::with_timing(&config, Path::new(MOUNT), FAST);
    notifier.changed("/pikpak/TV/Show A");
    notifier.changed("/123");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&out).map_or(true, |s| s.lines().count() < 3) {
        assert!(Instant::now() < deadline, "the command did not run");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(FAST.max_wait).await;
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "--changed\n/srv/123\n/srv/pikpak/TV/Show A\n");
}

/// Log lines written while a test runs, on the test's thread (its runtime's only one).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_failure_is_retried_and_logged_without_the_key() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let media = FakeMedia::start(204).await.unwrap();
    media.then(&[500]);
    let notifier = Notifier::with_timing(&jellyfin(&media, ""), Path::new(MOUNT), FAST);
    notifier.changed("/pikpak/TV");
    let got = received(&media, 2).await;
    assert_eq!(got[0].body, got[1].body, "the same batch again");
    tokio::time::sleep(FAST.max_wait).await;
    assert_eq!(media.received().len(), 2);
    let text = logs.text();
    let warned: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warned.len(), 1, "{text}");
    assert!(warned[0].contains("500") && warned[0].contains("jellyfin") && warned[0].contains(&media.url()), "{text}");
    assert!(!text.contains("k3y-of-jellyfin"), "the key is in the log:\n{text}");
}

#[tokio::test]
async fn a_target_that_stays_down_gives_up_and_holds_up_no_other() {
    let media = FakeMedia::start(204).await.unwrap();
    let down = FakeMedia::start(503).await.unwrap();
    let tables = format!(
        "[[notify]]\nkind = \"jellyfin\"\nurl = \"{}\"\napi_key = \"a\"\n\
         [[notify]]\nkind = \"emby\"\nurl = \"{}\"\napi_key = \"b\"\n",
        down.url(),
        media.url()
    );
    let notifier = Notifier::with_timing(&hooks(&tables), Path::new(MOUNT), FAST);
    notifier.changed("/a");
    received(&media, 1).await;
    let failed = received(&down, 1 + FAST.retry_after.len()).await;
    assert!(failed.iter().all(|r| updates(&r.json()) == [("/mnt/pan/a".to_owned(), "Modified".to_owned())]));
    // Given up: the next change is a new batch, sent once more to both.
    tokio::time::sleep(FAST.max_wait).await;
    assert_eq!(down.received().len(), 4);
    notifier.changed("/b");
    received(&media, 2).await;
    received(&down, 5).await;
}

#[tokio::test]
async fn a_flush_sends_at_once_and_returns_once_delivered() {
    let media = FakeMedia::start(204).await.unwrap();
    let notifier = Notifier::start(&jellyfin(&media, ""), Path::new(MOUNT));
    notifier.changed("/pikpak/TV");
    let started = Instant::now();
    notifier.flush().await;
    assert!(started.elapsed() < QUIET, "waited {:?} for quiet", started.elapsed());
    assert_eq!(media.received().len(), 1);
    // Nothing gathered: nothing sent.
    notifier.flush().await;
    assert_eq!(media.received().len(), 1);
}

#[test]
fn a_logged_url_has_no_credentials() {
    let url = url::Url::parse("http://me:pw@plex.lan:32400/base/?X-Plex-Token=t0k").unwrap();
    assert_eq!(deliver::shown(&url), "http://plex.lan:32400/base/");
}
