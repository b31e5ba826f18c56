//! Calendar arithmetic for the two places 123pan writes times: the signature's UTC+8 minute
//! and the files' `UpdateAt`.
//!
//! `UpdateAt` is RFC 3339 with an offset as far as anyone can tell (Go clients decode it into
//! `time.Time`), but that is inferred, not captured (§7): fractional seconds, a `Z`, a space
//! instead of `T`, no offset (then taken as UTC+8, the service's zone) and plain Unix seconds
//! are all accepted. Anything else gives `None` and the caller shows the epoch.

pub use crate::time::{civil_from_days, days_from_civil};

/// Unix seconds of an `UpdateAt` string (see the module doc for what is accepted).
pub fn parse_update_at(text: &str) -> Option<i64> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    // No zone: UTC+8, the service's own.
    crate::time::parse_datetime(t, Some(8 * 3600))
}

/// `UpdateAt` as the service writes it: RFC 3339 in its zone, UTC+8.
pub fn format_update_at(unix: i64) -> String {
    let local = unix + 8 * 3600;
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let s = local.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+08:00", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-1, 0, 1, 19_675, 20_000, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn update_at_forms() {
        assert_eq!(parse_update_at("2023-11-15T06:13:20+08:00"), Some(1_700_000_000));
        assert_eq!(parse_update_at("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_update_at("2023-11-14T22:13:20.123456Z"), Some(1_700_000_000));
        assert_eq!(parse_update_at("2023-11-14T17:13:20-05:00"), Some(1_700_000_000));
        assert_eq!(parse_update_at("2023-11-15 06:13:20"), Some(1_700_000_000));
        assert_eq!(parse_update_at("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_update_at(""), None);
        assert_eq!(parse_update_at("yesterday"), None);
        assert_eq!(format_update_at(1_700_000_000), "2023-11-15T06:13:20+08:00");
        assert_eq!(parse_update_at(&format_update_at(-1)), Some(-1));
        assert_eq!(parse_update_at("2023-13-15T06:13:20Z"), None);
    }
}
