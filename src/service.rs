//! systemd integration (`Type=notify`): READY once every storage has logged in and its root
//! is listed (or has failed and said why), STATUS lines saying what the mount is doing, the
//! watchdog pinged from the loop that also watches the FUSE session, STOPPING on shutdown.
//! Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("unmounting")]);
}

fn send(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::debug!(error = %err, "sd_notify failed");
    }
}

/// Pings the watchdog at half its interval, when systemd asked for one (`WatchdogSec=`).
pub struct Watchdog {
    every: Option<Duration>,
    last: Instant,
}

impl Watchdog {
    pub fn from_env() -> Self {
        Watchdog { every: sd_notify::watchdog_enabled().map(|t| t / 2), last: Instant::now() }
    }

    /// Call from a healthy loop; sends `WATCHDOG=1` when due.
    pub fn tick(&mut self) {
        if let Some(every) = self.every {
            if self.last.elapsed() >= every {
                send(&[NotifyState::Watchdog]);
                self.last = Instant::now();
            }
        }
    }
}
