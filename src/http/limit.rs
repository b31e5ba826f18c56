//! The API governor: per-endpoint request budgets, declared next to the endpoint that needs
//! them, with two priorities.
//!
//! Providers throttle hard and do not say how hard: 123pan's file list takes about one call per
//! 700 ms per endpoint (measured by OpenList's maintainers and the official client); PikPak
//! answers bursts with error 10 or a captcha wall, and well-behaved clients keep to about 5
//! calls a second. Spacing our own calls costs less than being refused and backing off.
//!
//! A [`RateLimiter`] is a token bucket (GCRA): `burst` calls may go at once, then one per
//! `interval`. Interactive calls (a lookup, a listing a user waits for, a link for a read)
//! reserve the next free slot in arrival order. Background calls (revalidating cached
//! listings, `panmount warm`) run inside [`background`] and take a slot only when it is free
//! now and no interactive call is waiting, so a media server's scan never queues behind them.
//! The priority travels with the task (a task-local), so drivers need not pass it along.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Interactive,
    Background,
}

tokio::task_local! {
    static PRIORITY: Priority;
}

/// Run `work` with background priority: its API calls yield to interactive ones.
pub async fn background<F: Future>(work: F) -> F::Output {
    PRIORITY.scope(Priority::Background, work).await
}

fn current_priority() -> Priority {
    PRIORITY.try_with(|p| *p).unwrap_or(Priority::Interactive)
}

/// How long a background caller sleeps before looking again while interactive calls wait.
const BACKGROUND_POLL: Duration = Duration::from_millis(50);

pub struct RateLimiter {
    interval: Duration,
    burst: u32,
    state: Mutex<State>,
}

struct State {
    /// The GCRA's theoretical arrival time: the bucket is full when this is in the past.
    tat: Option<Instant>,
    /// Interactive callers holding a slot that has not come yet.
    interactive_waiting: usize,
}

/// An interactive caller's place among the waiters, given up when its wait ends or when it is
/// dropped (a timeout, a cancelled FUSE request): otherwise background calls would wait for it
/// for good.
struct Waiting<'a>(&'a Mutex<State>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap().interactive_waiting -= 1;
    }
}

impl RateLimiter {
    /// One call per `interval`, no burst.
    pub fn new(interval: Duration) -> Self {
        Self::with_burst(interval, 1)
    }

    /// `burst` calls at once, then one per `interval`.
    pub fn with_burst(interval: Duration, burst: u32) -> Self {
        RateLimiter { interval, burst: burst.max(1), state: Mutex::new(State { tat: None, interactive_waiting: 0 }) }
    }

    /// The earliest time the next call may go, given the bucket's state.
    fn next_slot(&self, state: &State, now: Instant) -> Instant {
        let allowance = self.interval * (self.burst - 1);
        state.tat.map_or(now, |tat| tat.checked_sub(allowance).unwrap_or(now).max(now))
    }

    fn take(&self, state: &mut State, slot: Instant) {
        state.tat = Some(state.tat.map_or(slot, |tat| tat.max(slot)) + self.interval);
    }

    /// Wait until this caller may send its request.
    pub async fn wait(&self) {
        match current_priority() {
            Priority::Interactive => {
                let (slot, _waiting) = {
                    let mut state = self.state.lock().unwrap();
                    let slot = self.next_slot(&state, Instant::now());
                    self.take(&mut state, slot);
                    state.interactive_waiting += 1;
                    (slot, Waiting(&self.state))
                };
                tokio::time::sleep_until(slot).await;
            }
            Priority::Background => loop {
                let wake = {
                    let mut state = self.state.lock().unwrap();
                    let now = Instant::now();
                    let slot = self.next_slot(&state, now);
                    if state.interactive_waiting == 0 && slot <= now {
                        self.take(&mut state, now);
                        return;
                    }
                    slot.max(now + BACKGROUND_POLL)
                };
                tokio::time::sleep_until(wake).await;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn times(limiter: &Arc<RateLimiter>, n: usize, start: Instant) -> Vec<Duration> {
        let tasks: Vec<_> = (0..n)
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
        times
    }

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_in_arrival_order() {
        let limiter = Arc::new(RateLimiter::new(Duration::from_millis(700)));
        let start = Instant::now();
        assert_eq!(times(&limiter, 4, start).await, [0, 700, 1400, 2100].map(Duration::from_millis));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_one_per_interval() {
        let limiter = Arc::new(RateLimiter::with_burst(Duration::from_millis(200), 5));
        let start = Instant::now();
        assert_eq!(times(&limiter, 7, start).await, [0, 0, 0, 0, 0, 200, 400].map(Duration::from_millis));
        // Idle long enough, the bucket refills to the whole burst.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let again = Instant::now();
        assert_eq!(times(&limiter, 5, again).await, [Duration::ZERO; 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn interactive_calls_go_before_background_ones() {
        let limiter = Arc::new(RateLimiter::new(Duration::from_millis(100)));
        let start = Instant::now();
        // Ten background calls queue first (a revalidation sweep)...
        let sweep: Vec<_> = (0..10)
            .map(|_| {
                let l = limiter.clone();
                tokio::spawn(background(async move {
                    l.wait().await;
                    Instant::now() - start
                }))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(150)).await;
        // ...then a user's lookup arrives: it waits at most one interval, not for the sweep.
        let asked = Instant::now();
        limiter.wait().await;
        assert!(Instant::now() - asked <= Duration::from_millis(100), "{:?}", Instant::now() - asked);
        let mut done = Vec::new();
        for t in sweep {
            done.push(t.await.unwrap());
        }
        done.sort();
        // The sweep still ran, one call per interval, and never two in one interval.
        for pair in done.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(100), "{done:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_interactive_waiter_does_not_hold_back_background_calls() {
        let limiter = Arc::new(RateLimiter::new(Duration::from_millis(100)));
        limiter.wait().await;
        // A lookup whose slot is 100 ms away is cancelled (its FUSE request was interrupted).
        let cancelled = tokio::time::timeout(Duration::from_millis(10), limiter.wait()).await;
        assert!(cancelled.is_err(), "the waiter was still waiting when dropped");
        // A background call still gets a slot, once the interactive slots are past.
        let background = tokio::time::timeout(Duration::from_secs(3600), background(limiter.wait())).await;
        assert!(background.is_ok(), "a background call starved behind a dropped waiter");
    }
}
