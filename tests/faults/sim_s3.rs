//! The simulator's S3-compatible store (`/s3`, the benchmark's rclone remote) over real HTTP:
//! multipart uploads assembled exactly, ranged reads across parts, listings with a delimiter
//! and paging, the per-request throttle and body counter, and the API call counter.
//!
//! ETags are computed here with the `md5` crate, as S3 defines them.

use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use panmount::sim::{self, SimConfig, SimHandle};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, ETAG, RANGE};
use reqwest::{Method, StatusCode};

struct Store {
    _dir: tempfile::TempDir,
    sim: SimHandle,
    http: reqwest::Client,
}

impl Store {
    /// A simulator with the bucket `b`.
    async fn start() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let config = SimConfig { listen: "127.0.0.1:0".parse().unwrap(), data_dir: dir.path().into(), cdn_auth: None };
        let sim = sim::start(config).await.unwrap();
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().unwrap();
        let store = Store { _dir: dir, sim, http };
        assert_eq!(store.send(Method::PUT, "/b", None).await.0, StatusCode::OK);
        store
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}/s3{path_and_query}", self.sim.base_url())
    }

    /// (status, ETag header without quotes, body).
    async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> (StatusCode, String, Vec<u8>) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.unwrap();
        let etag =
            res.headers().get(ETAG).map(|v| v.to_str().unwrap().trim_matches('"').to_owned()).unwrap_or_default();
        (res.status(), etag, res.bytes().await.unwrap().to_vec())
    }

    async fn get_range(&self, path: &str, range: &str) -> (StatusCode, String, Vec<u8>) {
        let res = self.http.get(self.url(path)).header(RANGE, range).send().await.unwrap();
        let content_range =
            res.headers().get(CONTENT_RANGE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        (res.status(), content_range, res.bytes().await.unwrap().to_vec())
    }

    async fn text(&self, path: &str) -> String {
        let (status, _, body) = self.send(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        String::from_utf8(body).unwrap()
    }
}

fn md5(bytes: &[u8]) -> Vec<u8> {
    Md5::digest(bytes).to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32 * 31 + u32::from(seed)) as u8).collect()
}

/// Every `<tag>` value of `xml`, in order.
fn values(xml: &str, tag: &str) -> Vec<String> {
    xml.split(&format!("<{tag}>")).skip(1).map(|s| s.split(&format!("</{tag}>")).next().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn multipart_upload_is_assembled_in_part_order_and_read_by_range() {
    let s = Store::start().await;
    let (status, _, body) = s.send(Method::POST, "/b/dir/big%20file.bin?uploads", None).await;
    assert_eq!(status, StatusCode::OK);
    let upload_id = values(&String::from_utf8(body).unwrap(), "UploadId").remove(0);
    let parts = [pattern(100_000, 1), pattern(70_000, 2), pattern(33, 3)];
    let mut etags = vec![String::new(); 3];
    for i in [1, 2, 0] {
        let path = format!("/b/dir/big%20file.bin?partNumber={}&uploadId={upload_id}", i + 1);
        let (status, etag, _) = s.send(Method::PUT, &path, Some(parts[i].clone())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(etag, hex(&md5(&parts[i])));
        etags[i] = etag;
    }
    let complete = |tags: &[String]| {
        let items: String = tags
            .iter()
            .enumerate()
            .map(|(i, e)| format!("<Part><ETag>&#34;{e}&#34;</ETag><PartNumber>{}</PartNumber></Part>", i + 1))
            .collect();
        format!("<CompleteMultipartUpload>{items}</CompleteMultipartUpload>").into_bytes()
    };
    let done = format!("/b/dir/big%20file.bin?uploadId={upload_id}");
    let wrong = [etags[0].clone(), hex(&md5(b"other")), etags[2].clone()];
    assert_eq!(s.send(Method::POST, &done, Some(complete(&wrong))).await.0, StatusCode::BAD_REQUEST);
    let (status, _, body) = s.send(Method::POST, &done, Some(complete(&etags))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let whole: Vec<u8> = parts.concat();
    let digests: Vec<u8> = parts.iter().flat_map(|p| md5(p)).collect();
    let expected_etag = format!("{}-3", hex(&md5(&digests)));
    let (status, etag, got) = s.send(Method::GET, "/b/dir/big%20file.bin", None).await;
    assert_eq!((status, etag), (StatusCode::OK, expected_etag));
    assert!(got == whole, "the object is the parts in order");
    // A range across the first two parts, one inside the second, the last bytes.
    let (status, content_range, got) = s.get_range("/b/dir/big%20file.bin", "bytes=99990-100009").await;
    assert_eq!((status, content_range.as_str()), (StatusCode::PARTIAL_CONTENT, "bytes 99990-100009/170033"));
    assert_eq!(got, whole[99_990..100_010]);
    assert_eq!(s.get_range("/b/dir/big%20file.bin", "bytes=100001-100002").await.2, whole[100_001..100_003]);
    assert_eq!(s.get_range("/b/dir/big%20file.bin", "bytes=-40").await.2, whole[whole.len() - 40..]);
    assert_eq!(s.get_range("/b/dir/big%20file.bin", "bytes=170033-").await.0, StatusCode::RANGE_NOT_SATISFIABLE);
    let head = s.http.head(s.url("/b/dir/big%20file.bin")).send().await.unwrap();
    assert_eq!(head.headers()[CONTENT_LENGTH], "170033");
    // The upload is gone once complete; a copy reads the same; a delete removes only the original.
    assert_eq!(s.send(Method::POST, &done, Some(complete(&etags))).await.0, StatusCode::NOT_FOUND);
    let copy = s.http.put(s.url("/b/copy.bin")).header("x-amz-copy-source", "/b/dir/big%20file.bin").send().await;
    assert_eq!(copy.unwrap().status(), StatusCode::OK);
    assert_eq!(s.send(Method::DELETE, "/b/dir/big%20file.bin", None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(s.send(Method::GET, "/b/dir/big%20file.bin", None).await.0, StatusCode::NOT_FOUND);
    assert!(s.send(Method::GET, "/b/copy.bin", None).await.2 == whole);
}

#[tokio::test]
async fn a_body_that_does_not_match_its_content_md5_is_refused() {
    let s = Store::start().await;
    let req = s.http.put(s.url("/b/x")).header("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==").body("abc");
    assert_eq!(req.send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    assert_eq!(s.send(Method::GET, "/b/x", None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(s.send(Method::PUT, "/nobucket/x", Some(b"abc".to_vec())).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn listings_roll_up_at_the_delimiter_and_page() {
    let s = Store::start().await;
    for key in ["a/1", "a/2", "a/b/3", "b", "c/d", "sp%20ace"] {
        assert_eq!(s.send(Method::PUT, &format!("/b/{key}"), Some(key.as_bytes().to_vec())).await.0, StatusCode::OK);
    }
    let top = s.text("/b?list-type=2&delimiter=%2F&prefix=").await;
    assert_eq!(values(&top, "Key"), ["b", "sp ace"]);
    assert_eq!(values(&top, "Prefix")[1..], ["a/", "c/"]);
    assert_eq!(values(&top, "Size"), ["1", "8"]);
    let under_a = s.text("/b?list-type=2&delimiter=%2F&prefix=a%2F").await;
    assert_eq!(values(&under_a, "Key"), ["a/1", "a/2"]);
    assert_eq!(values(&under_a, "Prefix")[1..], ["a/b/"]);
    // Pages of one entry, V2 and V1, give the same entries in order.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = s.text(&format!("/b?list-type=2&delimiter=%2F&max-keys=1&continuation-token={token}")).await;
        seen.extend(values(&page, "Key"));
        seen.extend(values(&page, "Prefix").into_iter().skip(1));
        match values(&page, "NextContinuationToken").pop() {
            Some(next) => token = url::form_urlencoded::byte_serialize(next.as_bytes()).collect(),
            None => break,
        }
    }
    assert_eq!(seen, ["a/", "b", "c/", "sp ace"]);
    let v1 = s.text("/b?delimiter=%2F&max-keys=2&marker=a%2F&encoding-type=url").await;
    assert_eq!(values(&v1, "Key"), ["b"]);
    assert_eq!(values(&v1, "NextMarker"), ["c/"]);
    assert_eq!(values(&s.text("/b?delimiter=%2F&marker=c%2F&encoding-type=url").await, "Key"), ["sp%20ace"]);
    assert_eq!(s.send(Method::GET, "/nobucket?list-type=2", None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bodies_are_throttled_per_request_and_counted() {
    let s = Store::start().await;
    let knobs = s.http.put(format!("{}/_sim/s3/knobs", s.sim.base_url())).body(r#"{"store_bytes_per_sec":1000000}"#);
    assert_eq!(knobs.send().await.unwrap().status(), StatusCode::OK);
    let t = Instant::now();
    assert_eq!(s.send(Method::PUT, "/b/slow", Some(vec![7; 300_000])).await.0, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(280), "300 kB at 1 MB/s took {:?}", t.elapsed());
    let counters: serde_json::Value =
        s.http.get(format!("{}/_sim/s3/counters", s.sim.base_url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(counters["body_bytes"], 300_000);
    assert_eq!(counters["object_puts"], 1);
    s.sim.s3.update(|k| k.store_bytes_per_sec = None);
    let t = Instant::now();
    assert_eq!(s.send(Method::PUT, "/b/fast", Some(vec![7; 300_000])).await.0, StatusCode::OK);
    assert!(t.elapsed() < Duration::from_millis(250));
}

#[tokio::test]
async fn api_calls_are_counted_per_provider_and_the_stores_are_not() {
    let s = Store::start().await;
    let base = s.sim.base_url();
    s.http.get(format!("{base}/v1/user/me")).send().await.unwrap();
    s.http.get(format!("{base}/drive/v1/files")).send().await.unwrap();
    s.http.get(format!("{base}/b/api/user/info")).send().await.unwrap();
    s.http.get(format!("{base}/cdn/nothing")).send().await.unwrap();
    s.send(Method::GET, "/b?list-type=2", None).await;
    let calls: serde_json::Value =
        s.http.get(format!("{base}/_sim/api_calls")).send().await.unwrap().json().await.unwrap();
    assert_eq!(calls, serde_json::json!({"pikpak": 2, "pan123": 1}));
    assert_eq!(s.sim.api_calls.pikpak.load(std::sync::atomic::Ordering::Relaxed), 2);
}
