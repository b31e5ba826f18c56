//! `Range` header interpretation and the HTTP date of `Last-Modified`, as pure functions.
//!
//! One byte range per request (RFC 9110 §14): `bytes=a-b` (an end past the file is clamped),
//! `bytes=a-`, `bytes=-n`. A start at or past the end, `bytes=-0`, or any range of an empty file
//! is unsatisfiable (416). An invalid header (`bytes=10-5`, other units, junk) and **multi-range**
//! requests are ignored, i.e. answered 200 with the full body, as the RFC allows.

/// The answer to a `Range` header for a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// 200 with the whole file (no header, an invalid one, or several ranges).
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// Interpret a `Range` header value (RFC 9110 §14.1.2, one range only; see the module doc).
pub fn parse_range(header: Option<&str>, size: u64) -> RangeSpec {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeSpec::Full;
    };
    if spec.contains(',') {
        return RangeSpec::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeSpec::Full;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) { None } else { s.parse().ok() }
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => RangeSpec::Full,
        (true, false) => match num(last) {
            None => RangeSpec::Full,
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Partial { start: size.saturating_sub(n), end: size - 1 },
        },
        (false, open_end) => {
            let Some(start) = num(first) else {
                return RangeSpec::Full;
            };
            let end = if open_end {
                u64::MAX
            } else {
                match num(last) {
                    Some(end) if end >= start => end,
                    _ => return RangeSpec::Full,
                }
            };
            if start >= size { RangeSpec::Unsatisfiable } else { RangeSpec::Partial { start, end: end.min(size - 1) } }
        }
    }
}

/// An IMF-fixdate (`Tue, 14 Nov 2023 22:13:20 GMT`) for `Last-Modified`.
pub fn http_date(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (year, month, day) = crate::time::civil_from_days(days as i64);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WD[(days % 7) as usize],
        day,
        MON[(month - 1) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_parsing() {
        use RangeSpec::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(parse_range(Some("bytes=0-0"), 10), Partial { start: 0, end: 0 });
        assert_eq!(parse_range(Some("bytes=5-"), 10), Partial { start: 5, end: 9 });
        assert_eq!(parse_range(Some("bytes=-3"), 10), Partial { start: 7, end: 9 });
        assert_eq!(parse_range(Some("bytes=-30"), 10), Partial { start: 0, end: 9 });
        assert_eq!(parse_range(Some("bytes=10-5"), 20), Full);
        assert_eq!(parse_range(Some("bytes=2-100"), 10), Partial { start: 2, end: 9 });
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=10-20"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-5"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=a-b"), 10), Full);
        assert_eq!(parse_range(Some("bytes=+1-2"), 10), Full);
        assert_eq!(parse_range(Some("bytes=-"), 10), Full);
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
