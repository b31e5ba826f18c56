//! The object store's request check (the write decisions file, "object store"): the security
//! token, the access key, the credentials' expiry, and the OSS V1 signature,
//! `Authorization: OSS <access_key_id>:<base64(HMAC-SHA1(secret, StringToSign))>`. Written here
//! from the decisions file for the simulator alone; the driver's signer is separate, so each
//! checks the other.

use std::time::SystemTime;

use axum::http::HeaderMap;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::Inner;
use super::upload::BUCKET;

/// Query parameters that are sub-resources (part of the signed resource); others, such as
/// `max-parts`, are not.
const SUBRESOURCES: &[&str] = &["acl", "append", "delete", "partNumber", "position", "uploadId", "uploads"];

/// VERB, Content-MD5, Content-Type, Date, the `x-oss-*` headers (lowercase, sorted,
/// `name:value\n` each) and `/<bucket>/<key>` with the sorted sub-resources after `?`.
pub(super) fn string_to_sign(method: &str, headers: &HeaderMap, key: &str, query: &[(String, String)]) -> String {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_owned();
    let mut oss: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-oss-"))
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").trim().to_owned()))
        .collect();
    oss.sort();
    let mut sub: Vec<String> = query
        .iter()
        .filter(|(k, _)| SUBRESOURCES.contains(&k.as_str()))
        .map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k}={v}") })
        .collect();
    sub.sort();
    let oss: String = oss.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let sub = if sub.is_empty() { String::new() } else { format!("?{}", sub.join("&")) };
    format!("{method}\n{}\n{}\n{}\n{oss}/{BUCKET}/{key}{sub}", h("content-md5"), h("content-type"), h("date"))
}

/// `Ok(object key's upload)` or the OSS error code of the 403 to answer.
pub(super) fn check(
    inner: &Inner,
    method: &str,
    headers: &HeaderMap,
    key: &str,
    query: &[(String, String)],
) -> Result<(), &'static str> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some((access_key, signature)) = auth.strip_prefix("OSS ").and_then(|a| a.split_once(':')) else {
        return Err("SignatureDoesNotMatch");
    };
    let Some(upload) = inner.uploads.values().find(|u| u.access_key_id == access_key) else {
        return Err("InvalidAccessKeyId");
    };
    let token = headers.get("x-oss-security-token").and_then(|v| v.to_str().ok()).unwrap_or("");
    if token != upload.security_token {
        return Err("InvalidSecurityToken");
    }
    if SystemTime::now() >= upload.expires {
        return Err("SecurityTokenExpired");
    }
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(upload.access_key_secret.as_bytes()) else {
        return Err("SignatureDoesNotMatch");
    };
    mac.update(string_to_sign(method, headers, key, query).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if signature != expected {
        return Err("SignatureDoesNotMatch");
    }
    if upload.key != key {
        return Err("AccessDenied");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_sign_orders_oss_headers_and_subresources() {
        let mut h = HeaderMap::new();
        h.insert("date", "Thu, 01 Jan 2026 00:00:00 GMT".parse().unwrap());
        h.insert("content-type", "application/octet-stream".parse().unwrap());
        h.insert("x-oss-security-token", "T".parse().unwrap());
        h.insert("x-oss-meta-a", " v ".parse().unwrap());
        let q =
            vec![("uploadId".into(), "U".into()), ("max-parts".into(), "9".into()), ("partNumber".into(), "3".into())];
        assert_eq!(
            string_to_sign("PUT", &h, "k/x", &q),
            format!(
                "PUT\n\napplication/octet-stream\nThu, 01 Jan 2026 00:00:00 GMT\nx-oss-meta-a:v\nx-oss-security-token:T\n/{BUCKET}/k/x?partNumber=3&uploadId=U"
            )
        );
        let q = vec![("uploads".into(), String::new())];
        assert!(string_to_sign("POST", &HeaderMap::new(), "k", &q).ends_with(&format!("\n\n\n\n/{BUCKET}/k?uploads")));
    }
}
