//! The request signature of 123pan's web API (pan123-protocol.md §1.4), as pure functions.
//!
//! Every `/b/api` call carries one extra query parameter whose *name* is a CRC-32 of the
//! current minute in China Standard Time (UTC+8, fixed offset, no DST) written as
//! `YYYYMMDDhhmm` with each digit replaced by a letter (`0→a 1→d 2→e 3→f 4→g 5→h 6→l 7→m 8→y
//! 9→i`), and whose *value* is `ts-random-crc32(ts|random|path|web|3|timeSign)`. `web` and `3`
//! are hard-coded by the clients whatever the `platform` header says, so they are here too.
//! The algorithm reproduces a third-party capture of the live service (example C below), so
//! it is the one fact of this protocol we can test against reality.
//!
//! CRC-32 is the IEEE/zlib one, from `crc32fast`.

/// Digit-to-letter table of the time sign (the source table has 26 entries; digits use ten).
pub const DIGIT_LETTERS: [u8; 10] = *b"adefghlmyi";

/// China Standard Time, the clock the signature is written in.
const UTC8_SECS: i64 = 8 * 3600;

/// `random` is drawn from `0..=RANDOM_MAX`, as OpenList does (`round(1e7 * U[0,1))`).
pub const RANDOM_MAX: u32 = 10_000_000;

/// Standard CRC-32 (reflected, poly 0xEDB88320, init and xorout 0xFFFFFFFF), as zlib's `crc32`.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// `ts` as `YYYYMMDDhhmm` in UTC+8.
pub fn cst_minute(ts: i64) -> String {
    let local = ts + UTC8_SECS;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = super::time::civil_from_days(days);
    format!("{y:04}{m:02}{d:02}{:02}{:02}", secs / 3600, (secs % 3600) / 60)
}

/// Replace each decimal digit by its letter; anything else is kept.
pub fn digits_to_letters(digits: &str) -> String {
    digits
        .bytes()
        .map(|b| if b.is_ascii_digit() { DIGIT_LETTERS[(b - b'0') as usize] as char } else { b as char })
        .collect()
}

/// The query parameter `(name, value)` for a request to `path` (e.g. `/b/api/file/list/new`,
/// without host or query) at Unix time `ts` with the given `random`.
pub fn sign(path: &str, ts: i64, random: u32) -> (String, String) {
    let time_sign = crc32(digits_to_letters(&cst_minute(ts)).as_bytes());
    let data = format!("{ts}|{random}|{path}|web|3|{time_sign}");
    let data_sign = crc32(data.as_bytes());
    (time_sign.to_string(), format!("{ts}-{random}-{data_sign}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn digit_to_letter_table() {
        assert_eq!(digits_to_letters("0123456789"), "adefghlmyi");
        assert_eq!(digits_to_letters("202311150613"), "eaefdddhaldf");
    }

    #[test]
    fn minute_is_china_standard_time() {
        assert_eq!(cst_minute(1_700_000_000), "202311150613");
        assert_eq!(cst_minute(1_706_456_012), "202401282333");
        // 16:00 UTC is midnight of the next day in UTC+8.
        assert_eq!(cst_minute(1_704_124_800), "202401020000");
    }

    #[test]
    fn example_a_file_list() {
        assert_eq!(crc32(b"eaefdddhaldf"), 883_022_862);
        assert_eq!(
            sign("/b/api/file/list/new", 1_700_000_000, 1_234_567),
            ("883022862".to_string(), "1700000000-1234567-226109213".to_string())
        );
    }

    #[test]
    fn example_b_more_paths_and_the_minute_boundary() {
        for (path, value) in [
            ("/b/api/user/info", "1700000000-1234567-3025781655"),
            ("/b/api/file/download_info", "1700000000-1234567-648672714"),
            ("/b/api/file/upload_request", "1700000000-1234567-1403559015"),
            ("/b/api/share/get", "1700000000-1234567-951341544"),
            ("/b/api/share/download/info", "1700000000-1234567-2224405112"),
        ] {
            assert_eq!(sign(path, 1_700_000_000, 1_234_567), ("883022862".into(), value.into()), "{path}");
        }
        assert_eq!(sign("/b/api/user/info", 1_700_000_039, 0).0, "883022862");
        assert_eq!(sign("/b/api/user/info", 1_700_000_040, 0), ("1135013016".into(), "1700000040-0-1159233043".into()));
    }

    #[test]
    fn example_c_real_world_capture() {
        assert_eq!(digits_to_letters(&cst_minute(1_706_456_012)), "eaegadeyefff");
        assert_eq!(
            sign("/a/api/share/download/info", 1_706_456_012, 698_362),
            ("1294326717".into(), "1706456012-698362-1546373521".into())
        );
    }
}
