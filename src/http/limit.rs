//! Per-endpoint request spacing, declared next to the endpoint that needs it.
//!
//! Providers throttle some endpoints hard (123pan's file list: about one call per 700 ms per
//! endpoint, measured by OpenList's maintainers and the official client). Spacing our own
//! calls costs less than being answered 429 and backing off. Calls queue in arrival order; a
//! caller waits only for its own slot.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(interval: Duration) -> Self {
        RateLimiter { interval, next: Mutex::new(None) }
    }

    /// Wait until this caller may send its request.
    pub async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap();
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_in_arrival_order() {
        let limiter = std::sync::Arc::new(RateLimiter::new(Duration::from_millis(700)));
        let start = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let l = limiter.clone();
                tokio::spawn(async move {
                    l.wait().await;
                    Instant::now()
                })
            })
            .collect();
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap() - start);
        }
        times.sort();
        assert_eq!(times, [0, 700, 1400, 2100].map(Duration::from_millis));
    }
}
