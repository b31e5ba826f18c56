//! The simulator's own check of the 123pan request signature (pan123-protocol.md §1.4) and
//! its own RFC 3339 writer. Written apart from the driver's `sign.rs` on purpose: a bug there
//! must fail a test, not be mirrored here. CRC-32 comes from `crc32fast`, as the driver's does:
//! a checksum crate is not where a signature bug would hide.

/// Civil date of a day number (days since 1970-01-01), by walking years and months.
fn civil(mut days: i64) -> (i64, u32, u32) {
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut year = 1970;
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < 0 {
            year -= 1;
            days += if leap(year) { 366 } else { 365 };
        } else if days >= len {
            days -= len;
            year += 1;
        } else {
            break;
        }
    }
    let months = [31, if leap(year) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 0;
    while days >= months[month] {
        days -= months[month];
        month += 1;
    }
    (year, month as u32 + 1, days as u32 + 1)
}

/// `YYYY-MM-DDThh:mm:ss+08:00`, the form the service's `UpdateAt` is believed to take.
pub fn rfc3339_cst(unix: i64) -> String {
    let local = unix + 8 * 3600;
    let (y, m, d) = civil(local.div_euclid(86_400));
    let s = local.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+08:00", s / 3600, s / 60 % 60, s % 60)
}

fn time_key(ts: i64) -> u32 {
    let local = ts + 8 * 3600;
    let (y, m, d) = civil(local.div_euclid(86_400));
    let s = local.rem_euclid(86_400);
    let digits = format!("{y:04}{m:02}{d:02}{:02}{:02}", s / 3600, s / 60 % 60);
    let letters: String =
        digits.chars().map(|c| "adefghlmyi".as_bytes()[c.to_digit(10).unwrap_or(0) as usize] as char).collect();
    crc32fast::hash(letters.as_bytes())
}

/// Why a request's signature is refused, or `Ok` when `query` (raw, still encoded) carries a
/// valid one for `path` at the simulator's time `now`, within `window` seconds.
pub fn check(query: &str, path: &str, now: i64, window: i64) -> Result<(), &'static str> {
    let found = url::form_urlencoded::parse(query.as_bytes()).find(|(k, v)| {
        (1..=10).contains(&k.len())
            && k.bytes().all(|b| b.is_ascii_digit())
            && v.split('-').count() == 3
            && v.split('-').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    let Some((key, value)) = found else { return Err("no signature parameter") };
    let parts: Vec<&str> = value.split('-').collect();
    let ts: i64 = parts[0].parse().map_err(|_| "bad timestamp")?;
    if (ts - now).abs() > window {
        return Err("timestamp outside the window");
    }
    let expected_key = time_key(ts);
    if key != expected_key.to_string() {
        return Err("time sign mismatch");
    }
    let data = format!("{ts}|{}|{path}|web|3|{expected_key}", parts[1]);
    if parts[2] != crc32fast::hash(data.as_bytes()).to_string() {
        return Err("data sign mismatch");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors() {
        let q = "883022862=1700000000-1234567-226109213&Page=1";
        assert_eq!(check(q, "/b/api/file/list/new", 1_700_000_000, 600), Ok(()));
        assert_eq!(check(q, "/b/api/user/info", 1_700_000_000, 600), Err("data sign mismatch"));
        assert_eq!(check(q, "/b/api/file/list/new", 1_700_000_000 + 601, 600), Err("timestamp outside the window"));
        assert_eq!(
            check("1294326717=1706456012-698362-1546373521", "/a/api/share/download/info", 1_706_456_012, 0),
            Ok(())
        );
        assert_eq!(check("883022862=1700000040-0-1", "/b/api/user/info", 1_700_000_040, 9), Err("time sign mismatch"));
        assert!(check("Page=1", "/b/api/user/info", 0, 9).is_err());
    }

    #[test]
    fn update_at() {
        assert_eq!(rfc3339_cst(1_700_000_000), "2023-11-15T06:13:20+08:00");
        assert_eq!(rfc3339_cst(0), "1970-01-01T08:00:00+08:00");
    }
}
