//! HTTP: one shared `reqwest` client (rustls), the retry classifier, and the validated ranged GET.

use std::time::Duration;

/// A connection that sends nothing for this long (no response headers, or a body that
/// stalls) fails as a network error: a download then resumes where it stopped, an API call is
/// retried like any transient failure. Long enough for a slow API answer, short enough that a
/// stalled CDN costs a player one pause, not a hang (tests/README.md, "stalled body").
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Connecting (DNS and TCP) may take this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The one HTTP client of the process (a connection pool shared by every storage).
#[derive(Clone)]
pub struct HttpClient {
    pub inner: reqwest::Client,
}

/// The proxy schemes reqwest (with its `socks` feature) connects through.
pub const PROXY_SCHEMES: [&str; 6] = ["http", "https", "socks4", "socks4a", "socks5", "socks5h"];

/// reqwest reads `host:port` without a scheme as an http proxy and accepts an unknown scheme
/// without ever using it, so a typo would silently send the traffic direct: refuse both.
fn check_proxy_scheme(proxy: &str) -> crate::error::Result<()> {
    let scheme = url::Url::parse(proxy).ok().map(|u| u.scheme().to_owned());
    match scheme {
        Some(s) if PROXY_SCHEMES.contains(&s.as_str()) => Ok(()),
        _ => Err(crate::error::Error::internal(format!(
            "proxy: expected a URL with scheme {} (e.g. socks5h://127.0.0.1:1080)",
            PROXY_SCHEMES.join(", ")
        ))),
    }
}

impl HttpClient {
    pub fn new(proxy: Option<&str>) -> crate::error::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("panmount/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(proxy) = proxy {
            check_proxy_scheme(proxy)?;
            let proxy = reqwest::Proxy::all(proxy)
                .map_err(|e| crate::error::Error::internal(format!("proxy: {e}")))?;
            builder = builder.proxy(proxy);
        }
        Ok(HttpClient { inner: builder.build()? })
    }
}

/// A URL without its query string or fragment, safe to log (signatures live in the query).
pub fn redact_url(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    if end < url.len() {
        format!("{}?…", &url[..end])
    } else {
        url.to_string()
    }
}

pub mod limit;
pub mod range;
pub mod retry;

#[cfg(test)]
mod proxy_tests {
    use super::*;

    #[test]
    fn proxies_need_a_scheme_reqwest_uses() {
        for ok in ["http://p:3128", "https://u:pw@p", "socks5h://127.0.0.1:1080", "socks4a://p:1"] {
            assert!(HttpClient::new(Some(ok)).is_ok(), "{ok}");
        }
        for bad in ["p:3128", "ftp://p:1", "socks://p", ""] {
            assert!(HttpClient::new(Some(bad)).is_err(), "{bad}");
        }
    }
}
