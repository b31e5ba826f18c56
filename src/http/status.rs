//! The one HTTP rule: what a status means, decided before anyone reads the body.
//!
//! - 429 and every 5xx are transient whatever the body says: a proxy's HTML page, `{}`, or a
//!   provider's own JSON envelope (`{"code":503}`) all mean "try again later", never data and
//!   never a final error. The server's `Retry-After` (seconds or an HTTP-date) rides along; a
//!   5xx that names one is treated as a rate limit, since the server said when to come back.
//! - Any other status outside 2xx is never data. A driver may still read an error envelope
//!   out of it (123pan's code 401 drives its re-login), but never a success.
//!
//! API clients, the 123pan link hop and the ranged GET all start here, so a 503 means the same
//! thing on every path (issue 12: a 503 with a JSON body used to fail at once on one path and be
//! retried on another, and a 5xx `{}` was read as an empty folder).

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::error::Error;

/// The error a 429 or 5xx stands for, whatever its body; `None` for any other status.
pub fn transient(status: u16, headers: &HeaderMap) -> Option<Error> {
    let retry_after = retry_after(headers, SystemTime::now());
    match status {
        429 => Some(Error::RateLimited { status, retry_after }),
        500..=599 if retry_after.is_some() => Some(Error::RateLimited { status, retry_after }),
        500..=599 => Some(Error::ServerError { status }),
        _ => None,
    }
}

/// Whether the body of an answer with this status may be read as data.
pub fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// `Retry-After` as a wait from `now`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). A date
/// in the past is no wait; anything unreadable is ignored.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(retry_after: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = retry_after {
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after(&headers(Some("120")), now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&headers(Some(" 7 ")), now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers(Some("Sun, 06 Nov 1994 08:50:07 GMT")), now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(&headers(Some("Sun, 06 Nov 1994 08:00:00 GMT")), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(Some("soon")), now), None);
        assert_eq!(retry_after(&headers(Some("-1")), now), None);
        assert_eq!(retry_after(&headers(None), now), None);
    }

    #[test]
    fn status_comes_before_body() {
        let none = headers(None);
        assert!(matches!(transient(503, &none), Some(Error::ServerError { status: 503 })));
        assert!(matches!(transient(500, &none), Some(Error::ServerError { status: 500 })));
        assert!(matches!(transient(429, &none), Some(Error::RateLimited { status: 429, retry_after: None })));
        let later = headers(Some("3"));
        let after = Some(Duration::from_secs(3));
        assert!(matches!(transient(429, &later), Some(Error::RateLimited { retry_after, .. }) if retry_after == after));
        assert!(
            matches!(transient(503, &later), Some(Error::RateLimited { status: 503, retry_after }) if retry_after == after)
        );
        for status in [200, 206, 302, 400, 401, 403, 404, 410] {
            assert!(transient(status, &later).is_none(), "{status}");
        }
        assert!(is_success(200) && is_success(210) && !is_success(302) && !is_success(404) && !is_success(503));
    }
}
