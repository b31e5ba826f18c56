//! What a driver option is, declared once per driver (its `OPTIONS`): the name, the type its
//! value must have, and whether it holds a credential. Everything else derives from that one
//! declaration: the loader's "unknown option" check and type check (both at load, with the
//! line), which values are redacted from `Debug` and count as secrets written inline, and which
//! options the listing store leaves out of its file names (`crate::cache::store`).

/// The type of an option's value. Each is also accepted as a string (a `${NAME}` value is always
/// one), as the matching [`super::Options`] accessor reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionType {
    Text,
    /// A credential: a password, token, key or pass code. Never logged, never hashed into a
    /// file name, and a config file that holds one itself should be private.
    Secret,
    /// A proxy URL: a secret only when it carries a password; not part of what the storage
    /// holds, so not part of the listing store's key either.
    Proxy,
    Flag,
    /// A non-negative integer.
    Count,
    Integer,
}

#[derive(Debug, Clone, Copy)]
pub struct DriverOption {
    pub name: &'static str,
    pub kind: OptionType,
}

pub const fn text(name: &'static str) -> DriverOption {
    DriverOption { name, kind: OptionType::Text }
}
pub const fn secret(name: &'static str) -> DriverOption {
    DriverOption { name, kind: OptionType::Secret }
}
pub const fn flag(name: &'static str) -> DriverOption {
    DriverOption { name, kind: OptionType::Flag }
}
pub const fn count(name: &'static str) -> DriverOption {
    DriverOption { name, kind: OptionType::Count }
}
pub const fn integer(name: &'static str) -> DriverOption {
    DriverOption { name, kind: OptionType::Integer }
}
/// The `proxy` option every driver takes.
pub const PROXY: DriverOption = DriverOption { name: "proxy", kind: OptionType::Proxy };

/// The declared option `name` of any driver. Option names mean one thing across drivers
/// (`password` is a secret wherever it appears), which a test of the declarations checks.
pub fn declared(name: &str) -> Option<DriverOption> {
    crate::drivers::DRIVERS.iter().flat_map(|(_, options)| options.iter()).find(|o| o.name == name).copied()
}

/// Whether `option = value` holds a credential: a [`OptionType::Secret`], or a proxy URL with a
/// password in it (`http://user:pass@host:port`).
pub fn is_secret(option: &str, value: &toml::Value) -> bool {
    match declared(option).map(|o| o.kind) {
        Some(OptionType::Secret) => true,
        Some(OptionType::Proxy) => {
            value.as_str().and_then(|v| url::Url::parse(v).ok()).is_some_and(|u| u.password().is_some())
        }
        _ => false,
    }
}

/// Whether the option says how the cloud is reached or who we are (a secret, the proxy), not
/// what the storage holds: the listing store's key leaves it out.
pub fn is_access_only(option: &str) -> bool {
    matches!(declared(option).map(|o| o.kind), Some(OptionType::Secret | OptionType::Proxy))
}

impl DriverOption {
    /// Check the value's type as the driver will read it, so a mistake is reported at load.
    pub fn check(&self, options: &super::Options) -> Result<(), super::ConfigError> {
        match self.kind {
            OptionType::Text | OptionType::Secret | OptionType::Proxy => options.str(self.name).map(drop),
            OptionType::Flag => options.bool_or(self.name, false).map(drop),
            OptionType::Count => options.u64_or(self.name, 0).map(drop),
            OptionType::Integer => options.i64_or(self.name, 0).map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::DRIVERS;

    #[test]
    fn a_name_has_one_meaning_across_drivers() {
        for (driver, options) in DRIVERS {
            for option in *options {
                let first = declared(option.name).unwrap();
                assert_eq!(first.kind, option.kind, "{driver}.{} is declared two ways", option.name);
            }
        }
    }

    #[test]
    fn credentials_are_secrets_and_the_proxy_only_with_a_password() {
        let s = |v: &str| toml::Value::String(v.into());
        for name in ["password", "refresh_token", "captcha_token", "private_key", "share_password", "access_token"] {
            assert!(is_secret(name, &s("x")), "{name}");
            assert!(is_access_only(name), "{name}");
        }
        for name in ["username", "root_folder_id", "api_base", "share_id", "uid", "unknown"] {
            assert!(!is_secret(name, &s("x")), "{name}");
            assert!(!is_access_only(name), "{name}");
        }
        assert!(is_secret("proxy", &s("http://u:pw@p:3128")));
        assert!(!is_secret("proxy", &s("socks5h://127.0.0.1:1080")));
        assert!(is_access_only("proxy"));
    }
}
