//! The client identities PikPak knows (pikpak-protocol.md §3): client id, secret, version,
//! package name, the ordered captcha-sign salt list (§3.2) and the User-Agent (§3.3).
//!
//! The tuple must stay together: a salt list works only with the version it shipped with, and a
//! refresh token only with the client id that obtained it. `web` (2.0.0, as rclone and OpenList
//! use by default) is the default. The values are copied from OpenList's `util.go` via the
//! reference; the salts change with client versions, so they are data, not logic.

use md5::{Digest, Md5};
use sha1::Sha1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Web,
    Android,
    Pc,
}

impl Platform {
    pub fn parse(s: &str) -> Option<Platform> {
        match s {
            "web" => Some(Platform::Web),
            "android" => Some(Platform::Android),
            "pc" => Some(Platform::Pc),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Platform::Web => "web",
            Platform::Android => "android",
            Platform::Pc => "pc",
        }
    }
}

/// One client identity. No secret of the *user* lives here; `client_secret` is the app's
/// public constant, shipped in every PikPak client.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    pub platform: Platform,
    pub client_id: &'static str,
    pub client_secret: &'static str,
    pub client_version: &'static str,
    pub package_name: &'static str,
    pub sdk_version: &'static str,
    pub salts: &'static [&'static str],
    /// Fixed UA for web and pc; android builds its UA per device (see [`Identity::user_agent`]).
    ua: &'static str,
}

/// §3.2, Android 1.53.2 (OpenList `AndroidAlgorithms`).
const ANDROID_SALTS: &[&str] = &[
    "SOP04dGzk0TNO7t7t9ekDbAmx+eq0OI1ovEx",
    "nVBjhYiND4hZ2NCGyV5beamIr7k6ifAsAbl",
    "Ddjpt5B/Cit6EDq2a6cXgxY9lkEIOw4yC1GDF28KrA",
    "VVCogcmSNIVvgV6U+AochorydiSymi68YVNGiz",
    "u5ujk5sM62gpJOsB/1Gu/zsfgfZO",
    "dXYIiBOAHZgzSruaQ2Nhrqc2im",
    "z5jUTBSIpBN9g4qSJGlidNAutX6",
    "KJE2oveZ34du/g1tiimm",
];

/// §3.2, Web 2.0.0 / mypikpak.com (OpenList `WebAlgorithms`, rclone `md5Salt`).
const WEB_SALTS: &[&str] = &[
    "C9qPpZLN8ucRTaTiUMWYS9cQvWOE",
    "+r6CQVxjzJV6LCV",
    "F",
    "pFJRC",
    "9WXYIDGrwTCz2OiVlgZa90qpECPD6olt",
    "/750aCr4lm/Sly/c",
    "RB+DT/gZCrbV",
    "",
    "CyLsf7hdkIRxRm215hl",
    "7xHvLi2tOYP0Y92b",
    "ZGTXXxu8E/MIWaEDB+Sm/",
    "1UI3",
    "E7fP5Pfijd+7K+t6Tg/NhuLq0eEUVChpJSkrKxpO",
    "ihtqpG6FMt65+Xk+tWUH2",
    "NhXXU9rg4XXdzo7u5o",
];

/// §3.2, PC "undefined" / mypikpak.com (OpenList `PCAlgorithms`).
const PC_SALTS: &[&str] = &[
    "KHBJ07an7ROXDoK7Db",
    "G6n399rSWkl7WcQmw5rpQInurc1DkLmLJqE",
    "JZD1A3M4x+jBFN62hkr7VDhkkZxb9g3rWqRZqFAAb",
    "fQnw/AmSlbbI91Ik15gpddGgyU7U",
    "/Dv9JdPYSj3sHiWjouR95NTQff",
    "yGx2zuTjbWENZqecNI+edrQgqmZKP",
    "ljrbSzdHLwbqcRn",
    "lSHAsqCkGDGxQqqwrVu",
    "TsWXI81fD1",
    "vk7hBjawK/rOSrSWajtbMk95nfgf3",
];

pub const WEB: Identity = Identity {
    platform: Platform::Web,
    client_id: "YUMx5nI8ZU8Ap8pm",
    client_secret: "dbw2OtmVEeuUvIptb1Coyg",
    client_version: "2.0.0",
    package_name: "mypikpak.com",
    sdk_version: "8.0.3",
    salts: WEB_SALTS,
    ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/117.0.0.0 Safari/537.36",
};

pub const ANDROID: Identity = Identity {
    platform: Platform::Android,
    client_id: "YNxT9w7GMdWvEOKa",
    client_secret: "dbw2OtmVEeuUvIptb1Coyg",
    client_version: "1.53.2",
    package_name: "com.pikcloud.pikpak",
    sdk_version: "2.0.6.206003",
    salts: ANDROID_SALTS,
    ua: "",
};

pub const PC: Identity = Identity {
    platform: Platform::Pc,
    client_id: "YvtoWO6GNHiuCl7x",
    client_secret: "1NIH5R1IEe2pAxZE3hv3uA",
    // The literal string: the PC app (2.6.11.4955) reports no version here.
    client_version: "undefined",
    package_name: "mypikpak.com",
    sdk_version: "8.0.3",
    salts: PC_SALTS,
    ua: "MainWindow Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) PikPak/2.6.11.4955 Chrome/100.0.4896.160 Electron/18.3.15 Safari/537.36",
};

impl Identity {
    pub fn of(platform: Platform) -> Identity {
        match platform {
            Platform::Web => WEB,
            Platform::Android => ANDROID,
            Platform::Pc => PC,
        }
    }

    /// The User-Agent for `device_id` (and the user id once known, for android's `usrno/`).
    pub fn user_agent(&self, device_id: &str, user_id: &str, now_ms: u64) -> String {
        if self.platform != Platform::Android {
            return self.ua.to_owned();
        }
        let app = self.package_name;
        let v = self.client_version;
        let segments = [
            format!("ANDROID-{app}/{v}"),
            "protocolVersion/200".into(),
            "accesstype/".into(),
            format!("clientid/{}", self.client_id),
            format!("clientversion/{v}"),
            "action_type/".into(),
            "networktype/WIFI".into(),
            "sessionid/".into(),
            format!("deviceid/{device_id}"),
            "providername/NONE".into(),
            format!("devicesign/{}", device_sign(device_id, app)),
            "refresh_token/".into(),
            format!("sdkversion/{}", self.sdk_version),
            format!("datetime/{now_ms}"),
            format!("usrno/{user_id}"),
            format!("appname/android-{app}"),
            "session_origin/".into(),
            "grant_type/".into(),
            "appid/".into(),
            "clientip/".into(),
            "devicename/Xiaomi_M2004j7ac".into(),
            "osversion/13".into(),
            "platformversion/10".into(),
            "accessmode/".into(),
            "devicemodel/M2004J7AC".into(),
        ];
        // Each segment is followed by one space, so the string ends with a space (§3.3).
        segments.iter().map(|s| format!("{s} ")).collect()
    }
}

/// §3.5: `"div101." + device_id + md5_hex(sha1_hex(device_id + package + "1" + "appkey"))`.
pub fn device_sign(device_id: &str, package_name: &str) -> String {
    let sha = hex(&Sha1::digest(format!("{device_id}{package_name}1appkey").as_bytes()));
    format!("div101.{device_id}{}", hex(&Md5::digest(sha.as_bytes())))
}

/// 32 lowercase hex characters, random (§3.4: the server does not check how it was derived).
pub fn new_device_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn md5_hex(s: &str) -> String {
    hex(&Md5::digest(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_match_the_reference_table() {
        assert_eq!(
            (WEB.client_id, WEB.client_version, WEB.package_name),
            ("YUMx5nI8ZU8Ap8pm", "2.0.0", "mypikpak.com")
        );
        assert_eq!((ANDROID.client_id, ANDROID.client_version), ("YNxT9w7GMdWvEOKa", "1.53.2"));
        assert_eq!(
            (PC.client_id, PC.client_secret, PC.client_version),
            ("YvtoWO6GNHiuCl7x", "1NIH5R1IEe2pAxZE3hv3uA", "undefined")
        );
        assert_eq!((WEB.salts.len(), ANDROID.salts.len(), PC.salts.len()), (15, 8, 10));
        assert_eq!(WEB.salts[7], "", "the empty salt still counts as a round");
        assert_eq!(Platform::parse("android"), Some(Platform::Android));
        assert_eq!(Platform::parse("ios"), None);
    }

    #[test]
    fn device_sign_matches_an_independent_computation() {
        // Computed with python3 hashlib from §3.5's description:
        // md5(sha1(dev + "com.pikcloud.pikpak" + "1" + "appkey").hexdigest()).hexdigest()
        let dev = "0f3c9a8e5b7d41c2a6e4b1d9c8f7a2e5";
        assert_eq!(
            device_sign(dev, "com.pikcloud.pikpak"),
            "div101.0f3c9a8e5b7d41c2a6e4b1d9c8f7a2e594573197cc7763137995e60e204ead49"
        );
    }

    #[test]
    fn android_user_agent_has_25_segments_and_ends_with_a_space() {
        let ua = ANDROID.user_agent("0f3c9a8e5b7d41c2a6e4b1d9c8f7a2e5", "U1", 1_767_225_600_123);
        assert!(ua.ends_with("devicemodel/M2004J7AC "));
        assert_eq!(ua.split(' ').filter(|s| !s.is_empty()).count(), 25);
        assert!(ua.starts_with("ANDROID-com.pikcloud.pikpak/1.53.2 protocolVersion/200 "));
        assert!(ua.contains(" usrno/U1 appname/android-com.pikcloud.pikpak "));
        assert!(WEB.user_agent("d", "", 0).starts_with("Mozilla/5.0"));
        let id = new_device_id();
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}
