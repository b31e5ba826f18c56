//! When and how long to wait before sending a failed request again.
//!
//! One classifier for the whole program (`Error::is_transient`) and one bounded backoff: 100 ms
//! doubling to 5 s, with jitter so that parallel readers do not retry in lockstep, and a
//! server's `Retry-After` honoured (capped, so a hostile value cannot park a read for hours).
//! Every loop that retries takes a `Backoff` and stops when it says so: no unbounded loops.

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

#[cfg(test)]
mod tests {
    use super::*;

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
