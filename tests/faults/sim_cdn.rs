//! The simulated CDN over real HTTP on 127.0.0.1: ranges, HEAD, 123pan `auth_key` signing,
//! fault knobs, admin endpoints, stats, sample data and the 123pan_link tree text.
//!
//! Signatures here are computed in the test from pan123-protocol.md §4.3 with the `md5` crate,
//! not with the simulator's own function, so the two implementations check each other.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use panmount::sim::{self, CdnAuth, KnobValues, SimConfig, SimHandle, SizeMode};
use percent_encoding::percent_decode_str;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, LAST_MODIFIED, RANGE, RETRY_AFTER};

const MIB: u64 = 1024 * 1024;
const KEY: &str = "s3cr3tKey";
const UID: u64 = 1814435971;

async fn start(auth: bool) -> (tempfile::TempDir, SimHandle) {
    let dir = tempfile::tempdir().unwrap();
    sim::generate(dir.path()).unwrap();
    let cdn_auth = auth.then(|| CdnAuth { private_key: KEY.into(), uid: UID });
    let config = SimConfig { listen: "127.0.0.1:0".parse().unwrap(), data_dir: dir.path().into(), cdn_auth };
    (dir, sim::start(config).await.unwrap())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap()
}

fn disk(dir: &tempfile::TempDir, rel: &str) -> Vec<u8> {
    std::fs::read(dir.path().join(rel.trim_start_matches('/'))).unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Sign `url` the way pan123-protocol.md §4.3 says: md5 of "decoded path-ts-rand-uid-key".
fn sign(url: &str, ts: u64, rand: &str, uid: u64, key: &str) -> String {
    let parsed = url::Url::parse(url).unwrap();
    let path = percent_decode_str(parsed.path()).decode_utf8().unwrap();
    let md5 = Md5::digest(format!("{path}-{ts}-{rand}-{uid}-{key}").as_bytes());
    let hex: String = md5.iter().map(|b| format!("{b:02x}")).collect();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}auth_key={ts}-{rand}-{uid}-{hex}")
}

async fn get(url: &str, range: Option<&str>) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = client().get(url);
    if let Some(r) = range {
        req = req.header(RANGE, r);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.bytes().await.unwrap().to_vec())
}

fn header(h: &reqwest::header::HeaderMap, name: reqwest::header::HeaderName) -> &str {
    h.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn full_get_has_exact_bytes_and_headers() {
    let (dir, sim) = start(false).await;
    let (status, h, body) = get(&sim.cdn_url("/Movies/movie.mp4"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len() as u64, 5 * MIB + 12_345);
    assert_eq!(body, disk(&dir, "/Movies/movie.mp4"));
    assert_eq!(header(&h, ACCEPT_RANGES), "bytes");
    assert_eq!(header(&h, CONTENT_LENGTH), body.len().to_string());
    // movie.mp4 is the first sample file: mtime 1_700_000_000.
    assert_eq!(header(&h, LAST_MODIFIED), "Tue, 14 Nov 2023 22:13:20 GMT");

    let (status, _, body) = get(&sim.cdn_url("/Ünïcödé folder/测试 video.mp4"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, disk(&dir, "/Ünïcödé folder/测试 video.mp4"));
    let (status, _, body) = get(&sim.cdn_url("/Docs/notes #1 (100%).txt"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 2_000);
    let (status, h, body) = get(&sim.cdn_url("/Docs/empty.txt"), None).await;
    assert_eq!((status, header(&h, CONTENT_LENGTH), body.len()), (StatusCode::OK, "0", 0));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ranges_are_exact_and_416_past_the_end() {
    let (dir, sim) = start(false).await;
    let rel = "/Ünïcödé folder/1 MiB plus one.bin";
    let url = sim.cdn_url(rel);
    let data = disk(&dir, rel);
    let size = data.len() as u64;
    assert_eq!(size, MIB + 1);
    let cases: &[(&str, u64, u64)] = &[
        ("bytes=1048575-1048576", MIB - 1, MIB),
        ("bytes=0-0", 0, 0),
        ("bytes=5-", 5, MIB),
        ("bytes=-3", MIB - 2, MIB),
        ("bytes=100-99999999", 100, MIB),
    ];
    for &(range, start, end) in cases {
        let (status, h, body) = get(&url, Some(range)).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(header(&h, CONTENT_RANGE), format!("bytes {start}-{end}/{size}"), "{range}");
        assert_eq!(header(&h, CONTENT_LENGTH), (end - start + 1).to_string(), "{range}");
        assert_eq!(body, &data[start as usize..=end as usize], "{range}");
    }
    for range in [format!("bytes={size}-"), format!("bytes={}-{}", size + 5, size + 10), "bytes=-0".into()] {
        let (status, h, body) = get(&url, Some(&range)).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(header(&h, CONTENT_RANGE), format!("bytes */{size}"));
        assert!(body.is_empty());
    }
    let (status, h, _) = get(&sim.cdn_url("/Docs/empty.txt"), Some("bytes=0-")).await;
    assert_eq!((status, header(&h, CONTENT_RANGE)), (StatusCode::RANGE_NOT_SATISFIABLE, "bytes */0"));
    // Invalid and multi-range requests are answered with the full body (documented choice).
    for range in ["bytes=10-5", "bytes=0-1,4-5"] {
        let (status, _, body) = get(&url, Some(range)).await;
        assert_eq!((status, body.len() as u64), (StatusCode::OK, size), "{range}");
    }
    let stats = sim.stats.snapshot();
    assert_eq!((stats.ranges, stats.unsatisfiable_416, stats.full), (5, 4, 2));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn head_missing_directories_and_traversal() {
    let (_dir, sim) = start(false).await;
    let c = client();
    let res = c.head(sim.cdn_url("/Movies/movie.srt")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(res.headers(), CONTENT_LENGTH), "4321");
    assert_eq!(header(res.headers(), ACCEPT_RANGES), "bytes");
    assert!(res.headers().contains_key(LAST_MODIFIED));
    assert!(res.bytes().await.unwrap().is_empty());
    let res = c.head(sim.cdn_url("/Movies/movie.srt")).header(RANGE, "bytes=10-19").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(res.headers(), CONTENT_RANGE), "bytes 10-19/4321");
    assert_eq!(header(res.headers(), CONTENT_LENGTH), "10");

    for rel in ["/Movies/nope.mp4", "/Movies", "/Movies/Extras/", "/nope/deeper/x"] {
        let res = c.get(sim.cdn_url(rel)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{rel}");
    }
    // `..` hidden from URL normalisation by an encoded slash.
    let res = c.get(format!("{}/cdn/Movies%2F..%2F..%2F..%2Fetc%2Fpasswd", sim.base_url())).send().await.unwrap();
    assert!(matches!(res.status(), StatusCode::FORBIDDEN | StatusCode::NOT_FOUND), "{}", res.status());
    assert_eq!(sim.stats.snapshot().head_requests, 2);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_key_is_required_and_checked() {
    let (dir, sim) = start(true).await;
    let rel = "/Ünïcödé folder/测试 video.mp4";
    let url = sim.cdn_url(rel);
    let ts = now() + 60;
    let good = sign(&url, ts, "5577006791947779410", UID, KEY);
    let (status, _, body) = get(&good, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, disk(&dir, rel));
    let (status, _, body) = get(&good, Some("bytes=10-20")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, &disk(&dir, rel)[10..=20]);
    // Other query parameters are ignored.
    let with_extra = sign(&format!("{url}?foo=bar"), ts, "42", UID, KEY);
    assert_eq!(get(&with_extra, None).await.0, StatusCode::OK);

    let raw_path_md5 = {
        // The variant that hashes the still-encoded path (pan123-protocol.md §4.3) is refused.
        let path = url::Url::parse(&url).unwrap().path().to_owned();
        let md5 = Md5::digest(format!("{path}-{ts}-1-{UID}-{KEY}").as_bytes());
        let hex: String = md5.iter().map(|b| format!("{b:02x}")).collect();
        format!("{url}?auth_key={ts}-1-{UID}-{hex}")
    };
    let refused = [
        url.clone(),
        format!("{url}?auth_key="),
        format!("{url}?auth_key=garbage"),
        format!("{url}?auth_key={ts}-1-{UID}"),
        sign(&url, ts, "1", UID, "wrong key"),
        sign(&url, ts, "1", UID + 1, KEY),
        sign(&url, now() - 10, "1", UID, KEY),
        sign(&sim.cdn_url("/Docs/readme.txt"), ts, "1", UID, KEY).replace("/Docs/readme.txt", "/Docs/empty.txt"),
        raw_path_md5,
    ];
    for (i, u) in refused.iter().enumerate() {
        assert_eq!(get(u, None).await.0, StatusCode::FORBIDDEN, "case {i}");
    }
    assert_eq!(sim.stats.snapshot().refused_403, refused.len() as u64);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn link_ttl_refuses_a_link_seen_too_long_ago() {
    let (_dir, sim) = start(true).await;
    sim.knobs.update(|k| k.link_ttl_secs = Some(0.3));
    let url = sim.cdn_url("/Movies/movie.nfo");
    let first = sign(&url, now() + 3600, "1", UID, KEY);
    assert_eq!(get(&first, None).await.0, StatusCode::OK);
    assert_eq!(get(&first, Some("bytes=0-9")).await.0, StatusCode::PARTIAL_CONTENT);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(get(&first, None).await.0, StatusCode::FORBIDDEN);
    let fresh = sign(&url, now() + 3600, "2", UID, KEY);
    assert_eq!(get(&fresh, None).await.0, StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_after_bytes_cuts_the_body() {
    let (dir, sim) = start(false).await;
    sim.knobs.update(|k| k.reset_after_bytes = Some(100_000));
    let rel = "/Movies/movie.mp4";
    let mut res = client().get(sim.cdn_url(rel)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut got = Vec::new();
    let err = loop {
        match res.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    assert!(err.is_some(), "the client must see an error, got a clean end after {} bytes", got.len());
    assert!(got.len() <= 100_000);
    assert_eq!(got, &disk(&dir, rel)[..got.len()]);
    // A body shorter than the limit is whole.
    let (status, _, body) = get(&sim.cdn_url(rel), Some("bytes=0-99999")).await;
    assert_eq!((status, body.len()), (StatusCode::PARTIAL_CONTENT, 100_000));
    assert_eq!(sim.stats.snapshot().resets, 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_chance_cuts_bodies_at_random_points() {
    let (dir, sim) = start(false).await;
    let rel = "/Movies/movie.mp4";
    let want = disk(&dir, rel);
    let body = |res: reqwest::Response| async move {
        let mut res = res;
        let mut got = Vec::new();
        loop {
            match res.chunk().await {
                Ok(Some(c)) => got.extend_from_slice(&c),
                Ok(None) => return (got, true),
                Err(_) => return (got, false),
            }
        }
    };
    sim.knobs.update(|k| k.reset_chance = 1.0);
    let mut cuts = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let (got, whole) = body(client().get(sim.cdn_url(rel)).send().await.unwrap()).await;
        assert!(!whole && got.len() < want.len(), "every body is cut");
        assert_eq!(got, want[..got.len()]);
        cuts.insert(got.len());
    }
    assert!(cuts.len() > 1, "cut at random points: {cuts:?}");
    assert_eq!(sim.stats.snapshot().resets, 4);
    sim.knobs.update(|k| k.reset_chance = 0.0);
    let (got, whole) = body(client().get(sim.cdn_url(rel)).send().await.unwrap()).await;
    assert!(whole && got == want);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn error_burst_then_ok() {
    let (_dir, sim) = start(false).await;
    let url = sim.cdn_url("/Docs/readme.txt");
    sim.knobs.update(|k| k.error_burst = 2);
    assert_eq!(get(&url, None).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&url, None).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&url, None).await.0, StatusCode::OK);
    sim.knobs.update(|k| {
        k.error_burst = 1;
        k.error_status = 429;
    });
    let (status, h, _) = get(&url, None).await;
    assert_eq!((status, header(&h, RETRY_AFTER)), (StatusCode::TOO_MANY_REQUESTS, "1"));
    assert_eq!(get(&url, None).await.0, StatusCode::OK);
    assert_eq!(sim.stats.snapshot().injected_errors, 3);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_range_knobs() {
    let (dir, sim) = start(false).await;
    let rel = "/Movies/movie.srt";
    let data = disk(&dir, rel);
    sim.knobs.update(|k| k.ignore_range = true);
    let (status, h, body) = get(&sim.cdn_url(rel), Some("bytes=100-199")).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, data.as_slice()));
    assert!(!h.contains_key(CONTENT_RANGE));
    sim.knobs.set(KnobValues { wrong_content_range: true, ..Default::default() });
    let (status, h, body) = get(&sim.cdn_url(rel), Some("bytes=100-199")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&h, CONTENT_RANGE), "bytes 101-199/4321");
    assert_eq!(body, &data[101..=199]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn throughput_and_first_byte_delay_slow_things_down() {
    let (_dir, sim) = start(false).await;
    let url = sim.cdn_url("/Movies/movie.mp4");
    sim.knobs.update(|k| k.throughput_bytes_per_sec = Some(400_000));
    let t = Instant::now();
    let (_, _, body) = get(&url, Some("bytes=0-199999")).await;
    assert_eq!(body.len(), 200_000);
    assert!(t.elapsed() >= Duration::from_millis(450), "{:?}", t.elapsed());
    sim.knobs.set(KnobValues { first_byte_delay_ms: 300, ..Default::default() });
    let t = Instant::now();
    assert_eq!(get(&url, Some("bytes=0-0")).await.0, StatusCode::PARTIAL_CONTENT);
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_endpoints_round_trip() {
    let (_dir, sim) = start(false).await;
    let c = client();
    let base = sim.base_url();
    let knobs: serde_json::Value = c.get(format!("{base}/_sim/knobs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(knobs["error_status"], 503);
    assert_eq!(knobs["error_burst"], 0);
    assert!(knobs["link_ttl_secs"].is_null());

    let res =
        c.put(format!("{base}/_sim/knobs")).body(r#"{"error_burst": 1, "link_ttl_secs": 2.5}"#).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let echoed: serde_json::Value = res.json().await.unwrap();
    assert_eq!((echoed["error_burst"].as_u64(), echoed["error_status"].as_u64()), (Some(1), Some(503)));
    let k = sim.knobs.get();
    assert_eq!((k.error_burst, k.link_ttl_secs, k.ignore_range), (1, Some(2.5), false));
    let res = c.put(format!("{base}/_sim/knobs")).body("{not json").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sim.knobs.get().error_burst, 1, "a bad PUT changes nothing");

    let url = sim.cdn_url("/Docs/readme.txt");
    assert_eq!(get(&url, None).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&url, None).await.0, StatusCode::OK);
    assert_eq!(get(&url, Some("bytes=0-9")).await.0, StatusCode::PARTIAL_CONTENT);
    assert_eq!(get(&sim.cdn_url("/nope"), None).await.0, StatusCode::NOT_FOUND);
    let stats: serde_json::Value = c.get(format!("{base}/_sim/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["requests"], 4);
    assert_eq!(stats["bytes_sent"], 110);
    assert_eq!(stats["ranges"], 1);
    assert_eq!(stats["injected_errors"], 1);
    assert_eq!(stats["not_found"], 1);
    assert_eq!(sim.stats.snapshot().bytes_sent, 110);

    let res = c.post(format!("{base}/_sim/stats/reset")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(sim.stats.snapshot(), Default::default());
    c.put(format!("{base}/_sim/knobs")).body("{}").send().await.unwrap();
    assert_eq!(sim.knobs.get(), KnobValues::default());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_is_prompt_even_mid_body() {
    let (_dir, sim) = start(false).await;
    sim.knobs.update(|k| k.throughput_bytes_per_sec = Some(50_000));
    let url = sim.cdn_url("/Movies/movie.mp4");
    let download = tokio::spawn(async move { client().get(url).send().await.unwrap().bytes().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = sim.addr;
    let t = Instant::now();
    sim.shutdown().await;
    assert!(t.elapsed() < Duration::from_millis(1500), "{:?}", t.elapsed());
    assert!(download.await.unwrap().is_err(), "the cut body must be an error");
    assert!(client().get(format!("http://{addr}/cdn/Docs/readme.txt")).send().await.is_err());
}

#[test]
fn works_from_a_dedicated_runtime_thread() {
    let dir = tempfile::tempdir().unwrap();
    sim::generate(dir.path()).unwrap();
    let data_dir = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async {
            let config = SimConfig { listen: "127.0.0.1:0".parse().unwrap(), data_dir, cdn_auth: None };
            let sim = sim::start(config).await.unwrap();
            tx.send(sim.cdn_url("/Movies/movie.nfo")).unwrap();
            let _ = stop_rx.await;
            sim.shutdown().await;
        });
    });
    let url = rx.recv().unwrap();
    let body = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let (status, _, body) = get(&url, None).await;
        assert_eq!(status, StatusCode::OK);
        body
    });
    assert_eq!(body.len(), 789);
    stop_tx.send(()).unwrap();
    server.join().unwrap();
}

#[test]
fn sample_generation_is_deterministic() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let files_a = sim::generate(a.path()).unwrap();
    let files_b = sim::generate(b.path()).unwrap();
    assert_eq!(files_a, files_b);
    let total: u64 = files_a.iter().map(|f| f.size).sum();
    assert!((8 * MIB..=12 * MIB).contains(&total));
    for f in &files_a {
        let rel = f.rel_path.trim_start_matches('/');
        let (da, db) = (std::fs::read(a.path().join(rel)).unwrap(), std::fs::read(b.path().join(rel)).unwrap());
        assert_eq!(da.len() as u64, f.size, "{}", f.rel_path);
        assert!(da == db, "{} differs between runs", f.rel_path);
        let meta = std::fs::metadata(a.path().join(rel)).unwrap();
        assert_eq!(meta.modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs(), f.mtime);
    }
    // Different files have different content (no accidental constant fill).
    let one = std::fs::read(a.path().join("Ünïcödé folder/exactly 1 MiB.bin")).unwrap();
    let two = std::fs::read(a.path().join("Ünïcödé folder/1 MiB plus one.bin")).unwrap();
    assert_ne!(one[..4096], two[..4096]);
}

/// One file line of a tree: its path, `(size, mtime)` when given, and its URL.
type TreeFile = (String, Option<(u64, u64)>, String);

/// A small reader of the §4.2 format, written here (not the driver's parser).
fn parse_tree(text: &str) -> Vec<TreeFile> {
    let mut stack: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        assert_eq!(indent % 2, 0, "odd indent: {line:?}");
        let level = indent / 2;
        assert!(level <= stack.len(), "indent jumps a level: {line:?}");
        stack.truncate(level);
        let rest = line.trim();
        if let Some(folder) = rest.strip_suffix(':') {
            assert!(!folder.contains("http://"), "{line:?}");
            stack.push(folder.to_owned());
            continue;
        }
        let at = rest.find("http://").expect("file line without URL");
        let (info, url) = rest.split_at(at);
        let sizes = (!info.is_empty()).then(|| {
            let parts: Vec<&str> = info.strip_suffix(':').unwrap().split(':').collect();
            (parts[0].parse().unwrap(), parts[1].parse().unwrap())
        });
        let name = percent_decode_str(url.rsplit('/').next().unwrap()).decode_utf8().unwrap().into_owned();
        let path = stack.iter().chain(std::iter::once(&name)).fold(String::new(), |p, s| format!("{p}/{s}"));
        out.push((path, sizes, url.to_owned()));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn link_tree_lists_the_sample_and_its_urls_serve_it() {
    let (dir, sim) = start(false).await;
    let files = sim::generate(dir.path()).unwrap();
    let text = sim::link_tree(dir.path(), |rel| sim.cdn_url(rel), SizeMode::Full).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Docs:");
    assert!(lines.contains(&"  Extras:") && lines.contains(&"    Deleted Scenes:"), "{text}");
    assert!(lines.contains(&"Ünïcödé folder:"));
    let parsed = parse_tree(&text);
    assert_eq!(parsed.len(), files.len());
    for f in &files {
        let (_, sizes, url) =
            parsed.iter().find(|(p, ..)| *p == f.rel_path).unwrap_or_else(|| panic!("{} missing", f.rel_path));
        assert_eq!(*sizes, Some((f.size, f.mtime)), "{}", f.rel_path);
        let (status, _, body) = get(url, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, disk(&dir, &f.rel_path), "{}", f.rel_path);
    }

    let bare = parse_tree(&sim::link_tree(dir.path(), |rel| sim.cdn_url(rel), SizeMode::None).unwrap());
    assert!(bare.iter().all(|(_, s, _)| s.is_none()));
    let mixed = parse_tree(&sim::link_tree(dir.path(), |rel| sim.cdn_url(rel), SizeMode::Mixed).unwrap());
    let with: Vec<bool> = mixed.iter().map(|(_, s, _)| s.is_some()).collect();
    assert!(with.iter().step_by(2).all(|b| *b) && with.iter().skip(1).step_by(2).all(|b| !*b), "{with:?}");
    assert_eq!(bare.iter().map(|x| &x.0).collect::<Vec<_>>(), mixed.iter().map(|x| &x.0).collect::<Vec<_>>());
    sim.shutdown().await;
}

/// The `href` values of an HTML index, in order.
fn hrefs(html: &str) -> Vec<String> {
    html.split("<a href=\"").skip(1).map(|rest| rest.split('"').next().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_urls_with_a_trailing_slash_answer_an_html_index() {
    let (dir, sim) = start(false).await;
    let movies = format!("{}/", sim.cdn_url("/Movies"));
    let (status, h, body) = get(&movies, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(header(&h, reqwest::header::CONTENT_TYPE).starts_with("text/html"));
    let html = String::from_utf8(body).unwrap();
    // Folders first (with a trailing slash), then files, each sorted; no parent link.
    assert_eq!(hrefs(&html), ["Extras/", "movie.mp4", "movie.nfo", "movie.srt"]);

    // Names are percent-encoded in hrefs and HTML-escaped in the text; every file href
    // resolves to that file's bytes.
    let unicode = format!("{}/", sim.cdn_url("/Ünïcödé folder"));
    let (status, _, body) = get(&unicode, None).await;
    assert_eq!(status, StatusCode::OK);
    let links = hrefs(&String::from_utf8(body).unwrap());
    assert!(links.contains(&"%E6%B5%8B%E8%AF%95%20video.mp4".to_owned()), "{links:?}");
    for href in &links {
        let (status, _, bytes) = get(&format!("{unicode}{href}"), None).await;
        assert_eq!(status, StatusCode::OK, "{href}");
        let name = percent_decode_str(href).decode_utf8().unwrap();
        assert_eq!(bytes, disk(&dir, &format!("/Ünïcödé folder/{name}")), "{href}");
    }
    let (_, _, body) = get(&format!("{}/", sim.cdn_url("/Docs")), None).await;
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("<a href=\"notes%20%231%20%28100%25%29.txt\">notes #1 (100%).txt</a>"), "{html}");

    // Nested folder, and the same folder without the slash is still 404; listing bodies are
    // not file bytes.
    let before = sim.stats.snapshot();
    let (status, _, body) = get(&format!("{}/", sim.cdn_url("/Movies/Extras")), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hrefs(&String::from_utf8(body).unwrap()), ["Deleted%20Scenes/", "%E8%8A%B1%E7%B5%AE.mkv"]);
    let (status, _, _) = get(&sim.cdn_url("/Movies/Extras"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&format!("{}/", sim.cdn_url("/nope")), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let after = sim.stats.snapshot();
    assert_eq!(after.requests - before.requests, 3);
    assert_eq!(after.bytes_sent, before.bytes_sent);
    sim.shutdown().await;
}
