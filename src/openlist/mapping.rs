//! Which OpenList driver becomes which panmount driver, and which `addition` field becomes
//! which option.
//!
//! The OpenList names were checked against OpenList's `drivers/{pikpak,pikpak_share,123,
//! 123_share,123_link}/meta.go` (json tags; `root_folder_id` comes from `driver.RootID`). The
//! first name of each option is that tag. The other names are not confirmed anywhere: they are
//! panmount's own spelling and Go field names, accepted in case an export was edited by hand or
//! written by an alist fork.

use serde_json::{Map, Value};

/// An option's type, with panmount's default: a value equal to it is left out of the output.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Str(&'static str),
    Bool(bool),
    Int(i64),
}

#[derive(Debug)]
pub struct Opt {
    pub from: &'static [&'static str],
    pub to: &'static str,
    pub kind: Kind,
    /// Passwords, tokens and keys: the output suggests moving them out of the file.
    pub secret: bool,
}

#[derive(Debug)]
pub struct DriverMap {
    pub openlist: &'static str,
    pub panmount: &'static str,
    pub options: &'static [Opt],
    /// Alternatives, each a set of panmount options that must all be given.
    pub needs: &'static [&'static [&'static str]],
}

const fn opt(from: &'static [&'static str], to: &'static str, kind: Kind) -> Opt {
    Opt { from, to, kind, secret: false }
}

const fn secret(from: &'static [&'static str], to: &'static str) -> Opt {
    Opt { from, to, kind: Kind::Str(""), secret: true }
}

const ROOT_EMPTY: Opt = opt(&["root_folder_id"], "root_folder_id", Kind::Str(""));
const ROOT_ZERO: Opt = opt(&["root_folder_id"], "root_folder_id", Kind::Str("0"));
const PLATFORM: Opt = opt(&["platform"], "platform", Kind::Str("web"));
const DEVICE_ID: Opt = opt(&["device_id"], "device_id", Kind::Str(""));
const USERNAME: Opt = opt(&["username"], "username", Kind::Str(""));
const PASSWORD: Opt = secret(&["password"], "password");

pub const DRIVERS: &[DriverMap] = &[
    DriverMap {
        openlist: "PikPak",
        panmount: "pikpak",
        options: &[
            USERNAME,
            PASSWORD,
            secret(&["refresh_token"], "refresh_token"),
            secret(&["captcha_token"], "captcha_token"),
            DEVICE_ID,
            PLATFORM,
            ROOT_EMPTY,
            opt(&["disable_media_link"], "disable_media_link", Kind::Bool(true)),
        ],
        needs: &[&["username", "password"], &["refresh_token"]],
    },
    DriverMap {
        openlist: "PikPakShare",
        panmount: "pikpak_share",
        options: &[
            opt(&["share_id", "ShareId"], "share_id", Kind::Str("")),
            secret(&["share_pwd", "share_password", "SharePwd"], "share_password"),
            ROOT_EMPTY,
            opt(&["use_transcoding_address"], "use_transcoding_address", Kind::Bool(false)),
            PLATFORM,
            DEVICE_ID,
        ],
        needs: &[&["share_id"]],
    },
    DriverMap {
        openlist: "123Pan",
        panmount: "123pan",
        options: &[USERNAME, PASSWORD, ROOT_ZERO, PLATFORM],
        needs: &[&["username", "password"]],
    },
    DriverMap {
        openlist: "123PanShare",
        panmount: "123pan_share",
        options: &[
            opt(&["sharekey", "share_key", "ShareKey"], "share_key", Kind::Str("")),
            secret(&["sharepassword", "share_password", "SharePwd"], "share_password"),
            ROOT_ZERO,
            secret(&["accesstoken", "access_token", "AccessToken"], "access_token"),
        ],
        needs: &[&["share_key"]],
    },
    DriverMap {
        openlist: "123PanLink",
        panmount: "123pan_link",
        options: &[
            opt(&["origin_urls", "OriginURLs"], "origin_urls", Kind::Str("")),
            secret(&["private_key", "PrivateKey"], "private_key"),
            opt(&["uid", "UID"], "uid", Kind::Int(0)),
            opt(&["valid_duration", "ValidDuration"], "valid_duration", Kind::Int(30)),
        ],
        needs: &[&["origin_urls"]],
    },
];

/// Why an OpenList driver that panmount lacks cannot be carried over, when there is more to
/// say; `driver` is the name in lower case without spaces or punctuation.
pub fn unsupported_hint(driver: &str) -> Option<&'static str> {
    match driver {
        "123open" => Some(
            "panmount does not support 123pan's open platform API (client id and secret); \
             add the account as a 123pan storage with its username and password instead",
        ),
        _ => None,
    }
}

/// One converted storage: panmount options in output order, and what was left behind. No
/// `Debug`: the options hold passwords and keys.
#[derive(Default)]
pub struct Converted {
    pub options: Vec<(&'static str, toml::Value)>,
    pub secrets: Vec<&'static str>,
    /// OpenList options with a value that panmount has no use for.
    pub dropped: Vec<String>,
    /// Values that could not be read (wrong type); the option is left out.
    pub problems: Vec<String>,
}

impl DriverMap {
    /// Map `addition` onto panmount options; `Err` names the required option that is missing.
    pub fn convert(&self, addition: &Map<String, Value>) -> Result<Converted, String> {
        let mut out = Converted::default();
        for opt in self.options {
            let Some((name, value)) = opt.from.iter().find_map(|n| addition.get(*n).map(|v| (*n, v))) else {
                continue;
            };
            match value_of(opt.kind, value) {
                Ok(Some(v)) => {
                    if opt.secret {
                        out.secrets.push(opt.to);
                    }
                    out.options.push((opt.to, v));
                }
                Ok(None) => {}
                Err(expected) => {
                    // Not the value itself: it may be a secret.
                    out.problems.push(format!("`{name}` is {}, not {expected}", super::wire::kind(value)));
                }
            }
        }
        let known = |k: &str| self.options.iter().any(|o| o.from.contains(&k));
        out.dropped = addition.iter().filter(|(k, v)| !known(k) && is_set(v)).map(|(k, _)| k.clone()).collect();
        let given = |k: &&str| out.options.iter().any(|(o, _)| o == k);
        if !self.needs.iter().any(|all| all.iter().all(given)) {
            let name = |to: &&str| match self.options.iter().find(|o| o.to == *to) {
                Some(o) if o.from[0] != *to => format!("{to} (OpenList's {})", o.from[0]),
                _ => to.to_string(),
            };
            let alternatives: Vec<String> =
                self.needs.iter().map(|all| all.iter().map(name).collect::<Vec<_>>().join(" and ")).collect();
            return Err(format!("missing {}", alternatives.join(", or ")));
        }
        Ok(out)
    }
}

/// The TOML value of one option; `None` when it is empty or panmount's default.
fn value_of(kind: Kind, v: &Value) -> Result<Option<toml::Value>, &'static str> {
    let value = match (kind, v) {
        (_, Value::Null) => return Ok(None),
        (Kind::Str(default), Value::String(s)) => {
            (s != default && !s.is_empty()).then(|| toml::Value::String(s.clone()))
        }
        (Kind::Str(default), Value::Number(n)) => {
            let s = n.to_string();
            (s != default).then_some(toml::Value::String(s))
        }
        (Kind::Bool(default), Value::Bool(b)) => (*b != default).then_some(toml::Value::Boolean(*b)),
        (Kind::Bool(default), Value::String(s)) if s == "true" || s == "false" => {
            let b = s == "true";
            (b != default).then_some(toml::Value::Boolean(b))
        }
        (Kind::Int(_), Value::String(s)) if s.is_empty() => None,
        (Kind::Int(default), Value::Number(_) | Value::String(_)) => {
            let n = v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
            let n = n.filter(|n| *n >= 0).ok_or("a non-negative integer")?;
            (n != default).then_some(toml::Value::Integer(n))
        }
        (Kind::Str(_), _) => return Err("a string"),
        (Kind::Bool(_), _) => return Err("true or false"),
        (Kind::Int(_), _) => return Err("an integer"),
    };
    Ok(value)
}

/// Whether an option OpenList has but panmount lacks is worth mentioning.
fn is_set(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false)) && v.as_str() != Some("")
}

/// A comment worth writing next to an option that was carried over (one comment line per line).
pub fn advice(driver: &str, option: &str) -> Option<&'static str> {
    match (driver, option) {
        ("pikpak", "refresh_token") => Some(
            "PikPak replaces the refresh token on every use: run only one of OpenList and\n\
             panmount with it, or drop refresh_token and let panmount log in with the password.",
        ),
        _ => None,
    }
}
