//! Simulated anonymous shares (pikpak-protocol.md §9, §13.20–§13.22). The share is the whole
//! data tree. Share problems are HTTP 200 with a `share_status`; the gateway's own refusals
//! (no device id, no captcha token) use the `{"detail": ...}` shape.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::auth::check_captcha;
use super::drive::{ListFilter, check_filters, detail_json, page};
use super::knobs::Counters;
use super::{PikPakSim, error, header_str, md5_hex, ok, reply};

type Q = Query<HashMap<String, String>>;

fn status_text(status: &str) -> &'static str {
    match status {
        "PASS_CODE_EMPTY" => "Please enter the pass code",
        "PASS_CODE_ERROR" => "Incorrect pass code",
        "DELETED" => "The share has been deleted",
        "EXPIRED" => "The share has expired",
        "NOT_FOUND" => "The share does not exist",
        "PROHIBITED" => "This resource is not available in your region",
        _ => "",
    }
}

fn status(status: &str) -> Response {
    ok(
        json!({ "share_status": status, "share_status_text": status_text(status), "files": [], "pass_code_token": "", "next_page_token": "" }),
    )
}

fn pass_token(share_id: &str, password: &str) -> String {
    format!("pct{}", md5_hex(format!("{share_id}\0{password}").as_bytes()))
}

/// Gateway checks, then the share's own state. `Ok(())` when the call may proceed.
fn gate(st: &PikPakSim, headers: &HeaderMap, q: &HashMap<String, String>, check_token: bool) -> Result<(), Response> {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if header_str(headers, "x-device-id").is_empty() && get("device_id").is_empty() {
        return Err(reply(StatusCode::BAD_REQUEST, json!({"detail": "device_id is empty"})));
    }
    if header_str(headers, "x-captcha-token").is_empty() && get("captcha_token").is_empty() {
        return Err(reply(StatusCode::BAD_REQUEST, json!({"detail": "captcha_token is empty"})));
    }
    if st.rate_limited() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "aborted",
            10,
            "Your operation is too frequent, please try again later",
        ));
    }
    check_captcha(st, headers, "GET:/drive/v1/share:batch_file_info")?;
    let k = st.knobs();
    if get("share_id") != k.share_id {
        return Err(status("NOT_FOUND"));
    }
    if k.share_status != "OK" {
        return Err(status(&k.share_status));
    }
    if check_token && !k.share_password.is_empty() {
        let token = get("pass_code_token");
        if token.is_empty() {
            return Err(status("PASS_CODE_EMPTY"));
        }
        if token != pass_token(&k.share_id, &k.share_password) {
            return Err(status("PASS_CODE_ERROR"));
        }
    }
    Ok(())
}

pub(super) async fn open(State(st): State<Arc<PikPakSim>>, headers: HeaderMap, Query(q): Q) -> Response {
    Counters::bump(&st.counters.share_opens);
    if let Err(r) = gate(&st, &headers, &q, false) {
        return r;
    }
    let k = st.knobs();
    let given = q.get("pass_code").cloned().unwrap_or_default();
    st.secrets.record(&given);
    st.secrets.record(&pass_token(&k.share_id, &k.share_password));
    if !k.share_password.is_empty() && given.is_empty() {
        return status("PASS_CODE_EMPTY");
    }
    if !k.share_password.is_empty() && given != k.share_password {
        return status("PASS_CODE_ERROR");
    }
    let inner = st.lock();
    let (files, next) = match page(&st, &inner, "", "100", "", &ListFilter::visible()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    ok(json!({
        "share_status": "OK", "share_status_text": "", "pass_code_token": pass_token(&k.share_id, &k.share_password),
        "files": files, "next_page_token": next, "file_num": inner.nodes.len().to_string(), "title": "shared files",
        "expiration_at": "-1", "restore_count_left": "-1",
        "user_info": {"user_id": k.user_id, "nickname": "a***e", "avatar": ""},
        "params": {"anonymous_play_seconds": "120", "auto_play": "false"},
    }))
}

pub(super) async fn detail(State(st): State<Arc<PikPakSim>>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = gate(&st, &headers, &q, true).and_then(|()| check_filters(&q)) {
        return r;
    }
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let inner = st.lock();
    match page(&st, &inner, &get("parent_id"), &get("limit"), &get("page_token"), &ListFilter::parse(&q)) {
        Ok((files, next)) => {
            ok(json!({ "share_status": "OK", "share_status_text": "", "files": files, "next_page_token": next }))
        }
        Err(r) => r,
    }
}

pub(super) async fn file_info(State(st): State<Arc<PikPakSim>>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = gate(&st, &headers, &q, true) {
        return r;
    }
    Counters::bump(&st.counters.details);
    let k = st.knobs();
    let inner = st.lock();
    let found = q.get("file_id").and_then(|id| inner.nodes.get(id));
    let Some(n) = found.filter(|n| !n.is_dir && n.is_complete() && !inner.in_trash(&n.id)) else {
        return error(StatusCode::NOT_FOUND, "file_not_found", 5, "File not found");
    };
    let info = detail_json(&st, &inner, n, k.share_web_content_link, k.transcode.then_some(false));
    ok(json!({ "share_status": "OK", "share_status_text": "", "file_info": info }))
}
