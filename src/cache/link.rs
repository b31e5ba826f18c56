//! Download links, kept until shortly before they expire.
//!
//! Minting a link costs an API call (PikPak, 123pan) or a signature (123pan_link), and links
//! live for minutes to hours, so every reader of a file shares one. A link is refreshed
//! `margin` before the expiry the driver read from the URL itself (PikPak `expire`, 123
//! `auth_key`), single-flight: a hundred readers of one file cause one refresh. When the CDN
//! refuses a link anyway (clock skew, a provider that revokes early), the reader that saw the
//! refusal invalidates exactly that link, so concurrent readers do not each re-mint.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use lru::LruCache;

use super::{FileKey, KeyedLock};
use crate::error::Result;
use crate::http::Link;

/// Links without a stated expiry are trusted this long: short enough that a provider that
/// silently expires links costs at most one refused request per file in this window.
const UNKNOWN_EXPIRY_LIFETIME: Duration = Duration::from_secs(15 * 60);
const MAX_LINKS: usize = 4096;

pub struct LinkCache {
    margin: Duration,
    links: Mutex<LruCache<FileKey, (Instant, Arc<Link>)>>,
    minting: KeyedLock<FileKey>,
}

impl LinkCache {
    pub fn new(margin: Duration) -> Self {
        LinkCache {
            margin,
            links: Mutex::new(LruCache::new(NonZeroUsize::new(MAX_LINKS).unwrap())),
            minting: KeyedLock::default(),
        }
    }

    fn cached(&self, key: &FileKey) -> Option<Arc<Link>> {
        let mut links = self.links.lock().unwrap();
        match links.get(key) {
            Some((until, link)) if Instant::now() < *until => Some(link.clone()),
            Some(_) => {
                links.pop(key);
                None
            }
            None => None,
        }
    }

    /// The cached link for `key`, or a new one from `mint` (one mint at a time per key).
    pub async fn get<F, Fut>(&self, key: &FileKey, mint: F) -> Result<Arc<Link>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Link>>,
    {
        if let Some(link) = self.cached(key) {
            return Ok(link);
        }
        let _guard = self.minting.lock(key.clone()).await;
        if let Some(link) = self.cached(key) {
            return Ok(link);
        }
        let link = Arc::new(mint().await?);
        let until = self.valid_until(&link);
        tracing::debug!(link = %link.redacted(), valid_for = ?until.saturating_duration_since(Instant::now()), "minted link");
        self.links.lock().unwrap().put(key.clone(), (until, link.clone()));
        Ok(link)
    }

    /// Drop `link` if it is still the cached one for `key` (it was refused by the CDN).
    pub fn invalidate(&self, key: &FileKey, link: &Arc<Link>) {
        let mut links = self.links.lock().unwrap();
        if links.peek(key).is_some_and(|(_, cached)| Arc::ptr_eq(cached, link)) {
            links.pop(key);
        }
    }

    fn valid_until(&self, link: &Link) -> Instant {
        let now = Instant::now();
        let lifetime = match link.expires_at {
            Some(at) => at.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(self.margin),
            None => UNKNOWN_EXPIRY_LIFETIME,
        };
        now + lifetime
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn link(url: &str, expires_in: Option<Duration>) -> Link {
        Link { url: url.into(), headers: vec![], expires_at: expires_in.map(|d| SystemTime::now() + d) }
    }

    #[tokio::test]
    async fn concurrent_misses_mint_once() {
        let cache = Arc::new(LinkCache::new(Duration::from_secs(1)));
        let mints = Arc::new(AtomicUsize::new(0));
        let key = FileKey::for_tests("0:f:v");
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (cache, mints, key) = (cache.clone(), mints.clone(), key.clone());
                tokio::spawn(async move {
                    cache
                        .get(&key, || async {
                            mints.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok(link("http://x/f?sig", Some(Duration::from_secs(600))))
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(mints.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn expiry_minus_margin_and_invalidation() {
        let cache = LinkCache::new(Duration::from_secs(60));
        let key = FileKey::for_tests("0:f:v");
        // Expires within the margin: never reused.
        let a = cache.get(&key, || async { Ok(link("http://x/1", Some(Duration::from_secs(30)))) }).await.unwrap();
        let b = cache.get(&key, || async { Ok(link("http://x/2", Some(Duration::from_secs(3600)))) }).await.unwrap();
        assert_eq!((a.url.as_str(), b.url.as_str()), ("http://x/1", "http://x/2"));
        let c = cache.get(&key, || async { Ok(link("http://x/3", None)) }).await.unwrap();
        assert_eq!(c.url, "http://x/2");
        // Invalidating a link that is no longer the cached one changes nothing.
        cache.invalidate(&key, &a);
        assert_eq!(cache.get(&key, || async { Ok(link("http://x/4", None)) }).await.unwrap().url, "http://x/2");
        cache.invalidate(&key, &b);
        assert_eq!(cache.get(&key, || async { Ok(link("http://x/5", None)) }).await.unwrap().url, "http://x/5");
    }
}
