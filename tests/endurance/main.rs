//! Long runs: a soak through link expiries and token refreshes (`soak`), many readers under
//! random faults (`stress`) and `kill -9` of a mount mid-read (`kill9`).
//!
//! Each of them loads both cores on its own; run together they would measure each other, so
//! they take turns ([`one_at_a_time`]) while sharing one test binary.
#![cfg(feature = "sim")]

#[path = "../common/mod.rs"]
mod common;

mod kill9;
mod soak;
mod stress;

/// Held for the whole of each endurance test.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
