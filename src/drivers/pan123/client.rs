//! The 123pan web API client shared by `123pan` and `123pan_share`: headers (§1.2), the
//! request signature (§1.4), the envelope (§1.3), re-login on code 401, bounded retries.
//!
//! - The HTTP status comes first (`http::status`): 429 and 5xx are transient whatever the
//!   body (an envelope `{"code":503}`, `{}`, a proxy's page), and no other non-2xx is ever
//!   data. OpenList decides by the body alone, so a 5xx `{}` read as a success would show a
//!   folder empty (and cache it). Then the envelope: success is `code == 0` (`200` for
//!   `sign_in`); a 2xx body without `code` counts as success, as in OpenList, *unless* it is
//!   the 2023 `{"status","info"}` shape, which is an error. A non-2xx with an error envelope
//!   is that error (code 401 with HTTP 401 still triggers the re-login).
//! - Code 401 makes a client that has credentials log in again (once, shared by every task
//!   that saw the same stale token, see `http::renew`) and repeat the request once. A second
//!   401 is an error.
//! - Code 429 and HTTP 429/5xx/network errors are retried by `http::retry` (bounded, with the
//!   list limiter waited again before each attempt). Everything else is a one-line error that
//!   says what the user can do; login failures are never retried here (the core retries a
//!   down storage at most once a minute).
//! - The token, the password and signed URLs are never logged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::api::{Envelope, LoginData, SignInMail, SignInPhone};
use super::sign;
use crate::error::{Error, Result};
use crate::http::limit::RateLimiter;
use crate::http::renew::Renewable;
use crate::http::retry::{Policy, retry};
use crate::http::status;

/// The web client's origin; sent as `origin` and (with a `/`) `referer` on every call (§1.2).
pub const WEB_ORIGIN: &str = "https://yun.123pan.com";
/// OpenList's browser-like user agent, without its branding.
const USER_AGENT: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) panmount";
/// `app-version` header of the web client.
const APP_VERSION: &str = "3";
/// Retries of a transient failure (429, 5xx, network) of one call.
const MAX_RETRIES: u32 = 5;
/// Success code of `user/sign_in` (every `/b/api` call uses 0).
const LOGIN_OK: i64 = 200;

pub const CODE_UNAUTHORIZED: i64 = 401;
pub const CODE_TOO_MANY: i64 = 429;
pub const CODE_SHARE_PASSWORD: i64 = 5103;
pub const CODE_TRAFFIC: i64 = 5113;
pub const CODE_ABROAD_RISK: i64 = 7012;

pub struct Credentials {
    pub username: String,
    pub password: String,
}

pub struct Client {
    http: reqwest::Client,
    api_base: String,
    login_base: String,
    platform: String,
    credentials: Option<Credentials>,
    /// Sent as `Bearer <token>`, empty before the first login (then the literal `Bearer `).
    token: Renewable<String>,
    /// Spaces the calls that change the drive and those of an upload ([`Client::act`],
    /// [`Client::post_paced`]); see [`DEFAULT_WRITE_INTERVAL_MS`].
    write_pace: RateLimiter,
}

/// 123pan publishes no limit for its write endpoints, and bans clients it takes for an attack
/// by IP or account (pan123-protocol.md §1.5; 100+ uploads at once got an IP banned). Writes
/// keep to bursts of 5, then 20 calls a second by default (an upload is four calls, so five
/// small files a second): a guess on the safe side of what OpenList's parallel uploads send,
/// until the service's real limit is known; the storage's `write_interval_ms` changes it.
pub const DEFAULT_WRITE_INTERVAL_MS: u64 = 50;
const WRITE_BURST: u32 = 5;

/// An error answer of the API: `code` (None for the `{"status","info"}` shape) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Option<i64>,
    pub message: String,
}

/// The `data` of a successful answer, or the API's error envelope (see the module docs for
/// the order: status, then envelope).
pub fn decode_envelope(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    ok_code: i64,
) -> Result<std::result::Result<serde_json::Value, ApiError>> {
    if let Some(err) = status::transient(status, headers) {
        return Err(err);
    }
    let success = status::is_success(status);
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        return Err(Error::InvalidResponse(format!("123pan answered HTTP {status} without a JSON envelope")));
    };
    match envelope.code {
        Some(code) if code != ok_code => {
            Ok(Err(ApiError { code: Some(code), message: envelope.message.unwrap_or_default() }))
        }
        None if envelope.info.is_some() => Ok(Err(ApiError { code: None, message: envelope.info.unwrap_or_default() })),
        _ if success => Ok(Ok(envelope.data.unwrap_or(serde_json::Value::Null))),
        _ => {
            let message = envelope.message.map(|m| format!(": {}", m.trim())).unwrap_or_default();
            Err(Error::Remote(format!("123pan answered HTTP {status}{message}")))
        }
    }
}

/// The `data` of a successful answer to `path` as `T`. A missing or null `data` is an empty
/// answer (see api.rs), not a wrong type.
pub fn decode_data<T: DeserializeOwned>(path: &str, data: serde_json::Value) -> Result<T> {
    let data = if data.is_null() { serde_json::json!({}) } else { data };
    crate::drivers::decode(&format!("123pan {path}"), data)
}

/// What an API error means for the user (everything but 401, which the caller handles).
pub fn classify(err: &ApiError) -> Error {
    let msg = err.message.trim();
    let code = err.code.map_or("none".to_string(), |c| c.to_string());
    match err.code {
        Some(CODE_TOO_MANY) => Error::RateLimited { status: 429, retry_after: None },
        Some(CODE_TRAFFIC) => Error::TrafficExhausted(format!("123pan code 5113: {msg}")),
        Some(CODE_SHARE_PASSWORD) => Error::Remote(format!(
            "123pan share: the share password is missing or wrong (code 5103: {msg}); set share_password to the share's extraction code"
        )),
        Some(CODE_UNAUTHORIZED) => Error::Remote(format!("123pan refused the session token (code 401: {msg})")),
        _ if msg.contains("签名") || msg.to_ascii_lowercase().contains("sign") => Error::Remote(format!(
            "123pan rejected the request signature (code {code}: {msg}); the signature carries the time, so check that this machine's clock is right"
        )),
        _ if msg.contains("platform") => {
            Error::Remote(format!("123pan refused the request (code {code}: {msg}); check the `platform` option"))
        }
        _ => Error::Remote(format!("123pan error (code {code}): {msg}")),
    }
}

/// What a refused login means for the user. Never retried automatically.
pub fn classify_login(err: &ApiError) -> Error {
    let msg = err.message.trim();
    let code = err.code.map_or("none".to_string(), |c| c.to_string());
    if err.code == Some(CODE_ABROAD_RISK) {
        return Error::Remote(format!(
            "123pan login refused: the account is flagged for a login-from-abroad risk (code 7012: {msg}); log in once with an SMS code or WeChat in the 123pan app or web from this network, then restart panmount"
        ));
    }
    if msg.contains("频繁") || msg.to_ascii_lowercase().contains("frequent") || err.code == Some(CODE_TOO_MANY) {
        return Error::Remote(format!(
            "123pan login refused: too many logins (code {code}: {msg}); wait a few minutes before trying again"
        ));
    }
    Error::Remote(format!("123pan login refused (code {code}: {msg}); check username and password"))
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The e-mail test of OpenList (lowercase only: an upper-case address is sent as a phone).
pub fn is_mail(username: &str) -> bool {
    let Some((local, domain)) = username.split_once('@') else { return false };
    let lower_digit = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let local_ok = (1..=32).contains(&local.len())
        && local.chars().next().is_some_and(lower_digit)
        && local.chars().all(|c| lower_digit(c) || "_.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let (tld, hosts) = labels.split_last().unwrap_or((&"", &[]));
    let host_ok = |l: &&str| {
        (2..=32).contains(&l.len())
            && l.chars().all(|c| lower_digit(c) || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    local_ok
        && (1..=4).contains(&hosts.len())
        && hosts.iter().all(host_ok)
        && (2..=4).contains(&tld.len())
        && tld.chars().all(|c| c.is_ascii_lowercase())
}

impl Client {
    pub fn new(
        http: reqwest::Client,
        api_base: &str,
        login_base: &str,
        platform: &str,
        credentials: Option<Credentials>,
        token: String,
    ) -> Self {
        Client {
            http,
            api_base: api_base.trim_end_matches('/').to_string(),
            login_base: login_base.trim_end_matches('/').to_string(),
            platform: platform.to_string(),
            credentials,
            token: Renewable::new(token),
            write_pace: RateLimiter::with_burst(
                std::time::Duration::from_millis(DEFAULT_WRITE_INTERVAL_MS),
                WRITE_BURST,
            ),
        }
    }

    /// Space write calls `interval` apart (after a burst).
    pub fn with_write_interval(mut self, interval: std::time::Duration) -> Self {
        self.write_pace = RateLimiter::with_burst(interval, WRITE_BURST);
        self
    }

    /// Log in (`POST {login_base}/api/user/sign_in`) and keep the token.
    pub async fn login(&self) -> Result<()> {
        self.token.set(self.sign_in().await?);
        tracing::info!("123pan: logged in");
        Ok(())
    }

    /// A new session token.
    async fn sign_in(&self) -> Result<String> {
        let Some(creds) = &self.credentials else {
            return Err(Error::Remote("123pan: no credentials to log in with".into()));
        };
        let request = self
            .http
            .post(format!("{}/api/user/sign_in", self.login_base))
            .header("origin", WEB_ORIGIN)
            .header("referer", format!("{WEB_ORIGIN}/"))
            .header("platform", "web")
            .header("app-version", APP_VERSION)
            .header("user-agent", USER_AGENT);
        let request = if is_mail(&creds.username) {
            request.json(&SignInMail { mail: &creds.username, password: &creds.password, kind: 2 })
        } else {
            request.json(&SignInPhone { passport: &creds.username, password: &creds.password, remember: true })
        };
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = crate::http::api_body(response).await?;
        let data = decode_envelope(status, &headers, &body, LOGIN_OK)?.map_err(|e| classify_login(&e))?;
        let data: LoginData = crate::drivers::decode("123pan login answer", data)?;
        if data.token.is_empty() {
            return Err(Error::InvalidResponse("123pan login answer has no token".into()));
        }
        Ok(data.token)
    }

    /// Log in again unless another task already replaced `stale` since we used it.
    async fn relogin(&self, stale: &String) -> Result<()> {
        self.token
            .renew(stale, || async {
                tracing::info!("123pan: session token refused (401), logging in again");
                let token = self.sign_in().await?;
                tracing::info!("123pan: logged in");
                Ok(token)
            })
            .await
            .map(drop)
    }

    /// A read: retried after any transient failure.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        limiter: Option<&RateLimiter>,
    ) -> Result<T> {
        self.call(Policy::read(path, MAX_RETRIES), Method::GET, path, query, None::<&()>, limiter).await
    }

    /// A POST that only reads (`download_info`): retried like a GET.
    pub async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<T> {
        self.call(Policy::read(path, MAX_RETRIES), Method::POST, path, &[], Some(body), None).await
    }

    /// A POST that creates or changes something: sent again only after a refusal that proves
    /// it was not carried out (a rate limit, a 401 before the re-login), never blindly.
    pub async fn act<T: DeserializeOwned, B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<T> {
        self.call(Policy::write(path, MAX_RETRIES), Method::POST, path, &[], Some(body), Some(&self.write_pace)).await
    }

    /// A POST that only reads but belongs to a write (an upload's part URLs, a new file's
    /// details): retried like a GET, spaced like [`Client::act`].
    pub async fn post_paced<T: DeserializeOwned, B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<T> {
        self.call(Policy::read(path, MAX_RETRIES), Method::POST, path, &[], Some(body), Some(&self.write_pace)).await
    }

    /// One API call: signed, with re-login on 401 (once) and retries as `policy` allows.
    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        policy: Policy<'_>,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        limiter: Option<&RateLimiter>,
    ) -> Result<T> {
        let relogged = &AtomicBool::new(false);
        let method = &method;
        let data = retry(&policy, || async move {
            // Bounded: each turn returns or is the single re-login.
            loop {
                if let Some(limiter) = limiter {
                    limiter.wait().await;
                }
                let token = self.token.get();
                match self.send(method.clone(), path, query, body, &token).await? {
                    Ok(data) => return Ok(data),
                    Err(api) if api.code == Some(CODE_UNAUTHORIZED) => {
                        if self.credentials.is_none() && !token.is_empty() {
                            return Err(Error::LoginLost(format!(
                                "123pan refused the access_token (code 401: {}); set a fresh one or leave access_token unset",
                                api.message.trim()
                            )));
                        }
                        if self.credentials.is_none() || relogged.swap(true, Ordering::Relaxed) {
                            return Err(classify(&api));
                        }
                        // A login the service refuses (password changed, a risk check) will be
                        // refused on every access: the session is lost, and the storage goes
                        // down until its next login attempt (`crate::storage`) instead of signing
                        // in again per access. A network failure is only that.
                        self.relogin(&token).await.map_err(|err| match err {
                            Error::Remote(reason) => Error::LoginLost(reason),
                            other => other,
                        })?;
                    }
                    Err(api) => return Err(classify(&api)),
                }
            }
        })
        .await?;
        decode_data(path, data)
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        token: &str,
    ) -> Result<std::result::Result<serde_json::Value, ApiError>> {
        let random = rand::random_range(0..=sign::RANDOM_MAX);
        let (key, value) = sign::sign(path, unix_now(), random);
        let mut url = url::Url::parse(&format!("{}{path}", self.api_base))
            .map_err(|e| Error::internal(format!("123pan api_base: {e}")))?;
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair(&key, &value);
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        let mut request = self
            .http
            .request(method, url)
            .header("origin", WEB_ORIGIN)
            .header("referer", format!("{WEB_ORIGIN}/"))
            .header("authorization", format!("Bearer {token}"))
            .header("user-agent", USER_AGENT)
            .header("platform", &self.platform)
            .header("app-version", APP_VERSION);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = crate::http::api_body(response).await?;
        decode_envelope(status, &headers, &bytes, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_envelope(
        status: u16,
        body: &[u8],
        ok_code: i64,
    ) -> Result<std::result::Result<serde_json::Value, ApiError>> {
        super::decode_envelope(status, &HeaderMap::new(), body, ok_code)
    }

    fn api(code: Option<i64>, message: &str) -> ApiError {
        ApiError { code, message: message.into() }
    }

    #[test]
    fn envelopes_decode_by_code_after_the_status() {
        let ok = decode_envelope(200, br#"{"code":0,"message":"ok","data":{"a":1}}"#, 0).unwrap().unwrap();
        assert_eq!(ok["a"], 1);
        assert!(decode_envelope(200, br#"{"code":200,"data":{"token":"t"}}"#, 200).unwrap().is_ok());
        // A non-2xx status (not 429/5xx) with an error envelope is decided by the envelope.
        let e =
            decode_envelope(401, br#"{"code":401,"message":"token is expired","data":null}"#, 0).unwrap().unwrap_err();
        assert_eq!(e, api(Some(401), "token is expired"));
        // Missing code: success (OpenList), unless it is the 2023 {"status","info"} shape.
        assert!(decode_envelope(200, br#"{"data":{}}"#, 0).unwrap().is_ok());
        let e = decode_envelope(200, "{\"status\":0,\"info\":\"签名错误\"}".as_bytes(), 0).unwrap().unwrap_err();
        assert_eq!(e.code, None);
        // Not JSON at all: by HTTP status.
        assert!(matches!(decode_envelope(502, b"<html>", 0), Err(Error::ServerError { status: 502 })));
        assert!(matches!(decode_envelope(429, b"slow down", 0), Err(Error::RateLimited { .. })));
        assert!(matches!(decode_envelope(200, b"<html>", 0), Err(Error::InvalidResponse(_))));
    }

    #[test]
    fn the_status_comes_before_the_envelope() {
        // 429 and 5xx are transient whatever the body, an envelope included.
        for body in [&br#"{"message":"Service Unavailable"}"#[..], b"{}", br#"{"code":503,"message":"busy"}"#] {
            assert!(matches!(decode_envelope(503, body, 0), Err(Error::ServerError { status: 503 })));
            assert!(matches!(decode_envelope(500, body, 0), Err(Error::ServerError { status: 500 })));
            assert!(matches!(decode_envelope(429, body, 0), Err(Error::RateLimited { status: 429, .. })));
        }
        // Any other non-2xx is never data, even when its body would be a success.
        for body in [&br#"{"message":"Not Found"}"#[..], b"{}", br#"{"code":0,"data":{"InfoList":[]}}"#] {
            let got = decode_envelope(404, body, 0);
            assert!(matches!(got, Err(ref e) if !e.is_transient()), "{got:?}");
        }
    }

    #[test]
    fn errors_say_what_to_do() {
        assert!(classify(&api(Some(429), "请求太频繁")).is_transient());
        assert!(matches!(classify(&api(Some(5113), "流量超限")), Error::TrafficExhausted(_)));
        assert!(classify(&api(Some(5103), "提取码错误")).to_string().contains("share_password"));
        assert!(classify(&api(Some(1), "签名错误,请检查您的本地时间")).to_string().contains("clock"));
        assert!(classify(&api(None, "签名错误")).to_string().contains("clock"));
        assert!(!classify(&api(Some(5066), "file does not exist")).is_transient());
        let risk = classify_login(&api(Some(7012), "当前账号存在境外登录风险")).to_string();
        assert!(risk.contains("SMS") && risk.contains("7012"), "{risk}");
        assert!(
            classify_login(&api(Some(1), "当前登录操作频繁，请稍后再试")).to_string().contains("wait a few minutes")
        );
        assert!(classify_login(&api(Some(5201), "账号或密码错误")).to_string().contains("check username and password"));
        for e in [classify_login(&api(Some(7012), "x")), classify_login(&api(Some(1), "频繁"))] {
            assert!(!e.is_transient());
        }
    }

    #[test]
    fn mail_or_phone_as_openlist_decides() {
        assert!(is_mail("tester@example.com"));
        assert!(is_mail("a.b_c-d@mail.example.co"));
        assert!(!is_mail("13800138000"));
        assert!(!is_mail("Tester@example.com"));
        assert!(!is_mail("tester@example.c"));
        assert!(!is_mail("tester@localhost"));
    }
}
