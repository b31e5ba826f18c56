//! The validated ranged GET: the only way file bytes enter panmount.
//!
//! A response is accepted only when it proves it carries exactly the bytes asked for: status
//! 206 with a `Content-Range` whose start, end and total match the request and the size we show
//! (or 200 with the whole file when the whole file was asked for). The body is counted: more
//! bytes than promised is an error, fewer is reported as a cut body so the caller resumes from
//! where it stopped. Nothing here retries; `crate::read::fetch` decides that.

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header;

use super::HttpClient;
use super::Link;
use crate::error::{Error, Result};

/// The body of an accepted range response, handed out as it arrives.
pub struct RangeBody {
    response: reqwest::Response,
    remaining: u64,
}

impl RangeBody {
    /// The next piece of the body, `None` once every promised byte has arrived. A body that
    /// ends early is an `Error::Network`, so the caller can resume at its current offset.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        match self.response.chunk().await? {
            Some(chunk) if chunk.len() as u64 > self.remaining => Err(Error::InvalidResponse(format!(
                "body longer than its Content-Range by {} bytes",
                chunk.len() as u64 - self.remaining
            ))),
            Some(chunk) => {
                self.remaining -= chunk.len() as u64;
                Ok(Some(chunk))
            }
            None => Err(Error::Network(format!("body ended {} bytes early", self.remaining))),
        }
    }
}

/// GET bytes `start..=end` of `link`. `total` is the file size we show to users.
pub async fn get_range(http: &HttpClient, link: &Link, start: u64, end: u64, total: u64) -> Result<RangeBody> {
    debug_assert!(start <= end && end < total);
    let mut request = http.inner.get(&link.url).header(header::RANGE, format!("bytes={start}-{end}"));
    for (name, value) in &link.headers {
        request = request.header(name, value);
    }
    let response = request.send().await?;
    check_status(&response)?;
    let want = end - start + 1;
    match response.status() {
        StatusCode::PARTIAL_CONTENT => {
            let got = content_range(&response)?;
            if got != (start, end, Some(total)) {
                return Err(Error::InvalidResponse(format!(
                    "asked for bytes {start}-{end}/{total}, got Content-Range {}",
                    describe(got)
                )));
            }
        }
        // A server that ignores Range sends the whole file: usable only when that is what we
        // asked for, and only if its length is the size we show.
        StatusCode::OK if start == 0 && want == total && response.content_length() == Some(total) => {}
        StatusCode::OK => {
            return Err(Error::InvalidResponse("the server ignored the Range header (HTTP 200)".into()));
        }
        status => return Err(Error::InvalidResponse(format!("unexpected HTTP {status} to a range request"))),
    }
    if let Some(len) = response.content_length() {
        if len != want {
            return Err(Error::InvalidResponse(format!("Content-Length {len} for a {want}-byte range")));
        }
    }
    Ok(RangeBody { response, remaining: want })
}

/// The largest size a file can have in a mount (the kernel's `loff_t` is signed).
const MAX_SIZE: u64 = i64::MAX as u64;

/// Learn a file's size from the server with a one-byte range request (`HEAD` is not always
/// allowed on signed URLs, and a 206 names the total in its `Content-Range`).
pub async fn probe_size(http: &HttpClient, link: &Link) -> Result<u64> {
    let mut request = http.inner.get(&link.url).header(header::RANGE, "bytes=0-0");
    for (name, value) in &link.headers {
        request = request.header(name, value);
    }
    let response = request.send().await?;
    if response.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        // Only an empty file cannot satisfy byte 0; its Content-Range says `bytes */0`.
        return match content_range(&response)? {
            (_, _, Some(0)) => Ok(0),
            other => Err(Error::InvalidResponse(format!("416 with Content-Range {}", describe(other)))),
        };
    }
    check_status(&response)?;
    match response.status() {
        StatusCode::PARTIAL_CONTENT => match content_range(&response)? {
            (0, 0, Some(total)) if total <= MAX_SIZE => Ok(total),
            other => Err(Error::InvalidResponse(format!("size probe got Content-Range {}", describe(other)))),
        },
        StatusCode::OK => match response.content_length() {
            Some(len) if len <= MAX_SIZE => Ok(len),
            Some(len) => Err(Error::InvalidResponse(format!(
                "size probe: Content-Length {len} is past what a file system can show"
            ))),
            None => Err(Error::InvalidResponse("size probe: no Content-Length".into())),
        },
        status => Err(Error::InvalidResponse(format!("size probe: unexpected HTTP {status}"))),
    }
}

/// Map the statuses every download shares: throttling and server errors (`http::status`),
/// refused links.
fn check_status(response: &reqwest::Response) -> Result<()> {
    let status = response.status().as_u16();
    if let Some(err) = super::status::transient(status, response.headers()) {
        return Err(err);
    }
    match status {
        200..=299 => Ok(()),
        401 | 403 | 410 => Err(Error::LinkRefused { status }),
        404 => Err(Error::Remote("the download link answered 404: the file is gone".into())),
        _ => Err(Error::Remote(format!("the download link answered HTTP {status}"))),
    }
}

/// `Content-Range: bytes START-END/TOTAL` (or `bytes */TOTAL`, given as (1, 0, total)).
fn content_range(response: &reqwest::Response) -> Result<(u64, u64, Option<u64>)> {
    let value = response
        .headers()
        .get(header::CONTENT_RANGE)
        .ok_or_else(|| Error::InvalidResponse("no Content-Range header".into()))?;
    let text = value.to_str().map_err(|_| Error::InvalidResponse("unreadable Content-Range".into()))?;
    parse_content_range(text).ok_or_else(|| Error::InvalidResponse(format!("malformed Content-Range {text:?}")))
}

pub(crate) fn parse_content_range(text: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = text.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if range.trim() == "*" {
        return Some((1, 0, total));
    }
    let (start, end) = range.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    // RFC 9110 §14.4: a range past the total (`bytes 0-0/0`) is invalid, not a size.
    (start <= end && total.is_none_or(|t| end < t)).then_some((start, end, total))
}

fn describe((start, end, total): (u64, u64, Option<u64>)) -> String {
    let total = total.map_or("*".to_string(), |t| t.to_string());
    if start > end { format!("*/{total}") } else { format!("{start}-{end}/{total}") }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{describe, parse_content_range};

    #[test]
    fn content_range_forms() {
        assert_eq!(parse_content_range("bytes 0-0/10"), Some((0, 0, Some(10))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(parse_content_range("bytes */0"), Some((1, 0, Some(0))));
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes 0-x/2"), None);
        assert_eq!(parse_content_range("bytes 0-0/0"), None);
        assert_eq!(parse_content_range("bytes 5-10/10"), None);
        assert_eq!(parse_content_range("bytes 0-18446744073709551615/*"), Some((0, u64::MAX, None)));
        assert_eq!(parse_content_range("bytes 0-1/18446744073709551616"), None);
        assert_eq!(parse_content_range("bytes -1-5/10"), None);
    }

    // The fuzz target of `Content-Range` (see `crate::fuzz`).
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz::cases(2000)))]

        #[test]
        fn fuzz_content_range_text(text in prop_oneof![
            any::<String>(),
            "bytes ?[ 0-9*/-]{0,30}",
            "bytes [0-9]{1,21}-[0-9]{1,21}/([0-9]{1,21}|\\*)",
        ]) {
            if let Some((start, end, total)) = parse_content_range(&text) {
                prop_assert!(start <= end || (start, end) == (1, 0), "{text}");
                prop_assert!(start > end || total.is_none_or(|t| end < t), "{text}");
                prop_assert_eq!(parse_content_range(&format!("bytes {}", describe((start, end, total)))), Some((start, end, total)));
            }
        }

        #[test]
        fn fuzz_content_range_valid_forms_parse(start in any::<u64>(), len in any::<u64>(), extra in any::<u64>(), known in any::<bool>()) {
            let end = start.saturating_add(len);
            let total = end.checked_add(1).and_then(|t| t.checked_add(extra)).filter(|_| known);
            let text = format!("bytes {start}-{end}/{}", total.map_or("*".into(), |t| t.to_string()));
            prop_assert_eq!(parse_content_range(&text), Some((start, end, total)));
        }
    }
}
