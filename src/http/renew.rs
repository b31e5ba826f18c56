//! A value (a session token, a share's pass token, a captcha token) that is renewed by the
//! first task to find it refused, while the others wait and take what it got.
//!
//! Each caller passes the value it used and saw refused. Renewals are serialised; a caller
//! whose stale value was already replaced gets the current one without renewing. So a burst
//! of N requests refused with the same token costs one login, not N (and, for a provider that
//! rotates tokens, never spends the same one twice).

use std::future::Future;
use std::sync::Mutex;

pub struct Renewable<T> {
    current: Mutex<T>,
    renewing: tokio::sync::Mutex<()>,
}

impl<T: Clone + PartialEq> Renewable<T> {
    pub fn new(value: T) -> Self {
        Renewable { current: Mutex::new(value), renewing: tokio::sync::Mutex::new(()) }
    }

    pub fn get(&self) -> T {
        self.current.lock().unwrap().clone()
    }

    /// Replace the value (a login at start, or a value an answer brought along).
    pub fn set(&self, value: T) {
        *self.current.lock().unwrap() = value;
    }

    /// The value after `stale`: renewed with `renew` unless another task already replaced it.
    pub async fn renew<Q, E, F, Fut>(&self, stale: &Q, renew: F) -> Result<T, E>
    where
        Q: ?Sized,
        T: PartialEq<Q>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let _one = self.renewing.lock().await;
        let current = self.get();
        if current != *stale {
            return Ok(current);
        }
        let fresh = renew().await?;
        self.set(fresh.clone());
        Ok(fresh)
    }

    /// Renew whatever the current value is (a login from scratch), in turn with [`Self::renew`].
    pub async fn replace<E, F, Fut>(&self, renew: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let _one = self.renewing.lock().await;
        let fresh = renew().await?;
        self.set(fresh.clone());
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_with_one_stale_value_renew_once() {
        let token = Renewable::new("old".to_string());
        let renewals = AtomicU32::new(0);
        let stale = "old".to_string();
        let callers = (0..16).map(|_| {
            token.renew(&stale, || async {
                let n = renewals.fetch_add(1, Ordering::Relaxed) + 1;
                // A slow login: every other caller is queued behind it meanwhile.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Ok::<_, ()>(format!("new{n}"))
            })
        });
        let got = futures_util::future::join_all(callers).await;
        assert_eq!(renewals.load(Ordering::Relaxed), 1);
        assert!(got.iter().all(|v| v.as_deref() == Ok("new1")), "{got:?}");
        // A caller that saw the new value refused renews again.
        let again = token.renew(&"new1".to_string(), || async { Ok::<_, ()>("new2".to_string()) }).await;
        assert_eq!(again.as_deref(), Ok("new2"));
        assert_eq!(token.get(), "new2");
    }

    #[tokio::test]
    async fn a_failed_renewal_keeps_the_value_for_the_next_caller() {
        let token = Renewable::new(1);
        assert_eq!(token.renew(&1, || async { Err::<i32, _>("refused") }).await, Err("refused"));
        assert_eq!(token.renew(&1, || async { Ok::<_, &str>(2) }).await, Ok(2));
        // A login from scratch renews whatever the value; a caller still holding 1 then
        // takes the current value instead of renewing again.
        assert_eq!(token.replace(|| async { Ok::<_, &str>(3) }).await, Ok(3));
        assert_eq!(token.renew(&1, || async { Ok::<_, &str>(9) }).await, Ok(3));
    }
}
