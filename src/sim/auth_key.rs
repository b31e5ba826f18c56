//! Verification of 123pan direct-link signatures (`auth_key`), pan123-protocol.md §4.3.
//!
//! Written from the reference text, not from the driver's signer, so that a signer bug fails a
//! test instead of being mirrored. `auth_key=ts-rand-uid-md5`: `ts` is the expiry (Unix seconds,
//! refused once in the past), `uid` must be the configured account, and `md5` is the lowercase hex
//! MD5 of `"{decoded path}-{ts}-{rand}-{uid}-{private key}"`, the path percent-decoded (Go
//! `url.URL.Path`). Numbers must be canonical decimals (what a signer prints); `rand` is any
//! non-empty text without `-`. Reasons for refusal never include the values.

use md5::{Digest, Md5};

use super::CdnAuth;

/// The MD5 part of a 123pan direct-link `auth_key` (pan123-protocol.md §4.3 steps 5-6).
pub fn expected_md5(path: &str, ts: u64, rand: &str, uid: u64, key: &str) -> String {
    let digest = Md5::digest(format!("{path}-{ts}-{rand}-{uid}-{key}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A canonical decimal number (no sign, no leading zero): the form the signer produces.
fn decimal(s: &str) -> Option<u64> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// Check `auth_key` for `decoded_path` at Unix time `now`. `Err` carries a reason for the log
/// (never the key or the values).
pub fn verify_auth_key(
    auth: &CdnAuth,
    decoded_path: &str,
    auth_key: Option<&str>,
    now: u64,
) -> Result<(), &'static str> {
    let auth_key = auth_key.ok_or("missing auth_key")?;
    let parts: Vec<&str> = auth_key.split('-').collect();
    let [ts, rand, uid, md5] = parts[..] else {
        return Err("malformed auth_key");
    };
    let (Some(ts), Some(uid)) = (decimal(ts), decimal(uid)) else {
        return Err("malformed auth_key");
    };
    if rand.is_empty() || md5.len() != 32 {
        return Err("malformed auth_key");
    }
    if uid != auth.uid {
        return Err("uid mismatch");
    }
    if md5 != expected_md5(decoded_path, ts, rand, uid, &auth.private_key) {
        return Err("md5 mismatch");
    }
    if ts < now {
        return Err("expired");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_auth_key_example() {
        // pan123-protocol.md §4.3, worked example 1 (the official documentation's values).
        let md5 = expected_md5("/13/files/1.txt", 1689220731, "123", 13, "289ds32418bxdba");
        assert_eq!(md5, "3bdacc0e031fd67fe829152f37c8fbad");
        // Worked example 2: non-ASCII path, hashed decoded.
        let md5 = expected_md5(
            "/1814435971/movies/测试 video.mp4",
            1750001800,
            "5577006791947779410",
            1814435971,
            "s3cr3tKey",
        );
        assert_eq!(md5, "f73efa6cf51da5d9494afb54119823ef");
    }

    #[test]
    fn auth_key_checks() {
        let auth = CdnAuth { private_key: "289ds32418bxdba".into(), uid: 13 };
        let good = "1689220731-123-13-3bdacc0e031fd67fe829152f37c8fbad";
        let path = "/13/files/1.txt";
        assert_eq!(verify_auth_key(&auth, path, Some(good), 1689220731), Ok(()));
        assert_eq!(verify_auth_key(&auth, path, Some(good), 1689220732), Err("expired"));
        assert_eq!(verify_auth_key(&auth, path, None, 0), Err("missing auth_key"));
        assert_eq!(verify_auth_key(&auth, path, Some("1689220731-123-13"), 0), Err("malformed auth_key"));
        assert_eq!(
            verify_auth_key(&auth, path, Some("01689220731-123-13-3bdacc0e031fd67fe829152f37c8fbad"), 0),
            Err("malformed auth_key")
        );
        assert_eq!(verify_auth_key(&auth, "/13/files/2.txt", Some(good), 0), Err("md5 mismatch"));
        let other_uid = CdnAuth { private_key: auth.private_key.clone(), uid: 14 };
        assert_eq!(verify_auth_key(&other_uid, path, Some(good), 0), Err("uid mismatch"));
        let upper = good.to_uppercase();
        assert_eq!(verify_auth_key(&auth, path, Some(&upper), 0), Err("md5 mismatch"));
    }
}
