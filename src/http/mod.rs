//! HTTP: one shared `reqwest` client (rustls), what a status means ([`status`]), the retry
//! classifier and runner ([`retry`]), renew-once values ([`renew`]), per-endpoint rate limits
//! ([`limit`]), the validated ranged GET ([`range`]), and object-store request signing ([`oss`]).

use std::time::Duration;

pub use link::Link;

/// A connection that sends nothing for this long (no response headers, or a body that
/// stalls) fails as a network error: a download then resumes where it stopped, an API call is
/// retried like any transient failure. Long enough for a slow API answer, short enough that a
/// stalled CDN costs a player one pause, not a hang (tests/README.md, "stalled body").
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// [`READ_TIMEOUT`] for object-store uploads: a store answers a PUT only once the whole body
/// arrived, which on a slow uplink (PikPak users report 100 KB/s) takes minutes for a part.
pub const UPLOAD_READ_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Connecting (DNS and TCP) may take this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The one HTTP client of the process (a connection pool shared by every storage).
#[derive(Clone)]
pub struct HttpClient {
    pub inner: reqwest::Client,
    /// The same settings, with [`UPLOAD_READ_TIMEOUT`]: for request bodies of file bytes.
    pub upload: reqwest::Client,
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
        if let Some(proxy) = proxy {
            check_proxy_scheme(proxy)?;
        }
        let build = |read_timeout| -> crate::error::Result<reqwest::Client> {
            let mut builder = reqwest::Client::builder()
                .user_agent(concat!("panmount/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(read_timeout)
                .pool_idle_timeout(Duration::from_secs(60));
            if let Some(proxy) = proxy {
                let proxy =
                    reqwest::Proxy::all(proxy).map_err(|e| crate::error::Error::internal(format!("proxy: {e}")))?;
                builder = builder.proxy(proxy);
            }
            Ok(builder.build()?)
        };
        Ok(HttpClient { inner: build(READ_TIMEOUT)?, upload: build(UPLOAD_READ_TIMEOUT)? })
    }
}

/// The most bytes an API answer (JSON, never file bytes) may have. A page of 100 entries is
/// well under 1 MiB; a server that sends more is broken, and must not fill memory.
pub const MAX_API_BODY: usize = 16 << 20;

/// The body of an API answer, refused past [`MAX_API_BODY`] (whether announced or not).
pub async fn api_body(mut response: reqwest::Response) -> crate::error::Result<Vec<u8>> {
    let too_large =
        || crate::error::Error::InvalidResponse(format!("an API answer larger than {} MiB", MAX_API_BODY >> 20));
    if response.content_length().is_some_and(|n| n > MAX_API_BODY as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_API_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Bytes read from a staging file per upload body chunk: small enough to keep every part in
/// flight without holding them in memory.
const FILE_BODY_CHUNK: usize = 256 << 10;

/// `len` bytes of the file at `path` from `offset`, as a request body read in chunks as it is
/// sent (an upload's object or part, from its staging file).
pub async fn file_body(path: &std::path::Path, offset: u64, len: u64) -> crate::error::Result<reqwest::Body> {
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let staging = |e: std::io::Error| crate::error::Error::internal(format!("staging file: {e}"));
    let mut file = tokio::fs::File::open(path).await.map_err(staging)?;
    file.seek(std::io::SeekFrom::Start(offset)).await.map_err(staging)?;
    let chunks = futures_util::stream::unfold((file.take(len), len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let n = FILE_BODY_CHUNK.min(left as usize);
        let mut buf = vec![0; n];
        match file.read_exact(&mut buf).await {
            Ok(_) => Some((Ok(bytes::Bytes::from(buf)), (file, left - n as u64))),
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok(reqwest::Body::wrap_stream(chunks.boxed()))
}

/// A URL without its query string or fragment, safe to log (signatures live in the query).
pub fn redact_url(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    if end < url.len() { format!("{}?…", &url[..end]) } else { url.to_string() }
}

pub mod limit;
mod link;
pub mod oss;
pub mod range;
pub mod renew;
pub mod retry;
pub mod status;

#[cfg(test)]
mod body_tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One HTTP answer of `len` bytes from a loopback server, announced or chunked.
    async fn answer(len: usize, announced: bool) -> crate::error::Result<Vec<u8>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let head = if announced {
                format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n")
            } else {
                "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_string()
            };
            let _ = s.write_all(head.as_bytes()).await;
            let chunk = vec![b' '; 1 << 20];
            let mut left = len;
            while left > 0 {
                let n = left.min(chunk.len());
                if s.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
        });
        let response = reqwest::get(format!("http://{addr}/")).await.unwrap();
        super::api_body(response).await
    }

    #[tokio::test]
    async fn api_answers_are_bounded() {
        assert_eq!(answer(1000, true).await.unwrap().len(), 1000);
        assert_eq!(answer(1000, false).await.unwrap().len(), 1000);
        for announced in [true, false] {
            let err = answer(super::MAX_API_BODY + 1, announced).await.unwrap_err();
            assert!(err.to_string().contains("larger than 16 MiB"), "{err}");
        }
    }
}

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
