//! From a `DownloadUrl` to the CDN URL (pan123-protocol.md §2.5 steps 3-5), shared by
//! `123pan` and `123pan_share`.
//!
//! Since 2022 `download_info` answers a redirect page, `https://web-pro.<domain>/download/?
//! params=<base64 of the real URL>`. We decode `params` (standard alphabet; padding and a `+`
//! turned into a space by form decoding are tolerated, §7), GET the decoded URL without
//! following redirects, and take
//! - `Location` of a redirect (any 3xx; OpenList only looks at 302, and a relative location is
//!   resolved against the hop URL rather than dropped),
//! - `data.redirect_url` of a JSON 2xx (200, or the 210 seen in 2025),
//! - the decoded URL itself for any other status but 429/5xx, which are retried
//!   (`http::status`: whatever the body, `Retry-After` honoured).
//!
//! The link carries `Referer: <scheme>://<host>/` of the original `DownloadUrl`, as OpenList
//! does (AList uses the constant web origin; the simulator checks the OpenList form).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use reqwest::header::{self, HeaderMap};

use super::api::Redirect;
use super::client::{WEB_ORIGIN, decode_envelope};
use crate::error::{Error, Result};
use crate::http::retry::{Policy, retry};
use crate::http::status;

const RETRY: Policy<'static> = Policy::read("123pan download hop", 4);

/// The URL to GET for the second hop: `params` decoded, or `download_url` itself.
pub fn hop_url(download_url: &str) -> Result<String> {
    let url = url::Url::parse(download_url)
        .map_err(|e| Error::InvalidResponse(format!("123pan DownloadUrl is not a URL: {e}")))?;
    let Some((_, params)) = url.query_pairs().find(|(k, v)| k == "params" && !v.is_empty()) else {
        return Ok(download_url.to_string());
    };
    // Form decoding turns an unescaped `+` into a space; base64 has no spaces.
    let b64 = params.replace(' ', "+");
    let bytes = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(b64.trim()).ok())
        .ok_or_else(|| Error::InvalidResponse("123pan DownloadUrl: `params` is not base64".into()))?;
    let decoded = String::from_utf8(bytes)
        .map_err(|_| Error::InvalidResponse("123pan DownloadUrl: `params` is not UTF-8".into()))?;
    url::Url::parse(&decoded)
        .map_err(|_| Error::InvalidResponse("123pan DownloadUrl: `params` is not a URL".into()))?;
    Ok(decoded)
}

/// `<scheme>://<host[:port]>/` of `download_url`: the Referer the CDN expects.
pub fn referer_for(download_url: &str) -> String {
    match url::Url::parse(download_url) {
        Ok(u) if u.host_str().is_some() => format!("{}/", u.origin().ascii_serialization()),
        _ => format!("{WEB_ORIGIN}/"),
    }
}

/// The final URL from the hop's answer (pure: status, headers, body).
pub fn final_url(hop: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> Result<String> {
    if let Some(err) = status::transient(status, headers) {
        return Err(err);
    }
    match status {
        300..=399 => {
            let location = headers.get(header::LOCATION).and_then(|v| v.to_str().ok());
            let location = location.ok_or_else(|| {
                Error::InvalidResponse(format!("123pan download hop answered HTTP {status} without Location"))
            })?;
            let base = url::Url::parse(hop).map_err(|e| Error::internal(format!("hop url: {e}")))?;
            base.join(location)
                .map(String::from)
                .map_err(|_| Error::InvalidResponse("123pan download hop: unusable Location".into()))
        }
        200..=299 => {
            let data = decode_envelope(status, headers, body, 0)?.map_err(|e| super::client::classify(&e))?;
            let redirect: Redirect = crate::drivers::decode("123pan download hop", data)?;
            if redirect.redirect_url.is_empty() {
                return Err(Error::InvalidResponse("123pan download hop answered no redirect_url".into()));
            }
            Ok(redirect.redirect_url)
        }
        _ => Ok(hop.to_string()),
    }
}

/// Resolve `download_url` to `(final URL, Referer)`. `http` must not follow redirects.
pub async fn resolve(http: &reqwest::Client, download_url: &str) -> Result<(String, String)> {
    if download_url.is_empty() {
        return Err(Error::Remote(
            "123pan gave no download URL (large share files may need access_token or the sharer's traffic)".into(),
        ));
    }
    let hop = hop_url(download_url)?;
    let referer = referer_for(download_url);
    let hop = &hop;
    let url = retry(&RETRY, || async move {
        let response = http.get(hop).header(header::REFERER, format!("{WEB_ORIGIN}/")).send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = crate::http::api_body(response).await?;
        final_url(hop, status, &headers, &body)
    })
    .await?;
    Ok((url, referer))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = "https://download-cdn.example-123.test/123-846/1c1c6ba5/1814435971-0/b6d81b360a5672d80c27430f39153e2c?v=5&t=1750086400&s=abc&filename=a.mp4";

    #[test]
    fn params_are_decoded_from_the_reference_example() {
        let url = "https://web-pro.example-123.test/download/?params=aHR0cHM6Ly9kb3dubG9hZC1jZG4uZXhhbXBsZS0xMjMudGVzdC8xMjMtODQ2LzFjMWM2YmE1LzE4MTQ0MzU5NzEtMC9iNmQ4MWIzNjBhNTY3MmQ4MGMyNzQzMGYzOTE1M2UyYz92PTUmdD0xNzUwMDg2NDAwJnM9YWJjJmZpbGVuYW1lPWEubXA0&is_s3=0";
        assert_eq!(hop_url(url).unwrap(), REAL);
        assert_eq!(referer_for(url), "https://web-pro.example-123.test/");
    }

    #[test]
    fn escaped_unescaped_and_missing_params() {
        let b64 = STANDARD.encode("https://h.test/x?a=1&b=ü~~>");
        assert!(b64.contains('+') || b64.contains('/') || b64.contains('='));
        let escaped: String = url::form_urlencoded::byte_serialize(b64.as_bytes()).collect();
        assert_eq!(hop_url(&format!("https://w.test/d/?params={escaped}")).unwrap(), "https://h.test/x?a=1&b=ü~~>");
        // A literal `+` (read back as a space by form decoding) still works.
        assert_eq!(hop_url(&format!("https://w.test/d/?params={b64}")).unwrap(), "https://h.test/x?a=1&b=ü~~>");
        assert_eq!(hop_url("https://cdn.test/f?x=1").unwrap(), "https://cdn.test/f?x=1");
        assert!(hop_url("https://w.test/d/?params=%%%%").is_err());
        assert_eq!(referer_for("http://127.0.0.1:8080/download/?params=x"), "http://127.0.0.1:8080/");
    }

    fn final_url(hop: &str, status: u16, location: Option<&str>, body: &[u8]) -> Result<String> {
        let mut headers = HeaderMap::new();
        if let Some(location) = location {
            headers.insert(header::LOCATION, location.parse().unwrap());
        }
        super::final_url(hop, status, &headers, body)
    }

    #[test]
    fn hop_answers() {
        let hop = "https://hop.test/a/b";
        assert_eq!(final_url(hop, 302, Some("https://cdn.test/f?s=1"), b"").unwrap(), "https://cdn.test/f?s=1");
        assert_eq!(final_url(hop, 307, Some("/f"), b"").unwrap(), "https://hop.test/f");
        assert!(final_url(hop, 302, None, b"").is_err());
        let json = br#"{"code":0,"message":"ok","data":{"redirect_url":"https://cdn.test/g"}}"#;
        assert_eq!(final_url(hop, 200, None, json).unwrap(), "https://cdn.test/g");
        assert_eq!(final_url(hop, 210, None, json).unwrap(), "https://cdn.test/g");
        assert!(final_url(hop, 200, None, br#"{"code":0,"data":{}}"#).is_err());
        assert!(final_url(hop, 200, None, br#"{"code":5113,"message":"x","data":null}"#).is_err());
        assert!(final_url(hop, 503, None, b"").unwrap_err().is_transient());
        assert!(final_url(hop, 503, None, json).unwrap_err().is_transient());
        assert_eq!(final_url(hop, 404, None, b"").unwrap(), hop);
    }
}
