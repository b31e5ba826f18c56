//! Handlers of the simulated 123pan API (see the parent module for the behaviour).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{get, post, put};
use base64::Engine;
use serde_json::{Value, json};
use tracing::debug;

use super::tree::{Node, UID};
use super::{LoginFault, Pan123Counters, Pan123Sim, knobs, mutate, objects, upload, verify};
use crate::sim::cdn::provider_link;

const SIGNATURE_MESSAGE: &str = "签名错误,请检查您的本地时间是否为东八区时间";

pub fn router(sim: Arc<Pan123Sim>) -> Router {
    Router::new()
        .route("/api/user/sign_in", post(sign_in))
        .route("/b/api/user/info", get(user_info))
        .route("/b/api/file/list/new", get(list))
        .route("/b/api/file/download_info", post(download_info))
        .route("/b/api/share/get", get(share_get))
        .route("/b/api/share/download/info", post(share_download))
        .route("/sim123/hop/{id}", get(hop))
        .route("/b/api/file/upload_request", personal(upload::upload_request))
        .route("/b/api/file/s3_upload_object/auth", personal(upload::presign))
        .route("/b/api/file/s3_repare_upload_parts_batch", personal(upload::presign))
        .route("/b/api/file/s3_list_upload_parts", personal(upload::list_parts))
        .route("/b/api/file/upload_complete/v2", post(upload::complete))
        .route(&format!("/{}/{{*key}}", objects::PREFIX), put(objects::put_part))
        .route("/b/api/file/rename", personal(mutate::rename))
        .route("/b/api/file/mod_pid", personal(mutate::move_items))
        .route("/b/api/file/trash", personal(mutate::trash))
        .route("/b/api/file/info", personal(mutate::info))
        .route("/_sim/pan123/knobs", get(knobs::get_knobs).put(knobs::put_knobs))
        .route("/_sim/pan123/counters", get(knobs::get_counters))
        .with_state(sim)
}

pub(super) type Reply = Result<Response, Fail>;

/// An error envelope, before it becomes a response: always HTTP 200, `data` null (never a
/// string, §6.5).
pub(super) struct Fail {
    pub code: i64,
    pub message: String,
}

impl Fail {
    pub(super) fn response(self) -> Response {
        reply(StatusCode::OK, json!({"code": self.code, "message": self.message, "data": null}))
    }
}

pub(super) fn reply(status: StatusCode, value: Value) -> Response {
    let mut res = Response::new(Body::from(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    res
}

pub(super) fn ok(data: Value) -> Response {
    reply(StatusCode::OK, json!({"code": 0, "message": "ok", "data": data}))
}

pub(super) fn fail(code: i64, message: &str) -> Fail {
    Fail { code, message: message.to_string() }
}

pub(super) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Query parameters by lowercased name (the service is believed to ignore case, §6.7).
fn query(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect()
}

/// A JSON body field by case-insensitive name.
pub(super) fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// A number or a numeric string.
pub(super) fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

fn bearer(headers: &HeaderMap) -> String {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    value.strip_prefix("Bearer").unwrap_or("").trim().to_string()
}

fn injected_message(code: i64) -> &'static str {
    match code {
        401 => "token is expired",
        429 => "请求太频繁",
        5103 => "提取码错误",
        5113 => "流量超限",
        _ => "injected error",
    }
}

impl Pan123Sim {
    /// Platform header, signature, injected errors and (for personal endpoints) the token.
    fn guard(&self, headers: &HeaderMap, uri: &Uri, personal: bool) -> Result<(), Fail> {
        let k = self.knobs();
        if k.require_platform && headers.get("platform").is_none() {
            return Err(fail(1, "Please include the platform field in the request header"));
        }
        if k.strict_signature {
            let now = unix_now() + k.clock_offset_secs;
            if let Err(reason) = verify::check(uri.query().unwrap_or(""), uri.path(), now, k.skew_window_secs) {
                Pan123Counters::add(&self.counters.signature_refused);
                debug!(path = uri.path(), reason, "sim 123pan: signature refused");
                return Err(fail(k.signature_error_code, SIGNATURE_MESSAGE));
            }
        }
        let injected = {
            let mut k = self.knobs.lock().unwrap();
            (k.inject_count > 0).then(|| {
                k.inject_count -= 1;
                k.inject_code
            })
        };
        if let Some(code) = injected {
            Pan123Counters::add(&self.counters.injected);
            return Err(fail(code, injected_message(code)));
        }
        let token = bearer(headers);
        if personal {
            let valid =
                self.tokens.lock().unwrap().get(&token).is_some_and(|exp| exp.is_none_or(|e| Instant::now() < e));
            if token.is_empty() || !valid {
                Pan123Counters::add(&self.counters.unauthorized);
                return Err(fail(401, "token is expired"));
            }
        } else if !token.is_empty() {
            self.secrets.record(&token);
            Pan123Counters::add(&self.counters.share_calls_with_token);
        }
        Ok(())
    }

    /// Code 429 when `endpoint` was accepted less than `list_interval_ms` ago.
    fn rate_limit(&self, endpoint: &'static str) -> Result<(), Fail> {
        let interval = Duration::from_millis(self.knobs().list_interval_ms);
        let now = Instant::now();
        let mut times = self.list_times.lock().unwrap();
        let allowed = match times.get(endpoint) {
            Some((last, accepted)) => {
                let gap = now.duration_since(*last).as_millis() as u64;
                self.counters.min_list_gap_ms.fetch_min(gap, std::sync::atomic::Ordering::Relaxed);
                interval.is_zero() || now.duration_since(*accepted) >= interval
            }
            None => true,
        };
        let accepted = if allowed { now } else { times.get(endpoint).map_or(now, |t| t.1) };
        times.insert(endpoint, (now, accepted));
        if allowed {
            Ok(())
        } else {
            Pan123Counters::add(&self.counters.rate_limited);
            Err(fail(429, "请求太频繁"))
        }
    }

    /// One page of `children` (already in `file_id desc` order).
    fn page(&self, children: &[Node], q: &HashMap<String, String>, with_total: bool) -> Value {
        let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0).unwrap_or(100);
        let size = limit.min(self.knobs().page_size.max(1));
        let page = q.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
        let start = (page - 1).saturating_mul(size).min(children.len());
        let end = (start + size).min(children.len());
        let items: Vec<Value> = children[start..end].iter().map(|n| self.tree.file_json(n)).collect();
        let next = if end >= children.len() { "-1".to_string() } else { children[end - 1].id.to_string() };
        let mut data = json!({"Next": next, "Len": items.len(), "IsFirst": page == 1, "InfoList": items});
        if with_total {
            data["Total"] = json!(children.len());
        }
        data
    }

    /// `…/sim123/download/?params=<base64 of the hop URL, percent-escaped>&is_s3=0`.
    fn download_url(&self, node: &Node) -> String {
        let hop =
            format!("{}/sim123/hop/{}?v=5&t={}&s={:08x}", self.base_url, node.id, unix_now(), rand::random::<u32>());
        let b64 = base64::engine::general_purpose::STANDARD.encode(hop);
        let escaped: String = url::form_urlencoded::byte_serialize(b64.as_bytes()).collect();
        self.secrets.record(&b64);
        format!("{}/sim123/download/?params={escaped}&is_s3=0", self.base_url)
    }

    /// The file a download body names, checked as the service would (Etag and S3KeyFlag).
    fn download_target(&self, body: &Value) -> Result<Node, Fail> {
        let id = int(field(body, "fileId")).ok_or_else(|| fail(1, "参数错误: fileId"))?;
        let node = self.tree.node(id).filter(|n| !n.is_dir).ok_or_else(|| fail(5066, "文件不存在"))?;
        if !text(field(body, "etag")).eq_ignore_ascii_case(&self.tree.etag(&node)) {
            return Err(fail(1, "参数错误: etag"));
        }
        if text(field(body, "s3keyFlag")) != format!("{UID}-0") {
            return Err(fail(1, "参数错误: s3keyFlag"));
        }
        if self.knobs().traffic_exhausted {
            return Err(fail(5113, "流量超限"));
        }
        Ok(node)
    }

    /// The share's folder, after the password check (case-insensitive, §3).
    fn open_share(&self, key: &str, password: &str) -> Result<String, Fail> {
        self.secrets.record(password);
        let shares = self.shares.lock().unwrap();
        let share = shares.get(key).ok_or_else(|| fail(5102, "分享不存在或已失效"))?;
        if !share.password.is_empty() && !share.password.eq_ignore_ascii_case(password.trim()) {
            Pan123Counters::add(&self.counters.share_password_refused);
            return Err(fail(5103, "提取码错误"));
        }
        Ok(share.rel.clone())
    }
}

pub(super) fn parse_body(body: &Bytes) -> Result<Value, Fail> {
    serde_json::from_slice(body).map_err(|_| fail(1, "参数错误"))
}

/// The route of a personal `/b/api` POST answered by `f` (see [`personal_post`]).
fn personal(f: fn(&Pan123Sim, &Value) -> Reply) -> axum::routing::MethodRouter<Arc<Pan123Sim>> {
    post(move |State(sim): State<Arc<Pan123Sim>>, headers: HeaderMap, uri: Uri, body: Bytes| async move {
        personal_post(&sim, &headers, &uri, &body, |b| f(&sim, b))
    })
}

/// A personal `/b/api` POST: the guard, the JSON body, then `f`.
pub(super) fn personal_post(
    sim: &Pan123Sim,
    headers: &HeaderMap,
    uri: &Uri,
    body: &Bytes,
    f: impl FnOnce(&Value) -> Reply,
) -> Response {
    let run = || -> Reply {
        sim.guard(headers, uri, true)?;
        f(&parse_body(body)?)
    };
    run().unwrap_or_else(Fail::response)
}

async fn sign_in(State(sim): State<Arc<Pan123Sim>>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r.response(),
    };
    match sim.knobs().login_fault {
        Some(LoginFault::AbroadRisk) => {
            Pan123Counters::add(&sim.counters.login_refused);
            return reply(
                StatusCode::OK,
                json!({"code": 7012, "message": "当前账号存在境外登录风险，请使用短信验证码或者微信进行登录。", "data": {"hashCode": "0123456789abcdef0123456789abcdef"}}),
            );
        }
        Some(LoginFault::TooFrequent) => {
            Pan123Counters::add(&sim.counters.login_refused);
            return fail(1, "当前登录操作频繁，请稍后再试").response();
        }
        None => {}
    }
    let password = text(field(&body, "password"));
    sim.secrets.record(&password);
    let user = match (field(&body, "mail"), field(&body, "passport")) {
        (Some(mail), _) if int(field(&body, "type")) == Some(2) => text(Some(mail)),
        (None, Some(passport)) => text(Some(passport)),
        _ => return fail(1, "参数错误").response(),
    };
    let known = sim.accounts.lock().unwrap().get(&user).is_some_and(|p| *p == password);
    if !known {
        Pan123Counters::add(&sim.counters.login_refused);
        return fail(5201, "账号或密码错误").response();
    }
    let exp = unix_now() + 30 * 86_400;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = json!({"exp": exp, "id": UID, "username": user}).to_string();
    let token = format!(
        "{}.{}.{:032x}",
        b64url.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        b64url.encode(claims),
        rand::random::<u128>()
    );
    let ttl = sim.knobs().token_ttl_secs.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    sim.secrets.record(&token);
    sim.tokens.lock().unwrap().insert(token.clone(), ttl);
    Pan123Counters::add(&sim.counters.logins);
    reply(
        StatusCode::OK,
        json!({"code": 200, "message": "success", "data": {"token": token, "expire": verify::rfc3339_cst(exp), "login_type": 0}}),
    )
}

async fn user_info(State(sim): State<Arc<Pan123Sim>>, headers: HeaderMap, uri: Uri) -> Response {
    if let Err(r) = sim.guard(&headers, &uri, true) {
        return r.response();
    }
    let (used, count) = sim.tree.usage();
    let space = sim.knobs().quota_limit;
    ok(
        json!({"UID": UID, "Nickname": "tester", "SpaceUsed": used, "SpacePermanent": space, "SpaceTemp": 0, "FileCount": count}),
    )
}

async fn list(State(sim): State<Arc<Pan123Sim>>, headers: HeaderMap, uri: Uri) -> Response {
    let run = || -> Reply {
        sim.guard(&headers, &uri, true)?;
        sim.rate_limit("file/list/new")?;
        Pan123Counters::add(&sim.counters.list_calls);
        let q = query(&uri);
        let parent = q.get("parentfileid").and_then(|p| p.parse::<i64>().ok()).unwrap_or(0);
        let children = sim.tree.children(parent).ok_or_else(|| fail(5066, "文件不存在"))?;
        Ok(ok(sim.page(&children, &q, true)))
    };
    run().unwrap_or_else(Fail::response)
}

async fn download_info(State(sim): State<Arc<Pan123Sim>>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let run = || -> Reply {
        sim.guard(&headers, &uri, true)?;
        Pan123Counters::add(&sim.counters.download_info);
        let node = sim.download_target(&parse_body(&body)?)?;
        Ok(ok(json!({"DownloadUrl": sim.download_url(&node)})))
    };
    run().unwrap_or_else(Fail::response)
}

async fn share_get(State(sim): State<Arc<Pan123Sim>>, headers: HeaderMap, uri: Uri) -> Response {
    let run = || -> Reply {
        sim.guard(&headers, &uri, false)?;
        sim.rate_limit("share/get")?;
        Pan123Counters::add(&sim.counters.share_list_calls);
        let q = query(&uri);
        let rel =
            sim.open_share(q.get("sharekey").map_or("", |s| s.as_str()), q.get("sharepwd").map_or("", |s| s.as_str()))?;
        let parent = match q.get("parentfileid").and_then(|p| p.parse::<i64>().ok()).unwrap_or(0) {
            0 => sim.tree.id_of(&rel).ok_or_else(|| fail(5066, "文件不存在"))?,
            id if sim.tree.is_within(id, &rel) => id,
            _ => return Err(fail(5066, "文件不存在")),
        };
        let children = sim.tree.children(parent).ok_or_else(|| fail(5066, "文件不存在"))?;
        Ok(ok(sim.page(&children, &q, false)))
    };
    run().unwrap_or_else(Fail::response)
}

async fn share_download(State(sim): State<Arc<Pan123Sim>>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let run = || -> Reply {
        sim.guard(&headers, &uri, false)?;
        Pan123Counters::add(&sim.counters.download_info);
        let body = parse_body(&body)?;
        let rel = sim.open_share(&text(field(&body, "shareKey")), &text(field(&body, "SharePwd")))?;
        let id = int(field(&body, "fileId")).unwrap_or(-1);
        if !sim.tree.is_within(id, &rel) {
            return Err(fail(5066, "文件不存在"));
        }
        let node = sim.download_target(&body)?;
        Ok(ok(json!({"DownloadURL": sim.download_url(&node)})))
    };
    run().unwrap_or_else(Fail::response)
}

/// The second hop: 302 to the CDN, or the JSON form.
async fn hop(State(sim): State<Arc<Pan123Sim>>, Path(id): Path<i64>) -> Response {
    Pan123Counters::add(&sim.counters.hops);
    let Some(node) = sim.tree.node(id).filter(|n| !n.is_dir) else {
        return fail(5066, "文件不存在").response();
    };
    let k = sim.knobs();
    let referer = format!("{}/", sim.base_url);
    // Links minted in one second would be identical, and the CDN's `link_ttl_secs` knob
    // keys on the signature: a serial number in the expiry keeps every link distinct.
    let serial = sim.counters.hops.load(std::sync::atomic::Ordering::Relaxed) % 1000;
    let expire = unix_now().max(0) as u64 + k.link_ttl_secs + serial;
    let url = provider_link(&sim.base_url, &sim.link_secret, &node.rel, expire, Some(&referer));
    sim.secrets.record_param(&url, "sim_sig");
    if k.hop_json {
        return ok(json!({"redirect_url": url}));
    }
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::FOUND;
    if let Ok(v) = header::HeaderValue::from_str(&url) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}
