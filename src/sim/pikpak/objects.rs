//! The simulated object store (an OSS-compatible route on the simulator's own listener,
//! path-style `/<bucket>/<key>`; the write decisions file, pikpak-protocol.md §8.7 step 2):
//! single PUT, and multipart initiate (`POST ?uploads`), part (`PUT ?partNumber&uploadId`),
//! complete (`POST ?uploadId`, answered in JSON as the real one), list (`GET ?uploadId`) and
//! abort (`DELETE ?uploadId`). Every request passes [`super::oss_auth::check`] first (403 with
//! an XML error otherwise). Bodies stream to the staging dir (MD5 for the `ETag`, the
//! `store_bytes_per_sec` throttle, the body-byte counter); a complete object goes to
//! [`super::upload::store_object`]. Knobs make the next PUTs fail (403, 500, or a reset
//! halfway through the body).
//!
//! Tolerances (the real store is stricter, unconfirmed how much): parts may be of any size;
//! `Date` is not checked against the clock.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::json;

use super::knobs::{Counters, PutFault};
use super::upload::{BUCKET, Part, store_object};
use super::{PikPakSim, oss_auth};
use crate::sim::conn::CutSwitch;
use crate::sim::store;

pub(super) async fn handle(State(st): State<Arc<PikPakSim>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let cut = parts.extensions.get::<ConnectInfo<CutSwitch>>().map(|c| c.0.clone());
    let raw_key = parts.uri.path().strip_prefix(&format!("/{BUCKET}/")).unwrap_or("");
    let key = percent_encoding::percent_decode_str(raw_key).decode_utf8_lossy().into_owned();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let q = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let method = parts.method.as_str();
    let headers = &parts.headers;
    // The signature received is a secret too (tests/e2e/secrets.rs greps logs for each).
    if let Some((_, signature)) = headers.get("authorization").and_then(|v| v.to_str().ok()?.split_once(':')) {
        st.secrets.record(signature);
    }
    let checked = oss_auth::check(&st.lock(), method, headers, &key, &query);
    if let Err(code) = checked {
        drain(&st, body).await;
        return xml_error(&st, StatusCode::FORBIDDEN, code);
    }
    let c = &st.counters;
    match (method, q("uploadId"), q("partNumber"), q("uploads").is_some()) {
        ("PUT", None, None, false) => {
            Counters::bump(&c.single_puts);
            put(&st, headers, body, cut, &key, None).await
        }
        ("PUT", Some(upload_id), Some(n), _) => {
            Counters::bump(&c.part_puts);
            match n.parse::<u32>() {
                Ok(n) if (1..=10_000).contains(&n) => put(&st, headers, body, cut, &key, Some((upload_id, n))).await,
                _ => xml_error(&st, StatusCode::BAD_REQUEST, "InvalidArgument"),
            }
        }
        ("POST", None, None, true) => initiate(&st, &key),
        ("POST", Some(upload_id), None, _) => {
            Counters::bump(&c.completes);
            complete(&st, &key, &upload_id, body).await
        }
        ("GET", Some(upload_id), ..) => list_parts(&st, &key, &upload_id),
        ("DELETE", Some(upload_id), ..) => {
            Counters::bump(&c.aborts);
            abort(&st, &key, &upload_id)
        }
        _ => xml_error(&st, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
    }
}

/// A single PUT (`part` `None`) or a part PUT: receive the body, then store it.
async fn put(
    st: &Arc<PikPakSim>,
    headers: &HeaderMap,
    body: Body,
    cut: Option<CutSwitch>,
    key: &str,
    part: Option<(String, u32)>,
) -> Response {
    if let Some((upload_id, _)) = &part {
        if !st.lock().uploads.get(key).is_some_and(|u| u.multipart.contains_key(upload_id)) {
            drain(st, body).await;
            return xml_error(st, StatusCode::NOT_FOUND, "NoSuchUpload");
        }
    }
    let fault = st.take_count(|k| &mut k.put_fault_count).then(|| st.knobs().put_fault);
    if fault == Some(PutFault::Reset) {
        let length: u64 = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
        read_some(st, body, length / 2).await;
        if let Some(cut) = cut {
            cut.cut();
        }
        return xml_error(st, StatusCode::INTERNAL_SERVER_ERROR, "InternalError");
    }
    let name = format!("{:032x}", rand::random::<u128>());
    let received = match receive(st, body, &name).await {
        Ok(r) => r,
        Err(e) => return xml_error_text(st, StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e),
    };
    let (path, md5, size) = received;
    let refusal = match fault {
        Some(PutFault::Forbidden) => Some((StatusCode::FORBIDDEN, "SignatureDoesNotMatch")),
        Some(_) => Some((StatusCode::INTERNAL_SERVER_ERROR, "InternalError")),
        None if !store::content_md5_matches(headers, &md5) => Some((StatusCode::BAD_REQUEST, "InvalidDigest")),
        None => None,
    };
    if let Some((status, code)) = refusal {
        let _ = std::fs::remove_file(&path);
        return xml_error(st, status, code);
    }
    let etag = hex_upper(&md5);
    match part {
        None => {
            if let Err(e) = store_object(st, key, path).await {
                return xml_error_text(st, StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e);
            }
        }
        Some((upload_id, n)) => {
            let mut inner = st.lock();
            let Some(parts) = inner.uploads.get_mut(key).and_then(|u| u.multipart.get_mut(&upload_id)) else {
                let _ = std::fs::remove_file(&path);
                return xml_error(st, StatusCode::NOT_FOUND, "NoSuchUpload");
            };
            if let Some(old) = parts.insert(n, Part { etag: etag.clone(), path, size }) {
                let _ = std::fs::remove_file(old.path);
            }
        }
    }
    let mut res = empty(StatusCode::OK);
    res.headers_mut().insert(header::ETAG, HeaderValue::from_str(&format!("\"{etag}\"")).expect("hex"));
    res
}

/// Stream `body` into the staging file `name`: (path, MD5, size), throttled by the
/// `store_bytes_per_sec` knob, every byte counted in `store_body_bytes`.
async fn receive(st: &PikPakSim, body: Body, name: &str) -> Result<(PathBuf, Vec<u8>, u64), String> {
    let rate = || st.knobs().store_bytes_per_sec;
    store::receive(&st.staging, body, name, rate, &st.counters.store_body_bytes).await
}

/// Read and count a body we will not keep.
async fn drain(st: &PikPakSim, body: Body) {
    read_some(st, body, u64::MAX).await;
}

async fn read_some(st: &PikPakSim, body: Body, limit: u64) {
    store::read_some(body, limit, &st.counters.store_body_bytes).await;
}

fn initiate(st: &PikPakSim, key: &str) -> Response {
    let upload_id = format!("{:032X}", rand::random::<u128>());
    let mut inner = st.lock();
    let Some(upload) = inner.uploads.get_mut(key) else { return xml_error(st, StatusCode::NOT_FOUND, "NoSuchKey") };
    upload.multipart.insert(upload_id.clone(), Default::default());
    xml(
        StatusCode::OK,
        format!(
            "<InitiateMultipartUploadResult><Bucket>{BUCKET}</Bucket><Key>{key}</Key><UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>"
        ),
    )
}

/// `<CompleteMultipartUpload>`: every listed part present with its ETag, in ascending order;
/// the parts are joined in that order into the object.
async fn complete(st: &Arc<PikPakSim>, key: &str, upload_id: &str, body: Body) -> Response {
    let text = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(b) => {
            Counters::add(&st.counters.store_body_bytes, b.len() as u64);
            String::from_utf8_lossy(&b).into_owned()
        }
        Err(_) => return xml_error(st, StatusCode::BAD_REQUEST, "MalformedXML"),
    };
    let listed = match store::completed_parts(&text) {
        Ok(listed) => listed,
        Err(code) => return xml_error(st, StatusCode::BAD_REQUEST, code),
    };
    let paths: Vec<PathBuf> = {
        let inner = st.lock();
        let Some(parts) = inner.uploads.get(key).and_then(|u| u.multipart.get(upload_id)) else {
            return xml_error(st, StatusCode::NOT_FOUND, "NoSuchUpload");
        };
        if listed.iter().any(|(n, etag)| parts.get(n).is_none_or(|p| !p.etag.eq_ignore_ascii_case(etag))) {
            return xml_error(st, StatusCode::BAD_REQUEST, "InvalidPart");
        }
        listed.iter().map(|(n, _)| parts[n].path.clone()).collect()
    };
    let object = match st.staging_file(&format!("{:032x}", rand::random::<u128>())) {
        Ok(p) => p,
        Err(e) => return xml_error_text(st, StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e.to_string()),
    };
    let target = object.clone();
    let joined = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut out = std::fs::File::create(&target)?;
        for p in paths {
            std::io::copy(&mut std::fs::File::open(p)?, &mut out)?;
        }
        Ok(())
    })
    .await;
    if let Err(e) = joined.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
        return xml_error_text(st, StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e);
    }
    if let Err(e) = store_object(st, key, object).await {
        return xml_error_text(st, StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e);
    }
    remove_multipart(st, key, upload_id);
    super::reply(StatusCode::OK, json!({ "bucket": BUCKET, "key": key, "upload_id": upload_id, "status": "OK" }))
}

fn list_parts(st: &PikPakSim, key: &str, upload_id: &str) -> Response {
    let inner = st.lock();
    let Some(parts) = inner.uploads.get(key).and_then(|u| u.multipart.get(upload_id)) else {
        return xml_error(st, StatusCode::NOT_FOUND, "NoSuchUpload");
    };
    let items: String = parts
        .iter()
        .map(|(n, p)| {
            format!("<Part><PartNumber>{n}</PartNumber><ETag>\"{}\"</ETag><Size>{}</Size></Part>", p.etag, p.size)
        })
        .collect();
    xml(
        StatusCode::OK,
        format!(
            "<ListPartsResult><Bucket>{BUCKET}</Bucket><Key>{key}</Key><UploadId>{upload_id}</UploadId><IsTruncated>false</IsTruncated>{items}</ListPartsResult>"
        ),
    )
}

fn abort(st: &PikPakSim, key: &str, upload_id: &str) -> Response {
    if remove_multipart(st, key, upload_id) {
        empty(StatusCode::NO_CONTENT)
    } else {
        xml_error(st, StatusCode::NOT_FOUND, "NoSuchUpload")
    }
}

/// Forget a multipart upload and delete its parts; whether there was one.
fn remove_multipart(st: &PikPakSim, key: &str, upload_id: &str) -> bool {
    let removed = st.lock().uploads.get_mut(key).and_then(|u| u.multipart.remove(upload_id));
    for part in removed.iter().flat_map(|parts| parts.values()) {
        let _ = std::fs::remove_file(&part.path);
    }
    removed.is_some()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn empty(status: StatusCode) -> Response {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = status;
    res
}

fn xml(status: StatusCode, body: String) -> Response {
    let mut res = Response::new(Body::from(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}")));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    res
}

fn xml_error(st: &PikPakSim, status: StatusCode, code: &str) -> Response {
    xml_error_text(st, status, code, code)
}

fn xml_error_text(st: &PikPakSim, status: StatusCode, code: &str, message: &str) -> Response {
    if status == StatusCode::FORBIDDEN {
        Counters::bump(&st.counters.store_403s);
    }
    let message = message.replace('&', "&amp;").replace('<', "&lt;");
    xml(
        status,
        format!(
            "<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{:024X}</RequestId><HostId>sim</HostId></Error>",
            rand::random::<u128>() >> 32
        ),
    )
}
