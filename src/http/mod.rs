//! HTTP: one shared `reqwest` client (rustls), the retry classifier, and the validated ranged GET.

use std::time::Duration;

/// The one HTTP client of the process (a connection pool shared by every storage).
#[derive(Clone)]
pub struct HttpClient {
    pub inner: reqwest::Client,
}

impl HttpClient {
    pub fn new(proxy: Option<&str>) -> crate::error::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("panmount/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(proxy) = proxy {
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
