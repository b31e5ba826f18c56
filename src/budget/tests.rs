//! The meter with injected time: period boundaries, persistence, thresholds, clamping, and the
//! provider's 5113 mark with its hourly re-check.

use super::*;
use crate::time::parse_datetime;

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 64 << 10;

fn at(text: &str) -> u64 {
    parse_datetime(text, None).unwrap() as u64
}

fn meter(budget: Option<u64>, period: TrafficPeriod, dir: &Path, now: u64) -> Meter {
    Meter::new("/a", budget, period, StateFile::new(Some(dir), "123pan", &["/a"]), now)
}

/// Receive `n` bytes through one request at `now`.
fn fetch(m: &Meter, now: u64, n: u64) -> Result<u64, Error> {
    let mut grant = m.admit_at(now, 0, n, BLOCK)?;
    let got = grant.end();
    grant.received(got);
    Ok(got)
}

#[test]
fn periods_start_at_midnight_utc_and_months_roll_over_into_a_new_year() {
    let month = TrafficPeriod::Month;
    assert_eq!(period_start(month, at("2026-12-07T04:16:59Z")), at("2026-12-01T00:00:00Z"));
    assert_eq!(period_end(month, at("2026-12-01T00:00:00Z")), at("2027-01-01T00:00:00Z"));
    assert_eq!(period_end(month, at("2027-01-01T00:00:00Z")), at("2027-02-01T00:00:00Z"));
    assert_eq!(period_end(month, at("2028-02-01T00:00:00Z")), at("2028-03-01T00:00:00Z"));
    // The last second of a month is in it; the next is the new one.
    assert_eq!(period_start(month, at("2026-12-31T23:59:59Z")), at("2026-12-01T00:00:00Z"));
    assert_eq!(period_start(month, at("2027-01-01T00:00:00Z")), at("2027-01-01T00:00:00Z"));
    // Leap day.
    assert_eq!(period_start(month, at("2028-02-29T12:00:00Z")), at("2028-02-01T00:00:00Z"));

    let day = TrafficPeriod::Day;
    assert_eq!(period_start(day, at("2026-12-31T23:59:59Z")), at("2026-12-31T00:00:00Z"));
    assert_eq!(period_end(day, at("2026-12-31T00:00:00Z")), at("2027-01-01T00:00:00Z"));
    assert_eq!(period_start(day, at("2027-01-01T00:00:00Z")), at("2027-01-01T00:00:00Z"));
}

#[test]
fn a_count_in_a_past_period_resets_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let m = meter(Some(10 * MIB), TrafficPeriod::Month, dir.path(), at("2026-12-31T23:00:00Z"));
    fetch(&m, at("2026-12-31T23:00:00Z"), 10 * MIB).unwrap();
    assert!(m.admit_at(at("2026-12-31T23:59:59Z"), 0, MIB, BLOCK).is_err(), "spent in December");
    // The first request of January starts the count again.
    assert_eq!(fetch(&m, at("2027-01-01T00:00:00Z"), MIB).unwrap(), MIB);
    let usage = m.usage_at(at("2027-01-01T00:00:01Z")).unwrap();
    assert_eq!((usage.used, usage.state, usage.resets), (MIB, State::Normal, at("2027-02-01T00:00:00Z")));
}

#[test]
fn the_count_survives_a_restart_and_a_stale_one_resets() {
    let dir = tempfile::tempdir().unwrap();
    let now = at("2026-12-07T04:00:00Z");
    let m = meter(Some(10 * MIB), TrafficPeriod::Month, dir.path(), now);
    fetch(&m, now, 3 * MIB).unwrap();
    m.save();
    let file = dir.path().join(format!("{}.json", StateFile::key("123pan", &["/a"])));
    let stored: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(stored["used"], 3 * MIB);
    assert_eq!(stored["resets"], "2027-01-01T00:00:00Z");

    // Later the same month: the count is back.
    let again = meter(Some(10 * MIB), TrafficPeriod::Month, dir.path(), at("2026-12-20T00:00:00Z"));
    assert_eq!(again.usage_at(at("2026-12-20T00:00:00Z")).unwrap().used, 3 * MIB);
    // In January it is a new period; with a daily period, a new day.
    let january = meter(Some(10 * MIB), TrafficPeriod::Month, dir.path(), at("2027-01-02T00:00:00Z"));
    assert_eq!(january.usage_at(at("2027-01-02T00:00:00Z")).unwrap().used, 0);
    let daily = meter(Some(10 * MIB), TrafficPeriod::Day, dir.path(), now);
    assert_eq!(daily.usage_at(now).unwrap().used, 0, "a month's count is not a day's");
    // The reset is written at the next save; an unchanged count is not written again.
    january.save();
    let stored: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(stored["used"], 0);
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    january.save();
    assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), modified);
}

#[test]
fn soft_mark_then_spent() {
    let dir = tempfile::tempdir().unwrap();
    let now = at("2026-12-07T04:00:00Z");
    let m = meter(Some(10 * MIB), TrafficPeriod::Month, dir.path(), now);
    assert!(m.read_ahead_allowed());
    fetch(&m, now, 9 * MIB - 1).unwrap();
    assert!(m.read_ahead_allowed(), "just under 90%");
    assert_eq!(m.usage_at(now).unwrap().state, State::Normal);
    fetch(&m, now, 1).unwrap();
    assert!(!m.read_ahead_allowed(), "at 90%");
    assert_eq!(m.usage_at(now).unwrap().state, State::Soft);
    // The rest of the budget is granted, and no more.
    assert_eq!(fetch(&m, now, 5 * MIB).unwrap(), MIB);
    let err = m.admit_at(now, 0, MIB, BLOCK).err().unwrap();
    assert!(matches!(&err, Error::TrafficSpent { path, resets } if path == "/a" && resets == "2027-01-01 00:00 UTC"));
    assert_eq!(err.errno(), libc::EIO);
    assert_eq!(m.usage_at(now).unwrap().state, State::Spent);
    assert!(m.stats_fields().contains(" traffic_used=10485760 traffic_budget=10485760 traffic_state=spent "));
}

#[test]
fn requests_are_clamped_to_what_is_left_plus_a_block() {
    // Rounded up to the end of the block the room ends in; never below the end of the first.
    assert_eq!(clamp_end(0, 100 * BLOCK, 10 * BLOCK, BLOCK), 10 * BLOCK);
    assert_eq!(clamp_end(0, 100 * BLOCK, 10 * BLOCK + 1, BLOCK), 11 * BLOCK);
    assert_eq!(clamp_end(5 * BLOCK + 7, 100 * BLOCK, 1, BLOCK), 6 * BLOCK);
    assert_eq!(clamp_end(5 * BLOCK, 6 * BLOCK - 3, 0, BLOCK), 6 * BLOCK - 3, "the file's end");
    assert_eq!(clamp_end(0, 100, u64::MAX, BLOCK), 100);

    // Requests in flight reserve what they were granted: two at once share what is left.
    let dir = tempfile::tempdir().unwrap();
    let now = at("2026-12-07T04:00:00Z");
    let m = meter(Some(10 * BLOCK), TrafficPeriod::Month, dir.path(), now);
    let mut a = m.admit_at(now, 0, 8 * BLOCK, BLOCK).unwrap();
    assert_eq!(a.end(), 8 * BLOCK);
    let b = m.admit_at(now, 20 * BLOCK, 40 * BLOCK, BLOCK).unwrap();
    assert_eq!(b.end(), 22 * BLOCK);
    let c = m.admit_at(now, 50 * BLOCK, 60 * BLOCK, BLOCK).unwrap();
    assert_eq!(c.end(), 51 * BLOCK, "nothing left unreserved: one block");
    // What a request did not receive goes back when it ends.
    a.received(3 * BLOCK);
    drop((a, b, c));
    let d = m.admit_at(now, 0, 100 * BLOCK, BLOCK).unwrap();
    assert_eq!(d.end(), 7 * BLOCK);
    // Without a budget nothing is clamped.
    let free = meter(None, TrafficPeriod::Month, dir.path(), now);
    assert_eq!(free.admit_at(now, 0, 1 << 40, BLOCK).unwrap().end(), 1 << 40);
    assert!(free.usage_at(now).is_none() && free.stats_fields().is_empty());
}

#[test]
fn the_providers_mark_holds_requests_back_and_rechecks_hourly() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = at("2026-12-07T04:00:00Z");
    let m = meter(None, TrafficPeriod::Month, dir.path(), t0);
    fetch(&m, t0, MIB).unwrap();
    m.provider_refused_at(t0, "123pan code 5113: 流量超限");
    assert!(!m.read_ahead_allowed());
    assert_eq!(m.usage_at(t0).unwrap().state, State::Exhausted);
    assert!(m.admit_at(t0 + 1, 0, MIB, BLOCK).is_err());
    assert!(m.admit_at(t0 + 3599, 0, MIB, BLOCK).is_err());
    // An hour on, one request goes through, and only one.
    assert!(m.admit_at(t0 + 3600, 0, MIB, BLOCK).is_ok());
    assert!(m.admit_at(t0 + 3601, 0, MIB, BLOCK).is_err());
    // It got 5113 again: the next is due an hour after that.
    m.provider_refused_at(t0 + 3602, "123pan code 5113");
    assert!(m.admit_at(t0 + 7200, 0, MIB, BLOCK).is_err());
    assert!(m.admit_at(t0 + 3602 + 3600, 0, MIB, BLOCK).is_ok());
    // This time the provider handed out a link: the mark is gone.
    m.provider_allowed();
    assert!(m.admit_at(t0 + 3602 + 3601, 0, MIB, BLOCK).is_ok());
    assert!(m.read_ahead_allowed());
    assert!(m.usage_at(t0 + 7300).is_none(), "no budget and no mark: nothing to show");
}

#[test]
fn the_mark_persists_ends_with_the_period_and_a_restart_asks_again() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = at("2026-12-31T22:00:00Z");
    let m = meter(None, TrafficPeriod::Month, dir.path(), t0);
    m.provider_refused_at(t0, "123pan code 5113");
    m.save();
    // A restart keeps the mark (stats and check show it) but lets one request ask at once.
    let restarted = meter(None, TrafficPeriod::Month, dir.path(), t0 + 60);
    assert_eq!(restarted.usage_at(t0 + 60).unwrap().state, State::Exhausted);
    assert!(restarted.admit_at(t0 + 60, 0, MIB, BLOCK).is_ok());
    assert!(restarted.admit_at(t0 + 61, 0, MIB, BLOCK).is_err());
    // The mark ends with the period.
    assert!(m.admit_at(at("2027-01-01T00:00:00Z"), 0, MIB, BLOCK).is_ok());
    assert!(m.admit_at(at("2027-01-01T00:00:01Z"), 0, MIB, BLOCK).is_ok());
    // Its end is written once; a storage without a budget writes nothing more after that.
    m.save();
    let file = dir.path().join(format!("{}.json", StateFile::key("123pan", &["/a"])));
    let stored: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(stored["exhausted"], false);
    fetch(&m, at("2027-01-01T00:00:02Z"), MIB).unwrap();
    m.save();
    let stored: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(stored["used"], 0);
}

#[test]
fn two_processes_counting_one_storage_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let now = at("2026-12-07T04:00:00Z");
    let mount = meter(Some(100 * MIB), TrafficPeriod::Month, dir.path(), now);
    let cat = meter(Some(100 * MIB), TrafficPeriod::Month, dir.path(), now);
    fetch(&mount, now, 10 * MIB).unwrap();
    mount.save();
    fetch(&cat, now, 5 * MIB).unwrap();
    cat.save();
    assert_eq!(cat.usage_at(now).unwrap().used, 15 * MIB, "the mount's 10 MiB and its own 5");
    fetch(&mount, now, 3 * MIB).unwrap();
    mount.save();
    assert_eq!(mount.usage_at(now).unwrap().used, 18 * MIB);
    let later = meter(Some(100 * MIB), TrafficPeriod::Month, dir.path(), now);
    assert_eq!(later.usage_at(now).unwrap().used, 18 * MIB);
}
