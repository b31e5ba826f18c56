//! Captcha tokens (pikpak-protocol.md §4): the `captcha_sign` chain and the `meta` of
//! `/v1/shield/captcha/init`.
//!
//! PikPak wants an `X-Captcha-Token` on drive calls and in the signin body. A token is minted
//! for an action (`METHOD:path`); like OpenList and pikpak-kotlin we mint one and keep using it
//! until the server answers error_code 9 `captcha_*`, then mint again for the failing request's
//! action and retry once (§4.6: how strictly the server binds tokens to actions is unsettled, so
//! re-minting for the exact action is the choice that works under both readings).
//!
//! A non-empty `url` in the reply means a human must solve a puzzle; that is an error for the
//! storage, with the URL and what to do in the message.

use serde_json::{Value, json};

use super::identity::{Identity, md5_hex};

/// §4.4: `s = client_id + client_version + package_name + device_id + timestamp`, then for each
/// salt in order `s = md5_hex(s + salt)`; the sign is `"1." + s`.
pub fn captcha_sign(id: &Identity, device_id: &str, timestamp_ms: &str) -> String {
    let mut s = format!("{}{}{}{device_id}{timestamp_ms}", id.client_id, id.client_version, id.package_name);
    for salt in id.salts {
        s = md5_hex(&format!("{s}{salt}"));
    }
    format!("1.{s}")
}

/// §4.2.1: which identity key the login meta carries: `email` for an e-mail address,
/// `phone_number` for 11 to 18 digits (optionally with a leading `+`), else `username`.
pub fn login_meta(username: &str) -> Value {
    let is_email = username.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && username.bytes().all(|b| b.is_ascii_alphanumeric() || b"@._-+".contains(&b))
    });
    let digits = username.trim_start_matches('+');
    let is_phone = (11..=18).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    let key = if is_email {
        "email"
    } else if is_phone {
        "phone_number"
    } else {
        "username"
    };
    json!({ key: username })
}

/// §4.2.2: the signed meta (after login, or anonymous share access with `user_id` "").
pub fn signed_meta(id: &Identity, device_id: &str, user_id: &str, timestamp_ms: u64) -> Value {
    let ts = timestamp_ms.to_string();
    json!({
        "client_version": id.client_version,
        "package_name": id.package_name,
        "user_id": user_id,
        "timestamp": ts,
        "captcha_sign": captcha_sign(id, device_id, &ts),
    })
}

/// §4.3: `METHOD:path`, the path without host, query or fragment.
pub fn action(method: &str, url_or_path: &str) -> String {
    let path = match url_or_path.find("://") {
        Some(i) => {
            let rest = &url_or_path[i + 3..];
            rest.find('/').map_or("/", |j| &rest[j..])
        }
        None => url_or_path,
    };
    let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    format!("{method}:{path}")
}

/// The message for a human-check wall (§4.5 `url`).
pub fn human_check_message(url: &str) -> String {
    format!(
        "PikPak asks for a human check (captcha): open {url} in a browser, solve the puzzle, \
         then put the captcha_token from the page it sends you to into this storage's \
         `captcha_token` option (or configure a `refresh_token`) and start again"
    )
}

#[cfg(test)]
mod tests {
    use super::super::identity::{ANDROID, WEB};
    use super::*;

    #[test]
    fn captcha_sign_matches_an_independent_computation() {
        // Computed independently with python3 hashlib from §4.4's description and the web salt
        // list of §3.2, with the device id and timestamp of the §12 example:
        //   s = "YUMx5nI8ZU8Ap8pm" "2.0.0" "mypikpak.com" "0f3c9a8e5b7d41c2a6e4b1d9c8f7a2e5" "1767225600123"
        //   for salt in salts: s = md5((s + salt).encode()).hexdigest()
        let sign = captcha_sign(&WEB, "0f3c9a8e5b7d41c2a6e4b1d9c8f7a2e5", "1767225600123");
        assert_eq!(sign, "1.a35080e1470553f4b70c3ecaf5b4b08a");
        assert_eq!(sign.len(), 34);
        assert_ne!(captcha_sign(&ANDROID, "0f3c9a8e5b7d41c2a6e4b1d9c8f7a2e5", "1767225600123"), sign);
    }

    #[test]
    fn signed_meta_carries_the_same_timestamp_as_the_sign() {
        let m = signed_meta(&WEB, "dev", "U1", 1_767_225_600_123);
        assert_eq!(m["timestamp"], "1767225600123");
        assert_eq!(m["captcha_sign"], captcha_sign(&WEB, "dev", "1767225600123"));
        assert_eq!(m["user_id"], "U1");
        assert_eq!(m["package_name"], "mypikpak.com");
    }

    #[test]
    fn login_meta_picks_the_identity_key() {
        assert_eq!(login_meta("alice@example.com"), json!({"email": "alice@example.com"}));
        assert_eq!(login_meta("13800138000"), json!({"phone_number": "13800138000"}));
        assert_eq!(login_meta("+8613800138000"), json!({"phone_number": "+8613800138000"}));
        assert_eq!(login_meta("alice"), json!({"username": "alice"}));
        assert_eq!(login_meta("a@b"), json!({"username": "a@b"}));
    }

    #[test]
    fn actions_are_method_and_path() {
        assert_eq!(action("GET", "/drive/v1/files"), "GET:/drive/v1/files");
        assert_eq!(
            action("GET", "https://api-drive.mypikpak.com/drive/v1/files/VF1?_magic=2021"),
            "GET:/drive/v1/files/VF1"
        );
        assert_eq!(action("POST", "http://127.0.0.1:9/drive/v1/files:batchMove"), "POST:/drive/v1/files:batchMove");
    }
}
