//! When and how long to wait before sending a failed request again, and the one runner that
//! does it.
//!
//! One classifier for the whole program (`Error::is_transient`) and one bounded backoff: 100 ms
//! doubling to 5 s, with jitter so that parallel readers do not retry in lockstep, and a
//! server's `Retry-After` honoured (capped, so a hostile value cannot park a read for hours).
//!
//! API calls go through [`retry`] (rclone's pacer is the model): the attempt budget, the
//! backoff, `Retry-After` and one debug line per retry live there, not in each driver. A call
//! that creates or changes something on the provider ([`Policy::write`]) is sent again only
//! after an answer that proves it was not carried out (a rate limit: HTTP 429 or a provider's
//! "too frequent" code); after a transport error or a 5xx it may have been, and a blind replay
//! could create a folder or an upload twice. The download path (`read::fetch`) keeps its own
//! `Backoff`, since progress there resets the budget.

use std::future::Future;
use std::time::Duration;

use crate::error::Error;

const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(5);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Backoff {
    attempts: u32,
    max_attempts: u32,
    next: Duration,
}

impl Backoff {
    pub fn new(max_attempts: u32) -> Self {
        Backoff { attempts: 0, max_attempts, next: FIRST }
    }

    /// After progress was made (bytes arrived), failures start counting again.
    pub fn reset(&mut self) {
        self.attempts = 0;
        self.next = FIRST;
    }

    /// How long to sleep before trying again after `err`, or `None` to give up.
    pub fn delay_for(&mut self, err: &Error) -> Option<Duration> {
        if !err.is_transient() || self.attempts >= self.max_attempts {
            return None;
        }
        self.attempts += 1;
        let base = self.next;
        self.next = (self.next * 2).min(MAX);
        let jitter = base.mul_f64(rand::random::<f64>() * 0.5);
        let delay = base + jitter;
        match err {
            Error::RateLimited { retry_after: Some(after), .. } => Some((*after).min(MAX_RETRY_AFTER).max(delay)),
            _ => Some(delay),
        }
    }
}

/// How one call may be retried.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// Names the call in the retry log line (an endpoint path, never a URL with a signature).
    pub what: &'a str,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Whether sending the call twice does no harm (reads, listings).
    pub idempotent: bool,
}

impl<'a> Policy<'a> {
    /// A read or a listing: retried after any transient failure.
    pub const fn read(what: &'a str, retries: u32) -> Self {
        Policy { what, retries, idempotent: true }
    }

    /// A call that creates or changes something: retried only after a refusal that proves it
    /// was not carried out.
    pub const fn write(what: &'a str, retries: u32) -> Self {
        Policy { what, retries, idempotent: false }
    }

    /// Whether `err` allows sending the call again (the budget aside).
    pub fn may_retry(&self, err: &Error) -> bool {
        if self.idempotent { err.is_transient() } else { not_carried_out(err) }
    }
}

/// An answer that proves the request was refused before the provider acted on it: a rate limit
/// (HTTP 429, or a provider's "too frequent" code in a 2xx/4xx answer). A 5xx, even with
/// `Retry-After`, may have come after the work was done.
fn not_carried_out(err: &Error) -> bool {
    matches!(err, Error::RateLimited { status, .. } if *status < 500)
}

/// Run `op` until it succeeds, fails in a way `policy` does not retry, or the budget is spent;
/// the last error is returned. `E` is [`Error`] or a driver's error that carries one.
pub async fn retry<T, E, F, Fut>(policy: &Policy<'_>, mut op: F) -> Result<T, E>
where
    E: AsRef<Error>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(policy.retries);
    loop {
        let err = match op().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let delay = if policy.may_retry(err.as_ref()) { backoff.delay_for(err.as_ref()) } else { None };
        match delay {
            Some(delay) => {
                tracing::debug!(call = policy.what, err = %err.as_ref(), ?delay, "retrying");
                tokio::time::sleep(delay).await;
            }
            None => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// How many attempts `policy` makes when every one fails with `err`.
    async fn attempts(policy: Policy<'_>, err: Error) -> u32 {
        let n = AtomicU32::new(0);
        let result: Result<(), Error> = retry(&policy, || {
            n.fetch_add(1, Ordering::Relaxed);
            let err = err.clone();
            async move { Err(err) }
        })
        .await;
        assert!(result.is_err());
        n.load(Ordering::Relaxed)
    }

    #[tokio::test(start_paused = true)]
    async fn reads_retry_every_transient_failure() {
        let read = Policy::read("test", 3);
        assert_eq!(attempts(read, Error::ServerError { status: 503 }).await, 4);
        assert_eq!(attempts(read, Error::Network("reset".into())).await, 4);
        assert_eq!(attempts(read, Error::RateLimited { status: 429, retry_after: None }).await, 4);
        assert_eq!(attempts(read, Error::Remote("no".into())).await, 1);
        assert_eq!(attempts(read, Error::LinkRefused { status: 403 }).await, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_retry_only_a_proven_refusal() {
        let write = Policy::write("test", 3);
        assert_eq!(attempts(write, Error::RateLimited { status: 429, retry_after: None }).await, 4);
        // A provider's rate-limit code in a 200 or 400 answer is a refusal too.
        assert_eq!(attempts(write, Error::RateLimited { status: 400, retry_after: None }).await, 4);
        // The request may have been carried out: never sent twice.
        assert_eq!(attempts(write, Error::ServerError { status: 503 }).await, 1);
        assert_eq!(attempts(write, Error::RateLimited { status: 503, retry_after: None }).await, 1);
        assert_eq!(attempts(write, Error::Network("reset".into())).await, 1);
        assert_eq!(attempts(write, Error::Remote("no".into())).await, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn success_after_failures_waits_the_retry_after() {
        let n = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let value = retry(&Policy::read("test", 5), || {
            let i = n.fetch_add(1, Ordering::Relaxed);
            async move {
                match i {
                    0 => Err(Error::RateLimited { status: 429, retry_after: Some(Duration::from_secs(7)) }),
                    _ => Ok(i),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 1);
        assert!(started.elapsed() >= Duration::from_secs(7), "{:?}", started.elapsed());
    }

    #[test]
    fn gives_up_after_max_attempts_and_on_permanent_errors() {
        let mut b = Backoff::new(2);
        let e = Error::ServerError { status: 503 };
        assert!(b.delay_for(&e).is_some());
        assert!(b.delay_for(&e).is_some());
        assert!(b.delay_for(&e).is_none());
        b.reset();
        assert!(b.delay_for(&e).is_some());
        assert!(Backoff::new(5).delay_for(&Error::LinkRefused { status: 403 }).is_none());
    }

    #[test]
    fn honours_retry_after_but_caps_it() {
        let mut b = Backoff::new(3);
        let e = Error::RateLimited { status: 429, retry_after: Some(Duration::from_secs(2)) };
        assert!(b.delay_for(&e).unwrap() >= Duration::from_secs(2));
        let e = Error::RateLimited { status: 429, retry_after: Some(Duration::from_secs(86400)) };
        assert!(b.delay_for(&e).unwrap() <= MAX_RETRY_AFTER);
    }

    #[test]
    fn delays_grow_and_stay_bounded() {
        let mut b = Backoff::new(20);
        let e = Error::Network("reset".into());
        let delays: Vec<_> = (0..20).map(|_| b.delay_for(&e).unwrap()).collect();
        assert!(delays[0] < Duration::from_millis(200));
        assert!(delays.iter().all(|d| *d <= MAX + MAX / 2));
    }
}
