//! How many ranged requests may run at once: per file (the CDN's limit per link, shared by
//! every handle of the file) and per handle (a reader's streams).
//!
//! PikPak's CDN answers a ninth connection to one URL with 503; 123pan publishes no limit.
//! So the per-file limit starts at the driver's figure and is tolerant: a request refused
//! with 503 or 429 while others of the file are in flight gives its permit up (down to one),
//! so a CDN that admits fewer connections than we assumed costs one refusal per connection
//! too many, not one per read. A refusal of the only request in flight says nothing about a
//! connection limit (a CDN that is down answers every request so), and after `REGROW_AFTER`
//! requests in a row that succeed, one permit comes back: an outage does not leave a file
//! on one connection for as long as it stays open.
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
//!
//! A handle's request in its last round trip may hand its permit over early (`hand_over`), so
//! that the next part's request is on the wire while its last bytes arrive; it keeps its file
//! permit until it has ended, so the file's limit still bounds the connections.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Requests one handle may have in flight.
pub const READER_STREAMS: usize = 8;

/// Requests of one handle that may be ending (in their last round trip) beside
/// `READER_STREAMS` others (see `ConnectionLimit::hand_over`). Measured on the benchmark's
/// 60 ms path (2 GiB, 8 x 20 MB/s): none 131 MB/s; 1: 130 (the eight requests of a window end
/// together, and one early start changes nothing); 2: 141; 4: 150-151 with 11-12 connections
/// at the CDN; 8: 149-156 with 13-14.
pub const READER_OVERLAP: usize = 4;

/// Successful requests in a row after which a shrunk limit grows by one again: a CDN that
/// really admits fewer connections costs one refusal per this many requests.
const REGROW_AFTER: u32 = 32;

/// A limit of requests in flight, handed out nearest first, that may shrink.
pub struct ConnectionLimit {
    queue: Mutex<Queue>,
}

struct Queue {
    free: usize,
    limit: usize,
    initial: usize,
    /// Requests that succeeded since the last refusal (counted while `limit < initial`).
    successes: u32,
    /// Waiters by (priority, arrival): the first gets the next permit.
    waiters: BTreeMap<(u64, u64), oneshot::Sender<Permit>>,
    arrivals: u64,
    /// Requests that may still be ending after handing their permit over (`hand_over`).
    overlap: usize,
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

/// A request that handed its permit over and has not ended yet.
pub struct Overlap {
    limit: Arc<ConnectionLimit>,
}

impl Drop for Overlap {
    fn drop(&mut self) {
        self.limit.queue.lock().unwrap().overlap += 1;
    }
}

impl ConnectionLimit {
    pub fn new(limit: usize) -> Arc<Self> {
        Self::with_overlap(limit, 0)
    }

    /// A limit whose requests may hand their permit over to the next one in their last round
    /// trip, `overlap` of them at a time.
    pub fn with_overlap(limit: usize, overlap: usize) -> Arc<Self> {
        let limit = limit.max(1);
        Arc::new(ConnectionLimit {
            queue: Mutex::new(Queue {
                free: limit,
                limit,
                initial: limit,
                successes: 0,
                waiters: BTreeMap::new(),
                arrivals: 0,
                overlap,
            }),
        })
    }

    /// The limit now (it only ever shrinks).
    pub fn limit(&self) -> usize {
        self.queue.lock().unwrap().limit
    }

    /// Whether a permit is free right now (nobody waits).
    pub fn has_free(&self) -> bool {
        self.queue.lock().unwrap().free > 0
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

    /// A request about to end gives its permit to the next waiter now, if fewer than the
    /// overlap allowance are ending that way; it keeps the returned guard until it has ended.
    pub fn hand_over(self: &Arc<Self>, permit: Permit) -> std::result::Result<Overlap, Permit> {
        {
            let mut q = self.queue.lock().unwrap();
            if q.overlap == 0 {
                return Err(permit);
            }
            q.overlap -= 1;
        }
        drop(permit);
        Ok(Overlap { limit: self.clone() })
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

    /// The server refused `permit`'s request: if others were in flight, one fewer from now
    /// on (never fewer than one). Returns whether the limit shrank.
    pub fn refused(&self, mut permit: Permit) -> bool {
        let mut q = self.queue.lock().unwrap();
        q.successes = 0;
        let in_flight = q.limit - q.free;
        let shrank = q.limit > 1 && in_flight > 1;
        if shrank {
            q.limit -= 1;
            permit.live = false;
        }
        shrank
    }

    /// A request went through: after `REGROW_AFTER` in a row, a shrunk limit grows by one.
    pub fn succeeded(self: &Arc<Self>) {
        {
            let mut q = self.queue.lock().unwrap();
            if q.limit >= q.initial {
                return;
            }
            q.successes += 1;
            if q.successes < REGROW_AFTER {
                return;
            }
            q.successes = 0;
            q.limit += 1;
        }
        self.release();
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
        let (a, b, c) = (limit.acquire(0).await, limit.acquire(0).await, limit.acquire(0).await);
        assert!(limit.refused(a));
        assert_eq!(limit.limit(), 2);
        assert_eq!(available(&limit), 0, "two permits in all now, both held");
        assert!(limit.refused(b));
        assert!(!limit.refused(c), "the last connection stays");
        assert_eq!(limit.limit(), 1);
        let _one = limit.acquire(0).await;
        assert_eq!(available(&limit), 0);
    }

    #[tokio::test]
    async fn a_refusal_of_the_only_request_in_flight_keeps_the_limit() {
        let limit = ConnectionLimit::new(3);
        assert!(!limit.refused(limit.acquire(0).await), "a CDN that is down refuses one request too");
        assert_eq!((limit.limit(), available(&limit)), (3, 3));
    }

    #[tokio::test]
    async fn successes_in_a_row_give_a_refused_permit_back() {
        let limit = ConnectionLimit::new(2);
        let (a, _b) = (limit.acquire(0).await, limit.acquire(0).await);
        assert!(limit.refused(a));
        for _ in 1..REGROW_AFTER {
            limit.succeeded();
        }
        assert_eq!((limit.limit(), available(&limit)), (1, 0));
        limit.succeeded();
        assert_eq!((limit.limit(), available(&limit)), (2, 1), "one permit back, and free");
        for _ in 0..2 * REGROW_AFTER {
            limit.succeeded();
        }
        assert_eq!(limit.limit(), 2, "never past the initial limit");
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
    async fn a_handed_over_permit_serves_the_next_request_within_the_overlap() {
        let limit = ConnectionLimit::with_overlap(1, 1);
        let ending = limit.acquire(0).await;
        let guard = limit.hand_over(ending).ok().expect("room for one overlap");
        let next = limit.acquire(0).await;
        assert_eq!(available(&limit), 0);
        let next = limit.hand_over(next).err().expect("the overlap is taken until the first request ends");
        drop(guard);
        let _guard = limit.hand_over(next).ok().expect("room again");
        assert_eq!(available(&limit), 1, "the permit was handed back");
        assert!(ConnectionLimit::new(1).hand_over(limit.acquire(0).await).is_err(), "no overlap by default");
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
