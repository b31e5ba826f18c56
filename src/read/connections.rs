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
//!
//! A handle's permits go to its earliest part first, not first come: when read-ahead asks
//! for more parts than there are connections, a freed connection serves the waiting part the
//! reader will reach first. In arrival order, a part far ahead could take it while the reader
//! waits for the bytes just ahead of it, idling the connections whose parts it cannot consume
//! yet. The file's permits go first come, so that no handle of it starves another.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Requests one handle may have in flight.
pub const READER_STREAMS: usize = 8;

/// A limit of requests in flight, handed out nearest first, that may shrink.
pub struct ConnectionLimit {
    queue: Mutex<Queue>,
}

struct Queue {
    free: usize,
    limit: usize,
    /// Waiters by (priority, arrival): the first gets the next permit.
    waiters: BTreeMap<(u64, u64), oneshot::Sender<Permit>>,
    arrivals: u64,
}

/// One request's right to run; dropping it hands it to the nearest waiter.
pub struct Permit {
    limit: Arc<ConnectionLimit>,
    live: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.live {
            self.limit.release();
        }
    }
}

impl ConnectionLimit {
    pub fn new(limit: usize) -> Arc<Self> {
        let limit = limit.max(1);
        Arc::new(ConnectionLimit {
            queue: Mutex::new(Queue { free: limit, limit, waiters: BTreeMap::new(), arrivals: 0 }),
        })
    }

    /// The limit now (it only ever shrinks).
    pub fn limit(&self) -> usize {
        self.queue.lock().unwrap().limit
    }

    /// A permit; waiters with a lower `priority` (a file offset, or 0 for arrival order) go first.
    pub async fn acquire(self: &Arc<Self>, priority: u64) -> Permit {
        let rx = {
            let mut q = self.queue.lock().unwrap();
            // Free permits mean every waiter left is gone (a release serves waiters first).
            if q.free > 0 {
                q.free -= 1;
                return Permit { limit: self.clone(), live: true };
            }
            let (tx, rx) = oneshot::channel();
            let arrival = q.arrivals;
            q.arrivals += 1;
            q.waiters.insert((priority, arrival), tx);
            rx
        };
        rx.await.expect("a waiter is only dropped once sent a permit")
    }

    fn release(self: &Arc<Self>) {
        loop {
            let waiter = {
                let mut q = self.queue.lock().unwrap();
                match q.waiters.pop_first() {
                    Some((_, tx)) => tx,
                    None => {
                        q.free += 1;
                        return;
                    }
                }
            };
            match waiter.send(Permit { limit: self.clone(), live: true }) {
                Ok(()) => return,
                // That waiter gave up: try the next one.
                Err(mut permit) => permit.live = false,
            }
        }
    }

    /// The server refused a connection: one fewer from now on, unless this is the last one.
    /// Returns whether the limit shrank.
    pub fn refused(&self, mut permit: Permit) -> bool {
        let mut q = self.queue.lock().unwrap();
        let shrank = q.limit > 1;
        if shrank {
            q.limit -= 1;
            permit.live = false;
        }
        shrank
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn available(limit: &ConnectionLimit) -> usize {
        limit.queue.lock().unwrap().free
    }

    #[tokio::test]
    async fn refusals_shrink_the_limit_down_to_one() {
        let limit = ConnectionLimit::new(3);
        assert!(limit.refused(limit.acquire(0).await));
        assert_eq!(limit.limit(), 2);
        let (a, b) = (limit.acquire(0).await, limit.acquire(0).await);
        assert_eq!(available(&limit), 0, "two permits in all now");
        assert!(limit.refused(a));
        assert!(!limit.refused(b), "the last connection stays");
        assert_eq!(limit.limit(), 1);
        let _one = limit.acquire(0).await;
        assert_eq!(available(&limit), 0);
    }

    #[tokio::test]
    async fn a_freed_permit_goes_to_the_first_in_priority() {
        let limit = ConnectionLimit::new(1);
        let held = limit.acquire(0).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for ahead in [30u64, 10, 20] {
            let (limit, order) = (limit.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire(ahead).await;
                order.lock().unwrap().push(ahead);
            }));
            tokio::task::yield_now().await;
        }
        while limit.queue.lock().unwrap().waiters.len() < 3 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [10, 20, 30]);
        assert_eq!(available(&limit), 1, "the permit came back");
    }

    #[tokio::test]
    async fn a_waiter_that_gave_up_does_not_lose_the_permit() {
        let limit = ConnectionLimit::new(1);
        let held = limit.acquire(0).await;
        let gone = tokio::spawn({
            let limit = limit.clone();
            async move { limit.acquire(5).await }
        });
        while limit.queue.lock().unwrap().waiters.is_empty() {
            tokio::task::yield_now().await;
        }
        gone.abort();
        let _ = gone.await;
        drop(held);
        assert_eq!(available(&limit), 1);
        let _again = limit.acquire(0).await;
    }
}
