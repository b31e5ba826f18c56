//! The object store an upload's bytes go to (pikpak-protocol.md §8.7 step 2): OSS V1 requests
//! signed with the temporary credentials of one upload init (`crate::http::oss`).
//!
//! Each PUT (an object, a part) is retried on its own with back-off after a 5xx, a 429, a
//! reset, or a 403 `SignatureDoesNotMatch` (a store that refused a good signature once accepts
//! it again; the clocks may also disagree for a moment); a POST (initiate, complete) only after
//! a 429, since it may have been carried out. Credentials that expired or that the store
//! no longer knows end the upload attempt ([`StoreError::expired`]): the caller starts over with
//! a new init, since the service has no endpoint to renew them.
//!
//! Nothing here logs a secret: the debug lines name the method, the sub-resource, a part number
//! and sizes, never the URL (it names the bucket and key), the token or the signature.

use std::path::Path;
use std::time::SystemTime;

use reqwest::Method;

use super::api::UploadParams;
use super::links;
use crate::error::{Error, Result};
use crate::http::retry::{Policy, retry};
use crate::http::{HttpClient, oss, status};

/// Tries of one store request after the first (the Aliyun SDK in OpenList tries a part 3 times).
const REQUEST_RETRIES: u32 = 4;
/// The OSS codes that mean the credentials are spent or unknown: start over with a new init.
const CREDENTIAL_CODES: [&str; 3] = ["SecurityTokenExpired", "InvalidSecurityToken", "InvalidAccessKeyId"];

/// A failed store request: the error, and whether new credentials are needed.
#[derive(Debug, Clone)]
pub(super) struct StoreError {
    pub error: Error,
    pub expired: bool,
}

impl AsRef<Error> for StoreError {
    fn as_ref(&self) -> &Error {
        &self.error
    }
}

impl From<Error> for StoreError {
    fn from(error: Error) -> Self {
        StoreError { error, expired: false }
    }
}

fn expired() -> StoreError {
    StoreError { error: Error::Remote("the upload credentials expired".into()), expired: true }
}

/// What a request sends: bytes in memory, or a range of the staging file.
#[derive(Clone, Copy)]
pub(super) enum Body<'a> {
    Empty,
    Xml(&'a str),
    File { path: &'a Path, offset: u64, len: u64 },
}

/// The text of the first `<tag>` element in `xml` (the store's answers are small and flat).
pub(super) fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// The answer to a failed request as an error: transient (retried), credentials spent, or final.
fn refusal(status: u16, headers: &reqwest::header::HeaderMap, body: &str) -> StoreError {
    let code = xml_text(body, "Code").unwrap_or("");
    if CREDENTIAL_CODES.contains(&code) {
        return expired();
    }
    if let Some(error) = status::transient(status, headers) {
        return error.into();
    }
    if status == 403 && code == "SignatureDoesNotMatch" {
        // Transient by our reading: the same request signed again may pass.
        return Error::ServerError { status }.into();
    }
    Error::Remote(format!("the object store refused the upload: HTTP {status} {code}")).into()
}

/// One upload's credentials and where they point.
pub(super) struct Store<'a> {
    pub http: &'a HttpClient,
    pub params: &'a UploadParams,
}

impl Store<'_> {
    /// Whether the credentials' `expiration` has passed (unknown or unreadable: not yet).
    fn expired(&self) -> bool {
        links::rfc3339(&self.params.expiration).is_some_and(|at| links::to_system_time(at) <= SystemTime::now())
    }

    /// One signed request, retried as the module docs say; the answer's headers and body.
    pub async fn send(
        &self,
        method: Method,
        sub_resources: &[(&str, Option<&str>)],
        body: Body<'_>,
    ) -> Result<(reqwest::header::HeaderMap, String), StoreError> {
        let what = sub_resources.first().map_or("object", |(name, _)| *name);
        // A PUT of an object or a part replaces what its key or part number holds: sending it
        // again is harmless. A POST starts or completes a multipart upload: not sent again
        // after a failure that may have come after the store acted (the attempt fails and the
        // upload starts over instead).
        let policy = if method == Method::POST {
            Policy::write(what, REQUEST_RETRIES)
        } else {
            Policy::read(what, REQUEST_RETRIES)
        };
        retry(&policy, || self.send_once(method.clone(), sub_resources, body)).await
    }

    async fn send_once(
        &self,
        method: Method,
        sub_resources: &[(&str, Option<&str>)],
        body: Body<'_>,
    ) -> Result<(reqwest::header::HeaderMap, String), StoreError> {
        if self.expired() {
            return Err(expired());
        }
        let p = self.params;
        let url = oss::object_url(&p.endpoint, &p.bucket, &p.key, sub_resources)?;
        let content_type = match body {
            Body::Empty => "",
            Body::Xml(_) => "application/xml",
            Body::File { .. } => "application/octet-stream",
        };
        let date = httpdate::fmt_http_date(SystemTime::now());
        let token = [("x-oss-security-token", p.security_token.as_str())];
        let req = oss::Request {
            method: method.as_str(),
            content_md5: "",
            content_type,
            date: &date,
            oss_headers: &token,
            bucket: &p.bucket,
            key: &p.key,
            sub_resources,
        };
        let authorization = oss::authorization(&p.access_key_id, &p.access_key_secret, &req);
        let mut builder = self
            .http
            .upload
            .request(method.clone(), &url)
            .header("Date", &date)
            .header("x-oss-security-token", &p.security_token)
            .header("Authorization", authorization);
        if !content_type.is_empty() {
            builder = builder.header("Content-Type", content_type);
        }
        builder = match body {
            Body::Empty => builder.header("Content-Length", "0"),
            Body::Xml(xml) => builder.body(xml.to_owned()),
            Body::File { path, offset, len } => {
                builder.header("Content-Length", len.to_string()).body(crate::http::file_body(path, offset, len).await?)
            }
        };
        tracing::trace!(method = %method, what = ?sub_resources.iter().map(|(n, _)| *n).collect::<Vec<_>>(), "object store request");
        let response = builder.send().await.map_err(Error::from)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        // The status first: a refusal whose body cannot be read is still what its status says.
        let body = crate::http::api_body(response).await;
        if status::is_success(status) {
            return Ok((headers, String::from_utf8_lossy(&body?).into_owned()));
        }
        let text = body.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        let err = refusal(status, &headers, &text);
        tracing::debug!(method = %method, status, code = xml_text(&text, "Code").unwrap_or(""), "object store refused");
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    fn error(code: &str) -> String {
        format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
    }

    #[test]
    fn refusals_are_sorted_into_retry_renew_and_final() {
        let none = HeaderMap::new();
        for code in CREDENTIAL_CODES {
            assert!(refusal(403, &none, &error(code)).expired, "{code}");
        }
        let e = refusal(403, &none, &error("SignatureDoesNotMatch"));
        assert!(!e.expired && e.error.is_transient());
        for status in [500, 503, 429] {
            let e = refusal(status, &none, "<html>");
            assert!(!e.expired && e.error.is_transient(), "{status}");
        }
        let e = refusal(400, &none, &error("InvalidPart"));
        assert!(!e.expired && !e.error.is_transient());
        assert!(e.error.to_string().contains("InvalidPart"));
        let e = refusal(403, &none, &error("AccessDenied"));
        assert!(!e.expired && !e.error.is_transient());
    }

    #[test]
    fn xml_fields() {
        let init = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>U1</UploadId></InitiateMultipartUploadResult>";
        assert_eq!(xml_text(init, "UploadId"), Some("U1"));
        assert_eq!(xml_text(init, "Missing"), None);
        assert_eq!(xml_text("<Code>", "Code"), None);
    }

    #[test]
    fn expiry_is_read_from_the_credentials() {
        let http = HttpClient::new(None).unwrap();
        let mut params = UploadParams { expiration: "2000-01-01T00:00:00.000+08:00".into(), ..Default::default() };
        assert!(Store { http: &http, params: &params }.expired());
        params.expiration = "2999-01-01T00:00:00Z".into();
        assert!(!Store { http: &http, params: &params }.expired());
        params.expiration = String::new();
        assert!(!Store { http: &http, params: &params }.expired());
    }
}
