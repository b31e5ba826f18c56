//! A storage's traffic budget: the bytes it received from the CDN in the current period, and
//! what the read path may still fetch.
//!
//! Why: 123pan's free accounts get 10 GB of downloads a month, playback included (code 5113
//! after that), and a media server's first library scan can spend that in a day. A budget
//! (`traffic_budget`, `traffic_period` in the config) spends it on purpose instead:
//! - past the soft mark (90%) speculative read-ahead stops: only the blocks a read asks for are
//!   fetched ([`Meter::read_ahead_allowed`]);
//! - once the count reaches the budget, every read that needs the network fails with EIO
//!   ([`Error::TrafficSpent`]) until the period resets, and one warning per period says which
//!   storage, how much of what budget, and when it resets. Blocks in the memory and disk caches
//!   are still served;
//! - a ranged request is granted at most what is left, rounded up to the end of a block
//!   ([`clamp_end`]), and what requests in flight were granted is reserved, so the count ends
//!   at most one block per request in flight past the budget.
//!
//! The reset rule: a period is a calendar month from 00:00 UTC on the 1st (the default), or a
//! day from 00:00 UTC. A count from a past period is dropped when it is loaded, or by the first
//! request of the new period.
//!
//! What is counted is what `bytes_fetched` counts (`crate::read::fetch`, `crate::read::split`):
//! body bytes of download links. The count lives in `<state_dir>/traffic/<driver>-<hash of the
//! driver and storage path>.json`, written atomically (`crate::state::write_atomic`) every
//! [`SAVE_EVERY`] while it changes and at a clean stop: a restart, even `kill -9`, loses at
//! most a couple of seconds of count. The key is the storage, not the account: two storages of
//! one account count apart. A `panmount cat` beside a running mount counts too: each process
//! adds what the other wrote since its own last write (two writes at the same moment may
//! lose one side's last seconds).
//!
//! 123pan's code 5113 ("traffic exceeded", `Error::TrafficExhausted`) marks the storage spent
//! by itself, with or without a budget: no request goes out for it until the period ends. The
//! provider's real reset rule is unconfirmed (a month since 2025-11, a day in older docs), so
//! the mark is tolerant: at most one real request per [`RECHECK`] is let through to ask again;
//! a 5113 keeps the mark, a link the provider hands out clears it. A restart asks at once.
//!
//! The read path pays a few relaxed atomics per request and one or two per body chunk; no lock.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{StorageConfig, TrafficPeriod, format_size};
use crate::error::Error;
use crate::state::StateFile;
use crate::time::{civil_from_days, days_from_civil, rfc3339, unix_now, utc_minute};

/// How often the count is written while it changes.
pub const SAVE_EVERY: Duration = Duration::from_secs(2);
/// How often a storage the provider called spent (5113) may ask again.
pub const RECHECK: Duration = Duration::from_secs(3600);

/// Unix seconds at which the period holding `now` began.
pub fn period_start(period: TrafficPeriod, now: u64) -> u64 {
    let day = now / 86_400;
    match period {
        TrafficPeriod::Day => day * 86_400,
        TrafficPeriod::Month => {
            let (y, m, _) = civil_from_days(day as i64);
            days_from_civil(y, m, 1) as u64 * 86_400
        }
    }
}

/// Unix seconds at which the period that began at `start` ends (the next one begins).
pub fn period_end(period: TrafficPeriod, start: u64) -> u64 {
    match period {
        TrafficPeriod::Day => start + 86_400,
        TrafficPeriod::Month => {
            let (y, m, _) = civil_from_days((start / 86_400) as i64);
            let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            days_from_civil(y, m, 1) as u64 * 86_400
        }
    }
}

/// Where a request from `pos` towards `end` must stop to ask for at most `room` bytes, rounded
/// up to the end of the `block` those bytes end in (never less than the rest of `pos`'s block).
pub fn clamp_end(pos: u64, end: u64, room: u64, block: u64) -> u64 {
    let block = block.max(1);
    let limit = pos.saturating_add(room.max(1));
    end.min(limit.div_ceil(block).saturating_mul(block))
}

/// Where a storage stands in its period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Normal,
    /// Past 90% of the budget: no read-ahead.
    Soft,
    /// The budget is used up.
    Spent,
    /// The provider said the account's traffic is spent (123pan 5113).
    Exhausted,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Normal => "normal",
            State::Soft => "soft",
            State::Spent => "spent",
            State::Exhausted => "exhausted",
        }
    }
}

/// What `panmount stats` and `check` show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    pub budget: Option<u64>,
    pub state: State,
    /// Unix seconds at which the period ends.
    pub resets: u64,
}

/// One storage's meter.
pub struct Meter {
    storage: String,
    budget: Option<u64>,
    /// 90% of the budget; `u64::MAX` without one.
    soft_at: u64,
    period: TrafficPeriod,
    file: StateFile,
    period_start: AtomicU64,
    used: AtomicU64,
    /// Bytes granted to requests in flight and not received yet.
    reserved: AtomicU64,
    /// The provider's 5113 mark.
    exhausted: AtomicBool,
    /// When a marked storage may next let a request through.
    recheck_at: AtomicU64,
    /// 1 + the start of the period whose "spent" line was logged (0: none yet).
    logged: AtomicU64,
    saved: Mutex<Saved>,
}

/// What the file holds (or held when last written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    period_start: u64,
    used: u64,
    exhausted: bool,
}

#[derive(Debug, Default)]
struct Saved {
    last: Option<Snapshot>,
    failing: bool,
}

impl Meter {
    /// The meter of a configured storage, its count loaded from `state_dir`.
    pub fn for_storage(config: &StorageConfig, state_dir: Option<&Path>) -> Self {
        let file = StateFile::new(state_dir.map(|d| d.join("traffic")).as_deref(), &config.driver, &[&config.path]);
        Meter::new(&config.path, config.traffic_budget, config.traffic_period, file, unix_now())
    }

    /// A meter without a budget or a file: it counts, and takes the provider's 5113 mark.
    pub fn unmetered(storage: &str) -> Self {
        Meter::new(storage, None, TrafficPeriod::default(), StateFile::new(None, "", &[]), unix_now())
    }

    /// The meter of `storage` at `now`, with what `file` holds for the current period.
    pub fn new(storage: &str, budget: Option<u64>, period: TrafficPeriod, file: StateFile, now: u64) -> Self {
        let current = period_start(period, now);
        // A later start than now's: the clock went back; keep counting in that period.
        let loaded = stored(&file, period).filter(|s| s.period_start >= current);
        let start = loaded.unwrap_or(Snapshot { period_start: current, used: 0, exhausted: false });
        Meter {
            storage: storage.to_string(),
            budget,
            soft_at: budget.map_or(u64::MAX, |b| b - b / 10),
            period,
            file,
            period_start: start.period_start.into(),
            used: start.used.into(),
            reserved: 0.into(),
            exhausted: start.exhausted.into(),
            recheck_at: 0.into(),
            logged: 0.into(),
            saved: Mutex::new(Saved { last: loaded, failing: false }),
        }
    }

    /// Whether read-ahead may fetch beyond what reads ask for: not past the soft mark, and
    /// not while the provider calls the traffic spent.
    pub fn read_ahead_allowed(&self) -> bool {
        self.used.load(Relaxed) < self.soft_at && !self.exhausted.load(Relaxed)
    }

    /// Permission for a ranged request of `pos..end` of a file in `block`-sized blocks, or the
    /// error when the traffic is spent. The request must stop at [`Grant::end`].
    pub fn admit(&self, pos: u64, end: u64, block: u64) -> Result<Grant<'_>, Error> {
        self.admit_at(unix_now(), pos, end, block)
    }

    pub fn admit_at(&self, now: u64, pos: u64, end: u64, block: u64) -> Result<Grant<'_>, Error> {
        self.roll(now);
        if self.exhausted.load(Relaxed) {
            let due = self.recheck_at.load(Relaxed);
            if now < due || self.recheck_at.compare_exchange(due, now + RECHECK.as_secs(), Relaxed, Relaxed).is_err() {
                return Err(self.spent(None));
            }
            tracing::info!(storage = %self.storage, "asking the provider whether download traffic is available again");
        }
        let Some(budget) = self.budget else { return Ok(Grant { meter: self, end, left: 0 }) };
        let used = self.used.load(Relaxed);
        if used >= budget {
            return Err(self.spent(None));
        }
        let room = budget - used;
        let stop = clamp_end(pos, end, room.saturating_sub(self.reserved.load(Relaxed)), block);
        self.reserved.fetch_add(stop - pos, Relaxed);
        Ok(Grant { meter: self, end: stop, left: stop - pos })
    }

    /// The provider said the traffic is spent (123pan 5113): refuse requests until the period
    /// ends, letting one through per [`RECHECK`].
    pub fn provider_refused(&self, reason: &str) {
        self.provider_refused_at(unix_now(), reason);
    }

    pub fn provider_refused_at(&self, now: u64, reason: &str) {
        self.roll(now);
        self.exhausted.store(true, Relaxed);
        self.recheck_at.fetch_max(now + RECHECK.as_secs(), Relaxed);
        self.spent(Some(reason));
    }

    /// The provider handed out a download link: its 5113 mark, if any, is over.
    pub fn provider_allowed(&self) {
        if self.exhausted.swap(false, Relaxed) {
            tracing::info!(storage = %self.storage, "the provider hands out download links again");
        }
    }

    /// Usage for `stats` and `check`; `None` for a storage with no budget and no mark.
    pub fn usage(&self) -> Option<Usage> {
        self.usage_at(unix_now())
    }

    pub fn usage_at(&self, now: u64) -> Option<Usage> {
        self.roll(now);
        let exhausted = self.exhausted.load(Relaxed);
        if self.budget.is_none() && !exhausted {
            return None;
        }
        let used = self.used.load(Relaxed);
        let state = match self.budget {
            _ if exhausted => State::Exhausted,
            Some(b) if used >= b => State::Spent,
            _ if used >= self.soft_at => State::Soft,
            _ => State::Normal,
        };
        Some(Usage { used, budget: self.budget, state, resets: self.resets() })
    }

    /// ` traffic_used=N traffic_budget=N traffic_state=S traffic_resets=RFC3339` for a stats
    /// line (`traffic_budget=none` without one); empty when there is nothing to say.
    pub fn stats_fields(&self) -> String {
        let Some(u) = self.usage() else { return String::new() };
        let budget = u.budget.map_or("none".to_string(), |b| b.to_string());
        format!(
            " traffic_used={} traffic_budget={budget} traffic_state={} traffic_resets={}",
            u.used,
            u.state.name(),
            rfc3339(u.resets)
        )
    }

    /// `traffic 1.2 GiB of 10.0 GiB (12%), resets 2027-01-01 00:00 UTC` for `check`.
    pub fn summary(&self) -> Option<String> {
        let u = self.usage()?;
        let used = match u.budget {
            Some(b) => format!("{} of {} ({}%)", format_size(u.used), format_size(b), u.used * 100 / b),
            None => format!("{} used", format_size(u.used)),
        };
        let state = match u.state {
            State::Normal => "",
            State::Soft => ", past 90%: no read-ahead",
            State::Spent => ", spent",
            State::Exhausted => ", spent by the provider's word (asked again hourly)",
        };
        Some(format!("traffic {used}{state}, resets {} UTC", utc_minute(u.resets)))
    }

    /// Write the count to the state file every [`SAVE_EVERY`] while it changes, until the
    /// meter is dropped (on the mount's runtime).
    pub fn start_saver(self: &Arc<Self>) {
        if !self.file.is_persistent() {
            return;
        }
        let meter = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAVE_EVERY);
            loop {
                tick.tick().await;
                let Some(meter) = meter.upgrade() else { return };
                let _ = tokio::task::spawn_blocking(move || meter.save()).await;
            }
        });
    }

    /// Write the count if it changed since the last write. Without a budget only the
    /// provider's mark is kept (and its end). Bytes another process added to the file since
    /// (a `panmount cat` beside the mount) are added to this count first.
    pub fn save(&self) {
        let Some(path) = self.file.path() else { return };
        let mut saved = self.saved.lock().unwrap();
        let mut now = self.snapshot();
        let marked = now.exhausted || saved.last.is_some_and(|s| s.exhausted);
        if saved.last == Some(now) || (self.budget.is_none() && !marked) {
            return;
        }
        let base = saved.last.filter(|l| l.period_start == now.period_start).map_or(0, |l| l.used);
        if let Some(theirs) = stored(&self.file, self.period)
            .filter(|s| s.period_start == now.period_start && s.used > base)
            .map(|s| s.used - base)
        {
            self.used.fetch_add(theirs, Relaxed);
            now.used += theirs;
        }
        let body = json!({
            "storage": self.storage,
            "period": self.period.name(),
            "period_start": now.period_start,
            "resets": rfc3339(period_end(self.period, now.period_start)),
            "used": now.used,
            "exhausted": now.exhausted,
        });
        match crate::state::write_atomic(path, body.to_string().as_bytes()) {
            Ok(()) => *saved = Saved { last: Some(now), failing: false },
            Err(err) if !saved.failing => {
                saved.failing = true;
                tracing::warn!(storage = %self.storage, file = %path.display(), "cannot keep the traffic count: {err}");
            }
            Err(_) => {}
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            period_start: self.period_start.load(Relaxed),
            used: self.used.load(Relaxed),
            exhausted: self.exhausted.load(Relaxed),
        }
    }

    fn resets(&self) -> u64 {
        period_end(self.period, self.period_start.load(Relaxed))
    }

    /// Start a new period if `now` is past the current one: the count and the mark end.
    fn roll(&self, now: u64) {
        let current = period_start(self.period, now);
        let start = self.period_start.load(Relaxed);
        if current > start && self.period_start.compare_exchange(start, current, Relaxed, Relaxed).is_ok() {
            self.used.store(0, Relaxed);
            self.exhausted.store(false, Relaxed);
            tracing::info!(storage = %self.storage, period = self.period.name(), "a new traffic period: the count starts at 0");
        }
    }

    /// The error for a refused request, logging the one line of this period; `reason` is the
    /// provider's when it said so.
    fn spent(&self, reason: Option<&str>) -> Error {
        let start = self.period_start.load(Relaxed);
        let resets = format!("{} UTC", utc_minute(period_end(self.period, start)));
        if self.logged.swap(start + 1, Relaxed) != start + 1 {
            let (used, period) = (format_size(self.used.load(Relaxed)), self.period.name());
            let used = match self.budget {
                Some(b) => format!("{used} used of {} this {period}", format_size(b)),
                None => format!("{used} used this {period}, no budget set"),
            };
            let why = match reason {
                Some(reason) => format!("the provider says its download traffic is spent ({reason}; {used})"),
                None => format!("traffic budget spent: {used}"),
            };
            let recheck = if reason.is_some() { ", asking again once an hour" } else { "" };
            tracing::warn!(
                "storage {}: {why}; reads that need the network fail with EIO until the period resets at {resets}{recheck}; cached data is still served",
                self.storage
            );
        }
        Error::TrafficSpent { path: self.storage.clone(), resets }
    }
}

/// What `file` holds for `period`, if anything.
fn stored(file: &StateFile, period: TrafficPeriod) -> Option<Snapshot> {
    let map = file.load();
    if map.get("period").and_then(Value::as_str) != Some(period.name()) {
        return None;
    }
    Some(Snapshot {
        period_start: map.get("period_start").and_then(Value::as_u64)?,
        used: map.get("used").and_then(Value::as_u64).unwrap_or(0),
        exhausted: map.get("exhausted").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// A request's share of the budget: it must stop at [`Grant::end`], and counts what it
/// receives through [`Grant::received`]. What it was granted and did not receive goes back
/// when it is dropped.
pub struct Grant<'a> {
    meter: &'a Meter,
    end: u64,
    /// Granted and not received yet (reserved in the meter).
    left: u64,
}

impl Grant<'_> {
    pub fn end(&self) -> u64 {
        self.end
    }

    /// `n` body bytes arrived.
    pub fn received(&mut self, n: u64) {
        self.meter.used.fetch_add(n, Relaxed);
        if self.left > 0 {
            let n = n.min(self.left);
            self.left -= n;
            self.meter.reserved.fetch_sub(n, Relaxed);
        }
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        if self.left > 0 {
            self.meter.reserved.fetch_sub(self.left, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests;
