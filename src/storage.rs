//! One mounted storage and its health.
//!
//! A storage that refuses login or cannot be reached must not take the others down: it is
//! marked down, its folder answers EIO, and the reason is logged once, when the state changes
//! (never once per request, which would flood a media server's scan into the journal). A down
//! storage tries to log in again at most once per `RETRY_AFTER` when it is accessed, so a
//! mount started while the network was out recovers without a restart. A session that dies for
//! good while mounted (`Error::LoginLost`, see [`Storage::checked`]) takes the same path.
//!
//! One login at a time, and one outcome for everyone who waited for it: callers that queued
//! behind a login that failed take its answer instead of trying again each in turn (PikPak
//! puts a captcha wall in front of an account after a few refused sign-ins).
//!
//! Its traffic [`Meter`] (`crate::budget`) is here too: the read path asks it before each
//! download, and a provider's "traffic spent" answer (123pan 5113) to any call marks it.
//!
//! The quota (`statfs`, `df`) is kept for [`QUOTA_TTL`]: `df` runs often (shell prompts,
//! monitoring) and must answer at once, so a stale value is answered and refreshed in the
//! background, and a storage that is not up answers what it last knew without a login.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::budget::Meter;
use crate::drivers::{Driver, Quota};
use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::stats::StorageStats;

const RETRY_AFTER: Duration = Duration::from_secs(60);
/// How long a quota is answered without asking again.
const QUOTA_TTL: Duration = Duration::from_secs(60);

pub struct Storage {
    pub path: String,
    pub driver: Arc<dyn Driver>,
    /// The storage's HTTP client (its own when it sets `proxy`); downloads go through it too.
    pub http: HttpClient,
    pub stats: Arc<StorageStats>,
    /// Bytes downloaded this period, against the budget if there is one.
    pub traffic: Arc<Meter>,
    health: Mutex<Health>,
    login: tokio::sync::Mutex<()>,
    /// The last quota the driver gave, and when it was asked (`None`: never).
    quota: Mutex<(Option<Quota>, Option<Instant>)>,
    quota_refreshing: AtomicBool,
    /// Listings are being served stale because listing fails (logged once per outage).
    stale: AtomicBool,
    /// `read_only = true` in the config, or `--read-only`.
    read_only: bool,
}

enum Health {
    Unknown,
    Up,
    Down { reason: String, at: Instant },
}

impl Storage {
    pub fn new(path: String, driver: Arc<dyn Driver>, http: HttpClient) -> Self {
        Storage {
            traffic: Arc::new(Meter::unmetered(&path)),
            path,
            driver,
            http,
            stats: Arc::default(),
            health: Mutex::new(Health::Unknown),
            login: tokio::sync::Mutex::new(()),
            quota: Mutex::new((None, None)),
            quota_refreshing: AtomicBool::new(false),
            stale: AtomicBool::new(false),
            read_only: false,
        }
    }

    /// Refuse every write (`read_only = true`, `--read-only`).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Meter downloads with `meter` (the configured budget and the persisted count).
    pub fn traffic(mut self, meter: Meter) -> Self {
        self.traffic = Arc::new(meter);
        self
    }

    /// The driver's write capability, or `EROFS` (a read-only storage, or a driver that has
    /// none: shares and links).
    pub fn writer(&self) -> Result<&dyn crate::drivers::Writable> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        self.driver.writable().ok_or(Error::ReadOnly)
    }

    /// Log in and record the outcome (logging it if it changed).
    pub async fn login(&self) -> Result<()> {
        let _one_at_a_time = self.login.lock().await;
        self.login_locked().await
    }

    /// [`Storage::login`], the login lock held.
    async fn login_locked(&self) -> Result<()> {
        let result = self.driver.login().await;
        let mut health = self.health.lock().unwrap();
        match &result {
            Ok(()) => {
                if matches!(*health, Health::Down { .. }) {
                    tracing::info!(storage = %self.path, "storage is reachable again");
                }
                *health = Health::Up;
            }
            Err(err) => self.mark_down(&mut health, err.to_string()),
        }
        drop(health);
        result.map_err(|err| self.down_error(err.to_string()))
    }

    /// A driver's answer, passed through; but `Error::LoginLost` (the session died and cannot
    /// be renewed) marks the storage down as a refused login does, so that later accesses
    /// answer EIO without a request and the log says why once; `Error::TrafficExhausted`
    /// marks the traffic spent ([`Meter::provider_refused`]).
    pub fn checked<T>(&self, result: Result<T>) -> Result<T> {
        match result {
            Err(Error::LoginLost(reason)) => {
                self.mark_down(&mut self.health.lock().unwrap(), reason.clone());
                Err(self.down_error(reason))
            }
            Err(Error::TrafficExhausted(reason)) => {
                self.traffic.provider_refused(&reason);
                Err(Error::TrafficExhausted(reason))
            }
            other => other,
        }
    }

    /// [`Storage::checked`] for a download link: one handed out ends a "traffic spent" mark.
    pub fn minted<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_ok() {
            self.traffic.provider_allowed();
        }
        self.checked(result)
    }

    fn mark_down(&self, health: &mut Health, reason: String) {
        let changed = !matches!(&*health, Health::Down { reason: r, .. } if *r == reason);
        if changed {
            tracing::error!(storage = %self.path, driver = self.driver.kind(), "storage unavailable: {reason}");
        }
        *health = Health::Down { reason, at: Instant::now() };
    }

    /// Ok when the storage may be used now; a down storage retries its login now and then.
    pub async fn ensure_up(&self) -> Result<()> {
        if let Some(known) = self.known_health() {
            return known;
        }
        let _one_at_a_time = self.login.lock().await;
        // Whoever held the lock may just have logged in, or failed to: that answer is ours.
        if let Some(known) = self.known_health() {
            return known;
        }
        self.login_locked().await
    }

    /// Up, or down and not yet due for another login; `None` when a login is due.
    fn known_health(&self) -> Option<Result<()>> {
        match &*self.health.lock().unwrap() {
            Health::Up => Some(Ok(())),
            Health::Down { reason, at } if at.elapsed() < RETRY_AFTER => Some(Err(self.down_error(reason.clone()))),
            Health::Unknown | Health::Down { .. } => None,
        }
    }

    /// The quota for `statfs`, at once: never a login, never a wait on a storage that is not
    /// up (it answers what it last knew). A value older than [`QUOTA_TTL`] is answered and
    /// refreshed in the background; only the first one is waited for.
    pub async fn quota(self: &Arc<Self>) -> Option<Quota> {
        let (last, asked) = *self.quota.lock().unwrap();
        let up = matches!(*self.health.lock().unwrap(), Health::Up);
        if !up || asked.is_some_and(|at| at.elapsed() < QUOTA_TTL) {
            return last;
        }
        if self.quota_refreshing.swap(true, Ordering::SeqCst) {
            return last;
        }
        // A task of its own, so a caller that goes away does not leave the refresh half done.
        let this = self.clone();
        let refresh = tokio::spawn(async move { this.refresh_quota().await });
        if asked.is_none() {
            let _ = refresh.await;
            return self.quota.lock().unwrap().0;
        }
        last
    }

    /// Ask the driver for the quota; a failure keeps the last value until the next try.
    async fn refresh_quota(&self) {
        let result = self.checked(self.driver.quota().await);
        {
            let mut quota = self.quota.lock().unwrap();
            match result {
                Ok(q) => *quota = (q, Some(Instant::now())),
                Err(err) => {
                    tracing::debug!(storage = %self.path, error = %err, "quota unavailable; keeping the last one");
                    quota.1 = Some(Instant::now());
                }
            }
        }
        self.quota_refreshing.store(false, Ordering::SeqCst);
    }

    /// A listing failed with `err` and the last good one is served instead: a warning the
    /// first time in an outage, then silence until [`Storage::listed`].
    pub(super) fn serving_stale(&self, err: &Error) {
        if !self.stale.swap(true, Ordering::Relaxed) {
            tracing::warn!(storage = %self.path, error = %err, "cannot list; serving the last good listings until listing works again");
        } else {
            tracing::debug!(storage = %self.path, error = %err, "cannot list; serving the last good listing");
        }
    }

    /// A listing succeeded: the end of an outage, if there was one.
    pub(super) fn listed(&self) {
        if self.stale.swap(false, Ordering::Relaxed) {
            tracing::info!(storage = %self.path, "listing works again");
        }
    }

    pub fn down_reason(&self) -> Option<String> {
        match &*self.health.lock().unwrap() {
            Health::Down { reason, .. } => Some(reason.clone()),
            _ => None,
        }
    }

    fn down_error(&self, reason: String) -> Error {
        Error::StorageDown { path: self.path.clone(), reason }
    }
}
