//! A bare client for the simulated PikPak: a drive session (refresh token → access token,
//! captcha checks off), JSON calls, task polling, and OSS V1 signed object-store requests.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use panmount::sim::{self, SimConfig, SimHandle};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

/// A simulator over a small tree: `/docs/a.txt`, `/docs/sub/deep.txt`, `/other/a.txt`,
/// `/blob.bin` (300 KiB, two GCID blocks).
pub struct Drive {
    pub dir: tempfile::TempDir,
    pub sim: SimHandle,
    http: reqwest::Client,
    token: String,
}

pub fn blob() -> Vec<u8> {
    (0..300u32 << 10).map(|i| (i * 7 % 251) as u8).collect()
}

impl Drive {
    pub async fn start() -> Drive {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("docs/sub")).unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        std::fs::write(root.join("docs/a.txt"), b"alpha").unwrap();
        std::fs::write(root.join("docs/sub/deep.txt"), b"deep bytes").unwrap();
        std::fs::write(root.join("other/a.txt"), b"other alpha").unwrap();
        std::fs::write(root.join("blob.bin"), blob()).unwrap();
        let config = SimConfig { listen: "127.0.0.1:0".parse().unwrap(), data_dir: root.into(), cdn_auth: None };
        let sim = sim::start(config).await.unwrap();
        sim.pikpak.update(|k| k.require_captcha = false);
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().unwrap();
        let refresh = sim.pikpak.issue_refresh_token();
        let res = http
            .post(format!("{}/v1/auth/token", sim.base_url()))
            .json(&json!({"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "x"}))
            .send()
            .await
            .unwrap();
        let token = res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
        Drive { dir, sim, http, token }
    }

    /// A drive call: (status, JSON body or Null).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.sim.base_url())).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, res.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// The names `parent` lists with the filters every client sends (complete, untrashed).
    pub async fn names(&self, parent: &str) -> Vec<String> {
        let filters = r#"{"phase":{"eq":"PHASE_TYPE_COMPLETE"},"trashed":{"eq":false}}"#;
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("parent_id", parent)
            .append_pair("filters", filters)
            .append_pair("limit", "100")
            .finish();
        let (status, v) = self.call(Method::GET, &format!("/drive/v1/files?{q}"), None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
    }

    pub fn id(&self, path: &str) -> String {
        self.sim.pikpak.node(path).unwrap_or_else(|| panic!("no {path}")).id
    }

    /// A batch call's task id.
    pub async fn batch(&self, action: &str, body: Value) -> String {
        let (status, v) = self.call(Method::POST, &format!("/drive/v1/files:{action}"), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{action}: {v}");
        v["task_id"].as_str().unwrap().to_owned()
    }

    pub async fn task(&self, id: &str) -> Value {
        let (status, v) = self.call(Method::GET, &format!("/drive/v1/tasks/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    /// The file's detail, then the bytes behind its download link.
    pub async fn download(&self, id: &str) -> Vec<u8> {
        let (status, v) = self.call(Method::GET, &format!("/drive/v1/files/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let url = v["links"]["application/octet-stream"]["url"].as_str().unwrap();
        let res = self.http.get(url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.bytes().await.unwrap().to_vec()
    }

    pub async fn init(&self, parent: &str, name: &str, content: &[u8]) -> (StatusCode, Value) {
        let body = json!({
            "kind": "drive#file", "name": name, "size": content.len().to_string(), "hash": gcid(content),
            "upload_type": "UPLOAD_TYPE_RESUMABLE", "objProvider": {"provider": "UPLOAD_TYPE_UNKNOWN"},
            "parent_id": parent, "folder_type": "NORMAL",
        });
        self.call(Method::POST, "/drive/v1/files", Some(body)).await
    }

    pub fn counter(&self, f: impl Fn(&panmount::sim::pikpak::Counters) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.sim.pikpak.counters).load(std::sync::atomic::Ordering::Relaxed)
    }

    /// An object-store request signed with `creds` (the `resumable.params`): `query` is the
    /// raw query string (`uploads`, `partNumber=1&uploadId=U`).
    pub async fn oss(&self, creds: &Value, method: Method, query: &str, body: Vec<u8>) -> Result<OssAnswer, String> {
        self.oss_with(creds, method, query, body, |_| {}).await
    }

    /// As [`Drive::oss`], with the headers changed by `tweak` after signing.
    pub async fn oss_with(
        &self,
        creds: &Value,
        method: Method,
        query: &str,
        body: Vec<u8>,
        tweak: impl FnOnce(&mut reqwest::header::HeaderMap),
    ) -> Result<OssAnswer, String> {
        let p = |k: &str| creds[k].as_str().unwrap().to_owned();
        let (bucket, key) = (p("bucket"), p("key"));
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let content_type = if method == Method::PUT { "application/octet-stream" } else { "" };
        let token = p("security_token");
        let sub = if query.is_empty() { String::new() } else { format!("?{query}") };
        // StringToSign: VERB, Content-MD5 (none), Content-Type, Date, x-oss-* headers, resource.
        let to_sign = format!("{method}\n\n{content_type}\n{date}\nx-oss-security-token:{token}\n/{bucket}/{key}{sub}");
        let mut mac = Hmac::<Sha1>::new_from_slice(p("access_key_secret").as_bytes()).unwrap();
        mac.update(to_sign.as_bytes());
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("date", date.parse().unwrap());
        headers.insert("x-oss-security-token", token.parse().unwrap());
        headers.insert("authorization", format!("OSS {}:{signature}", p("access_key_id")).parse().unwrap());
        if !content_type.is_empty() {
            headers.insert("content-type", content_type.parse().unwrap());
        }
        tweak(&mut headers);
        let url = format!("http://{}/{bucket}/{key}{sub}", p("endpoint"));
        let res = self.http.request(method, url).headers(headers).body(body).send().await.map_err(|e| e.to_string())?;
        let status = res.status();
        let etag = res.headers().get("etag").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let text = res.text().await.map_err(|e| e.to_string())?;
        Ok(OssAnswer { status, etag, text })
    }
}

pub struct OssAnswer {
    pub status: StatusCode,
    pub etag: String,
    pub text: String,
}

impl OssAnswer {
    /// The `<Code>` of an XML error.
    pub fn code(&self) -> &str {
        let start = self.text.find("<Code>").map_or(0, |i| i + 6);
        let end = self.text[start..].find("</Code>").map_or(start, |i| start + i);
        &self.text[start..end]
    }
}

/// GCID (pikpak-protocol.md §8.8) for content under 128 MiB: 256 KiB blocks.
pub fn gcid(content: &[u8]) -> String {
    let mut outer = Sha1::new();
    for block in content.chunks(256 << 10) {
        outer.update(Sha1::digest(block));
    }
    outer.finalize().iter().map(|b| format!("{b:02X}")).collect()
}

/// `"<uppercase hex MD5>"`, the ETag of a part.
pub fn etag(content: &[u8]) -> String {
    use md5::Digest as _;
    let md5 = md5::Md5::digest(content);
    format!("\"{}\"", md5.iter().map(|b| format!("{b:02X}")).collect::<String>())
}
