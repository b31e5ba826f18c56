//! A download link: where a file's bytes are, as a driver minted it. An HTTP type (the range
//! reader and the link cache use it; drivers only make it), so `http` needs nothing of
//! `drivers`.

use std::time::SystemTime;

/// Where to fetch a file's bytes. The URL is a secret (it carries a signature or a token):
/// it must never be logged; use [`Link::redacted`] in messages.
#[derive(Clone)]
pub struct Link {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// When the provider stops honouring the URL, if known. The link cache subtracts a margin.
    pub expires_at: Option<SystemTime>,
}

impl Link {
    /// The URL without its query string, for logs.
    pub fn redacted(&self) -> String {
        super::redact_url(&self.url)
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("url", &self.redacted())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
