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
    let num = |s: &str| -> Option<i64> { (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())? };
    let b = t.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(&t[0..4])?, num(&t[5..7])?, num(&t[8..10])?);
    let (h, mi, s) = (num(&t[11..13])?, num(&t[14..16])?, num(&t[17..19])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "" => 8 * 3600,
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let secs = num(&o[1..3])? * 3600 + num(&o[4..6])? * 60;
            if o.starts_with('-') { -secs } else { secs }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(days * 86_400 + h * 3600 + mi * 60 + s - offset)
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
        assert_eq!(parse_update_at("2023-13-15T06:13:20Z"), None);
    }
}
