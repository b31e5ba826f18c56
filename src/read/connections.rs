//! How many ranged requests may run at once: per file (the CDN's limit per link, shared by
//! every handle of the file) and per handle (a reader's streams).
//!
//! PikPak's CDN answers a ninth connection to one URL with 503; 123pan publishes no limit.
//! So the per-file limit starts at the driver's figure and is tolerant: a request refused
//! with 503 or 429 gives its permit up for good (down to one), so a CDN that admits fewer
//! connections than we assumed costs one refusal per connection too many, not one per read.
//!
//! The per-handle limit (8, like rclone's `--vfs-read-chunk-streams 8`) is what lifts a
//! per-connection speed cap eight-fold for one reader; several readers of one file share the
//! file's limit above it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests one handle may have in flight.
pub const READER_STREAMS: usize = 8;

pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    limit: AtomicUsize,
}

impl ConnectionLimit {
    pub fn new(limit: usize) -> Arc<Self> {
        let limit = limit.max(1);
        Arc::new(ConnectionLimit { permits: Arc::new(Semaphore::new(limit)), limit: AtomicUsize::new(limit) })
    }

    /// The limit now (it only ever shrinks).
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        self.permits.clone().acquire_owned().await.expect("the semaphore is never closed")
    }

    /// The server refused a connection: one fewer from now on, unless this is the last one.
    /// Returns whether the limit shrank.
    pub fn refused(&self, permit: OwnedSemaphorePermit) -> bool {
        let shrank = self.limit.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n > 1).then(|| n - 1)).is_ok();
        if shrank {
            permit.forget();
        }
        shrank
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusals_shrink_the_limit_down_to_one() {
        let limit = ConnectionLimit::new(3);
        assert!(limit.refused(limit.acquire().await));
        assert_eq!(limit.limit(), 2);
        let (a, b) = (limit.acquire().await, limit.acquire().await);
        assert_eq!(limit.permits.available_permits(), 0, "two permits in all now");
        assert!(limit.refused(a));
        assert!(!limit.refused(b), "the last connection stays");
        assert_eq!(limit.limit(), 1);
        let _one = limit.acquire().await;
        assert_eq!(limit.permits.available_permits(), 0);
    }
}
