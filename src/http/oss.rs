//! Aliyun OSS V1 request signing and addressing, as pure functions (pikpak-protocol.md §8.7,
//! step 2; the write-protocol decisions file). One place for every driver that talks to an
//! OSS-compatible object store with temporary (STS) credentials.
//!
//! Signature: `Authorization: OSS <access_key_id>:<base64(HMAC-SHA1(secret, StringToSign))>`,
//! StringToSign = VERB, Content-MD5, Content-Type, Date (each followed by `\n`), then every
//! `x-oss-*` header lowercased and sorted (`name:value\n`), then `/<bucket>/<key>` with the
//! sub-resources (`uploads`, `partNumber=N&uploadId=U`) sorted after a `?`.
//!
//! The secret, the security token, the signature and the header that carries it are never
//! logged: nothing here logs, and callers log only method, part number and sizes.

use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha1::Sha1;

use crate::error::{Error, Result};

/// One request as the signature sees it. Sub-resource values are the decoded ones. No
/// `Debug`: the `x-oss-*` headers carry the security token.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub content_md5: &'a str,
    pub content_type: &'a str,
    /// RFC 1123 GMT, the value of the `Date` header sent.
    pub date: &'a str,
    /// Every header sent whose name starts with `x-oss-` (any case).
    pub oss_headers: &'a [(&'a str, &'a str)],
    pub bucket: &'a str,
    pub key: &'a str,
    /// `("uploads", None)`, `("partNumber", Some("3"))`, ...
    pub sub_resources: &'a [(&'a str, Option<&'a str>)],
}

/// The sub-resources in signing (and URL) order: sorted by name, `name` or `name=value`.
fn sorted_sub_resources<'a>(subs: &[(&'a str, Option<&'a str>)]) -> Vec<(&'a str, Option<&'a str>)> {
    let mut subs = subs.to_vec();
    subs.sort_by(|a, b| a.0.cmp(b.0));
    subs
}

/// The StringToSign of OSS V1.
pub fn string_to_sign(req: &Request) -> String {
    let mut headers: Vec<(String, &str)> = req
        .oss_headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim()))
        .filter(|(name, _)| name.starts_with("x-oss-"))
        .collect();
    headers.sort();
    let mut out = format!("{}\n{}\n{}\n{}\n", req.method, req.content_md5, req.content_type, req.date);
    for (name, value) in headers {
        out.push_str(&format!("{name}:{value}\n"));
    }
    out.push_str(&format!("/{}/{}", req.bucket, req.key));
    let subs: Vec<String> = sorted_sub_resources(req.sub_resources)
        .into_iter()
        .map(|(name, value)| match value {
            Some(v) => format!("{name}={v}"),
            None => name.to_owned(),
        })
        .collect();
    if !subs.is_empty() {
        out.push('?');
        out.push_str(&subs.join("&"));
    }
    out
}

/// base64(HMAC-SHA1(secret, string_to_sign)).
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `Authorization` header value for `req`.
pub fn authorization(access_key_id: &str, secret: &str, req: &Request) -> String {
    format!("OSS {access_key_id}:{}", signature(secret, &string_to_sign(req)))
}

/// Characters escaped in a URL path segment: all but RFC 3986 unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The URL of `key` in `bucket` at `endpoint`, with the sub-resources as its query.
///
/// An IP endpoint (`127.0.0.1:9000`, `[::1]:9000`) is path-style `http://<endpoint>/<bucket>/<key>`
/// (what the Aliyun SDK does for an IP); a host name is virtual-host
/// `https://<bucket>.<endpoint>/<key>` (whether the real store needs https is unconfirmed; the
/// SDK defaults to http, other clients use https). An endpoint that carries a scheme keeps it.
pub fn object_url(endpoint: &str, bucket: &str, key: &str, sub_resources: &[(&str, Option<&str>)]) -> Result<String> {
    let bad = || Error::InvalidResponse(format!("upload endpoint {endpoint:?} is not a host"));
    let (scheme, authority) = match endpoint.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, endpoint),
    };
    let authority = authority.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) || bucket.is_empty() {
        return Err(bad());
    }
    let path: Vec<String> = key.split('/').map(|s| utf8_percent_encode(s, SEGMENT).to_string()).collect();
    let path = path.join("/");
    let base = if is_ip(authority) {
        format!("{}://{authority}/{}/{path}", scheme.unwrap_or("http"), utf8_percent_encode(bucket, SEGMENT))
    } else {
        format!("{}://{bucket}.{authority}/{path}", scheme.unwrap_or("https"))
    };
    let query: Vec<String> = sorted_sub_resources(sub_resources)
        .into_iter()
        .map(|(name, value)| match value {
            Some(v) => format!("{name}={}", utf8_percent_encode(v, SEGMENT)),
            None => name.to_owned(),
        })
        .collect();
    let url = if query.is_empty() { base } else { format!("{base}?{}", query.join("&")) };
    url::Url::parse(&url).map_err(|_| bad())?;
    Ok(url)
}

/// Whether `authority` (host, optional port) names an IP address rather than a host name.
fn is_ip(authority: &str) -> bool {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    host.parse::<std::net::Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Sun, 06 Dec 2026 22:00:00 GMT";

    #[test]
    fn signs_a_part_upload() {
        let req = Request {
            method: "PUT",
            content_md5: "",
            content_type: "application/octet-stream",
            date: DATE,
            oss_headers: &[("x-oss-security-token", "fakeSTS")],
            bucket: "pikpak-upload-fake",
            key: "u/Zx12/VFile01",
            sub_resources: &[("uploadId", Some("U1")), ("partNumber", Some("3"))],
        };
        assert_eq!(
            string_to_sign(&req),
            "PUT\n\napplication/octet-stream\nSun, 06 Dec 2026 22:00:00 GMT\nx-oss-security-token:fakeSTS\n\
             /pikpak-upload-fake/u/Zx12/VFile01?partNumber=3&uploadId=U1"
        );
        // python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(b"fakeSK",
        //   "PUT\n\napplication/octet-stream\nSun, 06 Dec 2026 22:00:00 GMT\nx-oss-security-token:fakeSTS\n/pikpak-upload-fake/u/Zx12/VFile01?partNumber=3&uploadId=U1".encode(),
        //   hashlib.sha1).digest()).decode())'
        assert_eq!(authorization("STS.fakeAK", "fakeSK", &req), "OSS STS.fakeAK:pYekY+pZQz2s+Jra8OhHce/CBzA=");
    }

    #[test]
    fn oss_headers_are_lowercased_and_sorted_and_others_ignored() {
        let req = Request {
            method: "POST",
            content_md5: "",
            content_type: "",
            date: DATE,
            oss_headers: &[("X-OSS-Security-Token", "t"), ("Content-Length", "0"), ("x-oss-meta-a", "1")],
            bucket: "b",
            key: "dir/k",
            sub_resources: &[("uploads", None)],
        };
        assert_eq!(
            string_to_sign(&req),
            "POST\n\n\nSun, 06 Dec 2026 22:00:00 GMT\nx-oss-meta-a:1\nx-oss-security-token:t\n/b/dir/k?uploads"
        );
        // python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(b"sk",
        //   "POST\n\n\nSun, 06 Dec 2026 22:00:00 GMT\nx-oss-meta-a:1\nx-oss-security-token:t\n/b/dir/k?uploads".encode(),
        //   hashlib.sha1).digest()).decode())'
        assert_eq!(signature("sk", &string_to_sign(&req)), "7KpBsGTYDxgIE+3W2Acs9HqdxGA=");
    }

    #[test]
    fn no_sub_resources_no_question_mark() {
        let req = Request {
            method: "PUT",
            content_md5: "",
            content_type: "",
            date: DATE,
            oss_headers: &[],
            bucket: "b",
            key: "k",
            sub_resources: &[],
        };
        assert!(string_to_sign(&req).ends_with("\n/b/k"));
    }

    #[test]
    fn ip_endpoints_are_path_style_host_names_virtual_host() {
        let part = [("uploadId", Some("U 1")), ("partNumber", Some("2"))];
        assert_eq!(
            object_url("127.0.0.1:9000", "bkt", "u/a b/K", &part).unwrap(),
            "http://127.0.0.1:9000/bkt/u/a%20b/K?partNumber=2&uploadId=U%201"
        );
        assert_eq!(
            object_url("[::1]:9000", "bkt", "k", &[("uploads", None)]).unwrap(),
            "http://[::1]:9000/bkt/k?uploads"
        );
        assert_eq!(object_url("10.0.0.1", "bkt", "k", &[]).unwrap(), "http://10.0.0.1/bkt/k");
        assert_eq!(
            object_url("vip-lixian-07.mypikpak.net", "bkt", "u/k", &[]).unwrap(),
            "https://bkt.vip-lixian-07.mypikpak.net/u/k"
        );
        // A scheme given with the endpoint is kept; the addressing still follows the host.
        assert_eq!(object_url("http://oss.example:8080/", "bkt", "k", &[]).unwrap(), "http://bkt.oss.example:8080/k");
        assert_eq!(object_url("https://127.0.0.1:9443", "bkt", "k", &[]).unwrap(), "https://127.0.0.1:9443/bkt/k");
        for bad in ["", "http://", "a/b", "user@host"] {
            assert!(object_url(bad, "bkt", "k", &[]).is_err(), "{bad}");
        }
        assert!(object_url("127.0.0.1:1", "", "k", &[]).is_err());
    }
}
