//! The presigned part PUTs (pan123-protocol.md §2.7 step 5): `PUT <base>/sim123-s3/<bucket>/
//! <key>?partNumber=N&uploadId=U&X-Amz-Date=..&X-Amz-Expires=..&X-Amz-Signature=..` with the
//! part's bytes. The signature is this simulator's own HMAC-SHA1 over bucket, key, part,
//! upload id, date and lifetime (S3's SigV4 would add nothing a client can see: it only
//! carries the URL it was given).
//!
//! Refusals, S3-style (XML body): 403 for an expired URL (`presign_ttl_secs` after it was
//! made, or the next PUT of part `expire_part`), a wrong signature, or any `Authorization` header (a presigned request carries no
//! other credentials); 411 without `Content-Length`; 404 for an upload that is not open. A
//! stored part answers 200 with `ETag: "<md5 hex>"`; sending a part again replaces it. Knobs:
//! `store_bytes_per_sec` throttles each body, `put_fault` fails the next `put_fault_count`
//! PUTs (403, 500, or a reset halfway through the body).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::routes::unix_now;
use super::upload::{BUCKET, Part};
use super::{Pan123Counters, Pan123Sim, PutFault};
use crate::sim::conn::CutSwitch;
use crate::sim::store;

/// First path segment of the part URLs.
pub const PREFIX: &str = "sim123-s3";

/// `YYYYMMDDThhmmssZ` of a Unix time.
fn amz_date(unix: i64) -> String {
    let (y, m, d) = crate::time::civil_from_days(unix.div_euclid(86_400));
    let s = unix.rem_euclid(86_400);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

fn parse_amz_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    crate::time::parse_datetime(&iso, None)
}

fn signature(secret: &str, key: &str, part: u32, upload_id: &str, date: &str, expires: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("PUT\n/{BUCKET}/{key}\n{part}\n{upload_id}\n{date}\n{expires}").as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// A URL for part `part` of upload `upload_id`, good for `ttl` seconds from now.
pub(super) fn presigned_url(sim: &Pan123Sim, key: &str, part: u32, upload_id: &str, ttl: u64) -> String {
    let date = amz_date(unix_now());
    let sig = signature(&sim.s3_secret, key, part, upload_id, &date, &ttl.to_string());
    sim.secrets.record(&sig);
    format!(
        "{}/{PREFIX}/{BUCKET}/{key}?partNumber={part}&uploadId={upload_id}&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={date}&X-Amz-Expires={ttl}&X-Amz-SignedHeaders=host&X-Amz-Signature={sig}",
        sim.base_url
    )
}

/// Why a part PUT is refused before its body is read: (status, S3 code, message).
fn refusal(sim: &Pan123Sim, req: &Request, key: &str) -> Option<(StatusCode, &'static str, &'static str)> {
    let forbidden = |code, message| Some((StatusCode::FORBIDDEN, code, message));
    if req.headers().contains_key(header::AUTHORIZATION) {
        return forbidden("AccessDenied", "Only one auth mechanism allowed");
    }
    let q: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    let get = |name: &str| q.get(name).map_or("", String::as_str);
    let part = get("partNumber").parse::<u32>().unwrap_or(0);
    let expected = signature(&sim.s3_secret, key, part, get("uploadId"), get("X-Amz-Date"), get("X-Amz-Expires"));
    if get("X-Amz-Signature") != expected {
        return forbidden("SignatureDoesNotMatch", "The request signature we calculated does not match");
    }
    let expiry = parse_amz_date(get("X-Amz-Date")).zip(get("X-Amz-Expires").parse::<i64>().ok()).map(|(d, t)| d + t);
    let expire_now = {
        let mut k = sim.knobs.lock().unwrap();
        let hit = k.expire_part == Some(part);
        if hit {
            k.expire_part = None;
        }
        hit
    };
    if expire_now || expiry.is_none_or(|e| unix_now() > e) {
        return forbidden("AccessDenied", "Request has expired");
    }
    if !req.headers().contains_key(header::CONTENT_LENGTH) {
        return Some((StatusCode::LENGTH_REQUIRED, "MissingContentLength", "You must provide the Content-Length"));
    }
    let open = sim.uploads.lock().unwrap().get(get("uploadId")).is_some_and(|u| u.key == key);
    if !open || !(1..=10_000).contains(&part) {
        return Some((StatusCode::NOT_FOUND, "NoSuchUpload", "The specified upload does not exist"));
    }
    None
}

pub(super) async fn put_part(State(sim): State<Arc<Pan123Sim>>, req: Request) -> Response {
    Pan123Counters::add(&sim.counters.part_puts);
    let path = percent_encoding::percent_decode_str(req.uri().path()).decode_utf8_lossy().into_owned();
    let key = path.strip_prefix(&format!("/{PREFIX}/{BUCKET}/")).unwrap_or("").to_string();
    if let Some((status, code, message)) = refusal(&sim, &req, &key) {
        store::read_some(req.into_body(), u64::MAX, &sim.counters.part_bytes).await;
        return xml_error(&sim, status, code, message);
    }
    let q: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    let (upload_id, part) = (q["uploadId"].clone(), q["partNumber"].parse::<u32>().unwrap_or(0));
    let cut = req.extensions().get::<ConnectInfo<CutSwitch>>().map(|c| c.0.clone());
    let length: u64 =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
    let body = req.into_body();
    let fault = take_fault(&sim);
    if fault == Some(PutFault::Reset) {
        store::read_some(body, length / 2, &sim.counters.part_bytes).await;
        if let Some(cut) = cut {
            cut.cut();
        }
        return xml_error(&sim, StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "reset");
    }
    let name = format!("part-{upload_id}-{part}-{:016x}", rand::random::<u64>());
    let rate = || sim.knobs().store_bytes_per_sec;
    let (path, md5, size) = match store::receive(&sim.tree.staging, body, &name, rate, &sim.counters.part_bytes).await {
        Ok(r) => r,
        Err(e) => return xml_error(&sim, StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e),
    };
    if let Some(fault) = fault {
        let _ = std::fs::remove_file(&path);
        return match fault {
            PutFault::Forbidden => xml_error(&sim, StatusCode::FORBIDDEN, "AccessDenied", "injected"),
            _ => xml_error(&sim, StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "injected"),
        };
    }
    let etag: String = md5.iter().map(|b| format!("{b:02x}")).collect();
    let stored = {
        let mut uploads = sim.uploads.lock().unwrap();
        uploads.get_mut(&upload_id).map(|u| u.parts.insert(part, Part { path: path.clone(), size, etag: etag.clone() }))
    };
    match stored {
        None => {
            let _ = std::fs::remove_file(&path);
            return xml_error(&sim, StatusCode::NOT_FOUND, "NoSuchUpload", "The specified upload does not exist");
        }
        Some(Some(old)) => {
            let _ = std::fs::remove_file(old.path);
        }
        Some(None) => {}
    }
    let mut res = Response::new(Body::empty());
    res.headers_mut().insert(header::ETAG, HeaderValue::from_str(&format!("\"{etag}\"")).expect("hex"));
    res
}

/// Take one from the `put_fault_count` knob: the fault, when it was above zero.
fn take_fault(sim: &Pan123Sim) -> Option<PutFault> {
    let mut k = sim.knobs.lock().unwrap();
    (k.put_fault_count > 0).then(|| {
        k.put_fault_count -= 1;
        k.put_fault
    })
}

fn xml_error(sim: &Pan123Sim, status: StatusCode, code: &str, message: &str) -> Response {
    if status == StatusCode::FORBIDDEN {
        Pan123Counters::add(&sim.counters.part_403s);
    }
    let message = message.replace('&', "&amp;").replace('<', "&lt;");
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{:016X}</RequestId></Error>",
        rand::random::<u64>()
    );
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_round_trip() {
        assert_eq!(amz_date(1_700_000_000), "20231114T221320Z");
        assert_eq!(parse_amz_date("20231114T221320Z"), Some(1_700_000_000));
        assert_eq!(parse_amz_date("2023-11-14T22:13:20Z"), None);
    }
}
