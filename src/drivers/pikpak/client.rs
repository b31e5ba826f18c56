//! One PikPak HTTP exchange and its classification, shared by `pikpak` and `pikpak_share`.
//!
//! [`Client::exchange`] sends one request with the identity headers of §2.1 and turns the
//! answer into JSON or an [`ApiError`]: the [`Fault`] says what a caller can do about it
//! (refresh, re-mint the captcha, back off, give up) and the [`Error`] is what the user sees.
//! The HTTP status comes first (`http::status`): 429 and 5xx are transient whatever the
//! envelope says (a 503 carrying `invalid_grant` must not end the session). Then
//! classification branches on `error_code` and `error` together (§6): code 9 is a captcha
//! problem only when `error` starts with `captcha` (`file_in_recycle_bin` is code 9 too).
//!
//! Captcha tokens (§4) live here too, since both drivers send them on every call:
//! [`Client::remint`] is single-flight (`http::renew`), so a burst of requests refused with
//! code 9 mints one new token, not one each.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::api::{CaptchaInit, ErrorEnvelope};
use super::captcha;
use super::identity::Identity;
use crate::error::Error;
use crate::http::HttpClient;
use crate::http::limit::RateLimiter;
use crate::http::renew::Renewable;
use crate::http::retry::{Policy, retry};
use crate::http::status;

/// What a failed call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 401, or error_code 16, 4121, 4122: refresh the access token once and retry once.
    AccessExpired,
    /// error_code 9 with `error` starting `captcha`: re-mint for this action and retry once.
    Captcha,
    /// 4126 / `invalid_grant`: the refresh token is spent or expired.
    InvalidGrant,
    /// 4002 `captcha_invalid` on signin or captcha/init that is not a rate limit (an expired
    /// token, or human review): mint a new token once.
    LoginCaptcha,
    /// error_code 10, 4002 "too frequent", HTTP 429: back off.
    RateLimited,
    /// `invalid_account_or_password`.
    WrongPassword,
    /// error_code 8 `file_space_not_enough`.
    SpaceFull,
    /// error_code 3 `file_duplicated_name` or `file_rename_to_same_name`: the name is taken.
    NameTaken,
    /// error_code 9 `file_rename_uncompleted`: a rename right after a move; try again shortly.
    RenameUncompleted,
    /// Transport failure or 5xx: may succeed when sent again (idempotent calls only).
    Transient,
    Other,
}

/// §6 as a pure function of the status and the envelope, the status first.
pub fn classify(status: u16, env: &ErrorEnvelope) -> Fault {
    let err = env.error.as_str();
    let code = env.error_code;
    let frequent = env.error_description.to_ascii_lowercase().contains("frequent");
    if status == 429 {
        Fault::RateLimited
    } else if status >= 500 {
        Fault::Transient
    } else if err == "invalid_account_or_password" {
        Fault::WrongPassword
    } else if code == 4126 || err == "invalid_grant" {
        Fault::InvalidGrant
    } else if code == 10 || (code == 4002 && frequent) {
        Fault::RateLimited
    } else if code == 9 && err.starts_with("captcha") {
        Fault::Captcha
    } else if code == 9 && err == "file_rename_uncompleted" {
        Fault::RenameUncompleted
    } else if code == 4002 {
        Fault::LoginCaptcha
    } else if status == 401 || matches!(code, 16 | 4121 | 4122) || err == "unauthenticated" {
        Fault::AccessExpired
    } else if code == 8 || err == "file_space_not_enough" {
        Fault::SpaceFull
    } else if code == 3 && matches!(err, "file_duplicated_name" | "file_rename_to_same_name") {
        Fault::NameTaken
    } else {
        Fault::Other
    }
}

/// A failed exchange: what it means, and the error to show.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub fault: Fault,
    pub error: Error,
}

impl AsRef<Error> for ApiError {
    fn as_ref(&self) -> &Error {
        &self.error
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Error {
        e.error
    }
}

fn api_error(status: u16, headers: &HeaderMap, env: &ErrorEnvelope) -> ApiError {
    let fault = classify(status, env);
    if let Some(error) = status::transient(status, headers) {
        return ApiError { fault, error };
    }
    let what = if !env.error.is_empty() {
        env.error.clone()
    } else if !env.detail.is_empty() {
        env.detail.clone()
    } else {
        format!("HTTP {status}")
    };
    let desc = if env.error_description.is_empty() { String::new() } else { format!(": {}", env.error_description) };
    let code = if env.error_code != 0 { format!(" (error_code {})", env.error_code) } else { String::new() };
    let error = match fault {
        Fault::RateLimited => {
            Error::RateLimited { status, retry_after: status::retry_after(headers, SystemTime::now()) }
        }
        Fault::WrongPassword => {
            Error::Remote(format!("login refused: invalid_account_or_password{desc} (check username and password)"))
        }
        Fault::SpaceFull => Error::NoSpace(format!("PikPak storage is full: file_space_not_enough{desc}")),
        Fault::NameTaken => Error::Exists,
        _ => Error::Remote(format!("PikPak refused: {what}{code}{desc}")),
    };
    ApiError { fault, error }
}

/// One answer as JSON, or the error it stands for: 429/5xx first, whatever the body; a 2xx
/// carrying an `error_code`; any other status.
fn answer(status: u16, headers: &HeaderMap, bytes: &[u8]) -> Result<Value, ApiError> {
    let value: Option<Value> =
        if bytes.iter().all(u8::is_ascii_whitespace) { Some(Value::Null) } else { serde_json::from_slice(bytes).ok() };
    if !status::is_success(status) {
        let env: ErrorEnvelope = value.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
        return Err(api_error(status, headers, &env));
    }
    let value = value.ok_or_else(|| ApiError {
        fault: Fault::Other,
        error: Error::InvalidResponse(format!("HTTP {status} with a body that is not JSON")),
    })?;
    // Some dead-token replies came as a 2xx envelope (§15.2): an object with an error code is
    // an error whatever the status.
    let code = value.get("error_code").and_then(Value::as_i64).unwrap_or(0);
    if code != 0 {
        let env: ErrorEnvelope = serde_json::from_value(value).unwrap_or_default();
        return Err(api_error(status, headers, &env));
    }
    Ok(value)
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The HTTP side of one storage: identity, device id, bases, and the current captcha token.
pub struct Client {
    pub http: HttpClient,
    pub ident: Identity,
    pub device_id: String,
    pub api_base: String,
    pub user_base: String,
    /// `sub` once logged in ("" for anonymous share access); part of the signed captcha meta
    /// and the android UA.
    pub user_id: Mutex<String>,
    captcha: Renewable<String>,
    /// Every exchange of this storage goes through it (see `API_INTERVAL`).
    governor: RateLimiter,
}

/// PikPak's limits are not published (§11): rclone's pacer allows one call per 100 ms and
/// another client keeps to about 5 a second with bursts of 5. We allow bursts of 5 and 10 a
/// second after that; error 10 and 429 are still backed off when the service disagrees.
const API_INTERVAL: Duration = Duration::from_millis(100);
const API_BURST: u32 = 5;
const MINT_RETRY: Policy<'static> = Policy::read("PikPak captcha/init", 4);

impl Client {
    pub fn new(http: HttpClient, ident: Identity, device_id: String, api_base: &str, user_base: &str) -> Self {
        Client {
            http,
            ident,
            device_id,
            api_base: api_base.trim_end_matches('/').to_owned(),
            user_base: user_base.trim_end_matches('/').to_owned(),
            user_id: Mutex::new(String::new()),
            captcha: Renewable::new(String::new()),
            governor: RateLimiter::with_burst(API_INTERVAL, API_BURST),
        }
    }

    pub fn captcha(&self) -> String {
        self.captcha.get()
    }

    fn user_agent(&self) -> String {
        let uid = self.user_id.lock().unwrap().clone();
        self.ident.user_agent(&self.device_id, &uid, now_ms())
    }

    /// One request, no retries. `query` pairs are URL-encoded; `body` is sent as JSON.
    pub async fn exchange(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        bearer: Option<&str>,
    ) -> Result<Value, ApiError> {
        self.governor.wait().await;
        let mut req = self
            .http
            .inner
            .request(method, url)
            .query(query)
            .header("User-Agent", self.user_agent())
            .header("X-Client-ID", self.ident.client_id)
            .header("X-Client-Version", self.ident.client_version)
            .header("X-Device-ID", &self.device_id)
            // OpenList sends the header even when empty (§2.1).
            .header("X-Captcha-Token", self.captcha());
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let transport = |e: reqwest::Error| ApiError { fault: Fault::Transient, error: Error::from(e) };
        let res = req.send().await.map_err(transport)?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = crate::http::api_body(res).await.map_err(|error| {
            let fault = if error.is_transient() { Fault::Transient } else { Fault::Other };
            ApiError { fault, error }
        })?;
        answer(status, &headers, &bytes)
    }

    /// `/v1/shield/captcha/init` for `action` with `meta`; the new token becomes current.
    /// Rate limits are backed off a few times; a human-check `url` is an error for the user.
    pub async fn mint(&self, action: &str, meta: Value) -> Result<String, ApiError> {
        let url = format!("{}/v1/shield/captcha/init", self.user_base);
        let body = json!({
            "client_id": self.ident.client_id,
            "action": action,
            "device_id": self.device_id,
            "captcha_token": self.captcha(),
            "meta": meta,
            "redirect_uri": "xlaccsdk01://xbase.cloud/callback?state=harbor",
        });
        // Minting twice does no harm: retried like a read.
        let (url, body) = (&url, &body);
        let value = retry(&MINT_RETRY, || async move {
            self.exchange(Method::POST, url, &[("client_id", self.ident.client_id)], Some(body), None).await
        })
        .await?;
        let init: CaptchaInit = serde_json::from_value(value).unwrap_or_default();
        if !init.url.is_empty() {
            return Err(ApiError {
                fault: Fault::Other,
                error: Error::Remote(captcha::human_check_message(&init.url)),
            });
        }
        if init.captcha_token.is_empty() {
            return Err(ApiError {
                fault: Fault::Other,
                error: Error::Remote("captcha/init returned no captcha_token".into()),
            });
        }
        self.captcha.set(init.captcha_token.clone());
        Ok(init.captcha_token)
    }

    /// Mint a signed-meta token for `action`, unless another task already replaced `failed`.
    pub async fn remint(&self, action: &str, failed: &str) -> Result<(), ApiError> {
        let mint = || {
            let uid = self.user_id.lock().unwrap().clone();
            self.mint(action, captcha::signed_meta(&self.ident, &self.device_id, &uid, now_ms()))
        };
        self.captcha.renew(failed, mint).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(error: &str, code: i64, desc: &str) -> ErrorEnvelope {
        ErrorEnvelope { error: error.into(), error_code: code, error_description: desc.into(), detail: String::new() }
    }

    #[test]
    fn classification_uses_code_and_reason_together() {
        assert_eq!(classify(400, &env("captcha_invalid", 9, "Verification code is invalid")), Fault::Captcha);
        assert_eq!(classify(400, &env("captcha_required", 9, "")), Fault::Captcha);
        // Code 9 without a captcha reason is not a captcha problem (§6: OpenList loops here).
        assert_eq!(classify(400, &env("file_in_recycle_bin", 9, "")), Fault::Other);
        assert_eq!(classify(401, &env("unauthenticated", 16, "")), Fault::AccessExpired);
        assert_eq!(classify(400, &env("", 4121, "")), Fault::AccessExpired);
        assert_eq!(classify(400, &env("", 4122, "")), Fault::AccessExpired);
        assert_eq!(classify(401, &ErrorEnvelope::default()), Fault::AccessExpired);
        assert_eq!(classify(400, &env("invalid_grant", 4126, "invalid refresh token")), Fault::InvalidGrant);
        // 401 with invalid_grant (§15.2: sources disagree on the status) is still invalid_grant.
        assert_eq!(classify(401, &env("invalid_grant", 4126, "")), Fault::InvalidGrant);
        assert_eq!(classify(400, &env("aborted", 10, "")), Fault::RateLimited);
        assert_eq!(
            classify(
                400,
                &env("captcha_invalid", 4002, "Aborted - Your operation is too frequent, please try again later")
            ),
            Fault::RateLimited
        );
        assert_eq!(
            classify(400, &env("captcha_invalid", 4002, "Code(4002) - captcha_token expired")),
            Fault::LoginCaptcha
        );
        assert_eq!(classify(429, &ErrorEnvelope::default()), Fault::RateLimited);
        assert_eq!(classify(400, &env("invalid_account_or_password", 4011, "")), Fault::WrongPassword);
        assert_eq!(classify(400, &env("file_space_not_enough", 8, "")), Fault::SpaceFull);
        assert_eq!(classify(400, &env("file_duplicated_name", 3, "")), Fault::NameTaken);
        assert_eq!(classify(400, &env("file_rename_to_same_name", 3, "")), Fault::NameTaken);
        assert_eq!(classify(400, &env("file_name_empty", 3, "")), Fault::Other);
        assert_eq!(classify(400, &env("file_rename_uncompleted", 9, "")), Fault::RenameUncompleted);
        assert_eq!(classify(400, &env("file_move_or_copy_to_cur", 9, "")), Fault::Other);
        assert_eq!(classify(503, &ErrorEnvelope::default()), Fault::Transient);
        assert_eq!(classify(404, &env("not_found", 5, "")), Fault::Other);
    }

    #[test]
    fn the_status_comes_before_the_envelope() {
        // A 5xx or 429 is transient whatever it carries: never a spent refresh token, an
        // expired access token or a wrong password.
        for e in [
            env("invalid_grant", 4126, ""),
            env("unauthenticated", 16, ""),
            env("invalid_account_or_password", 4011, ""),
        ] {
            assert_eq!(classify(503, &e), Fault::Transient);
            assert_eq!(classify(500, &e), Fault::Transient);
            assert_eq!(classify(429, &e), Fault::RateLimited);
        }
        let none = HeaderMap::new();
        let e = answer(503, &none, br#"{"error":"invalid_grant","error_code":4126}"#).unwrap_err();
        assert!(matches!(e.error, Error::ServerError { status: 503 }), "{e:?}");
        let mut later = HeaderMap::new();
        later.insert(reqwest::header::RETRY_AFTER, "2".parse().unwrap());
        let e = answer(429, &later, b"{}").unwrap_err();
        assert!(matches!(e.error, Error::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(2)));
        // No other non-2xx is data, whatever its body.
        for body in [&b"{}"[..], b"", br#"{"files":[]}"#] {
            let e = answer(404, &none, body).unwrap_err();
            assert!(!e.error.is_transient(), "{e:?}");
        }
        assert!(answer(200, &none, br#"{"error":"x","error_code":16}"#).is_err());
        assert_eq!(answer(200, &none, br#"{"files":[]}"#).unwrap()["files"], json!([]));
    }

    #[test]
    fn messages_are_one_clear_line() {
        let none = HeaderMap::new();
        let e = api_error(400, &none, &env("invalid_account_or_password", 4011, ""));
        assert!(e.error.to_string().starts_with("login refused: invalid_account_or_password"));
        let e = api_error(400, &none, &env("aborted", 10, "Your operation is too frequent"));
        assert!(matches!(e.error, Error::RateLimited { .. }));
        let e = api_error(400, &none, &env("file_space_not_enough", 8, ""));
        assert!(e.error.to_string().contains("full"));
        assert!(matches!(e.error, Error::NoSpace(_)), "{e:?}");
        let e = api_error(400, &none, &env("file_duplicated_name", 3, ""));
        assert!(matches!(e.error, Error::Exists), "{e:?}");
    }
}
