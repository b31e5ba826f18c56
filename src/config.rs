//! The config file (TOML) of INTERFACE.md: schema, defaults, `${ENV}` values, `X_file` keys and
//! validation. Every mistake is a [`ConfigError`] naming the file, the key, the line where it is
//! known, and what is wrong; the CLI turns it into exit code 2.
//!
//! How it is read: `toml`'s span-keeping parser (`toml::de::DeTable`) gives every key and value
//! its byte range, so each error can name a line, not just a key. The document is then walked by
//! hand rather than through serde, because serde's errors cannot name our keys the way a user
//! writes them (`storage[2].origin_urls`) and because driver options are only known once the
//! table's `driver` is read (the option names live in [`crate::drivers::DRIVERS`]).
//!
//! Rules worth knowing (INTERFACE.md fixes the first two):
//! - a string that is exactly `${NAME}` is the environment variable `NAME` (an unset variable is
//!   an error, never an empty string: an empty password would only fail later and less clearly);
//! - a driver option `X` may be written `X_file = "/path"`: the file's contents with trailing
//!   newlines removed (a relative path is taken from the config file's folder, so a config and
//!   its secrets can move together). `X_file` may itself be `${NAME}`. Both `X` and `X_file` is
//!   an error, so it is never a guess which one won;
//! - unknown keys are errors everywhere: a misspelt `alow_other` must not be silently ignored;
//! - storages may not overlap: `/a` and `/a/b` would shadow each other's folders, so the only
//!   way to use `path = "/"` is as the only storage;
//! - `umask` is a string of octal digits (`"022"`): TOML refuses `umask = 022` (leading zero)
//!   and reads `umask = 22` as twenty-two, a silent, wrong umask; so integers are refused, and
//!   both get a hint to quote the value;
//! - `${NAME}` works in every string value, not only driver options; integers and booleans
//!   also accept a string (`uid = "${UID}"`, `allow_other = "true"`), since that is all an
//!   environment variable can give.
//!
//! `[cache]` (all optional):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `dir_cache_time` | `"5m"` | how long a folder listing is trusted |
//! | `negative_cache_time` | `"1m"` | how long "no such name" is remembered |
//! | `link_expiry_margin` | `"1m"` | a link is renewed this long before it expires |
//! | `memory_limit_mb` | `128` | memory for cached file blocks (at least 1); the process stays under about twice this |
//! | `max_read_ahead_mb` | `64` | cap of one open file's read-ahead window (at least 1) |
//! | `direct_io` | `true` | reads bypass the kernel's page cache: panmount's read-ahead alone decides what is fetched |
//! | `kernel_read_ahead_kb` | `128` | the mount's `read_ahead_kb` when `direct_io` is off (0 leaves the kernel's) |
//! | `connections_per_file` | `0` | parallel ranged requests per open file (0: the driver's own limit) |
//! | `dir` | none | turns the disk cache on: file blocks are kept here across restarts; so are folder listings (`meta/`, else in `state_dir`) |
//! | `max_size` | `"10G"` | the disk cache's size limit (`"500M"`, `"20G"`, bytes) |
//!
//! `[[storage]]` keys besides the driver's options: `path`, `driver`, `read_only`, and, on any
//! driver, `traffic_budget` (a size, e.g. `"10GiB"`: CDN bytes the storage may download per
//! period; it needs `state_dir`, where the count is kept across restarts) and `traffic_period`
//! (`"month"`, the default, from 00:00 UTC on the 1st; or `"day"`, from 00:00 UTC). See
//! `crate::budget` for what happens at 90% and 100%.
//!
//! Sizes are bytes (`1048576`) or a number with a binary unit: `"500M"`, `"10GiB"`, `"512K"`.
//!
//! `[[notify]]` (optional, repeatable; see `crate::notify`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `kind` | required | `jellyfin`, `emby`, `plex` or `command` |
//! | `url` | required but for `command` | the server's http(s) URL |
//! | `api_key` / `api_key_file` | required for `jellyfin`, `emby` | a secret: `${ENV}` or a file as above |
//! | `token` / `token_file` | required for `plex` | a secret: `${ENV}` or a file as above |
//! | `command` | required for `command` | an array of strings, the program first |
//! | `path_prefix` | the mount point | where the media server sees the mount point |
//!
//! Durations are whole seconds (`90`) or a string of number+unit groups: `"500ms"`, `"90s"`,
//! `"5m"`, `"1h30m"`, `"1d"`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod driver_options;
mod notify;
mod parser;
#[cfg(test)]
mod tests;
mod values;

pub use notify::{NOTIFY_KINDS, NotifyConfig, NotifyTarget};
use parser::{Parser, toml_type_name};
use values::parse_digits;
pub use values::{format_size, normalize_storage_path, parse_duration, parse_size, storage_paths_overlap};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// The key as a user would find it, e.g. `storage[2].origin_urls` or `cache.dir_cache_time`.
    pub key: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub mountpoint: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub fuse: FuseConfig,
    pub cache: CacheConfig,
    pub storages: Vec<StorageConfig>,
    /// `[[notify]]`: whom to tell which folders changed.
    pub notify: Vec<NotifyConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuseConfig {
    pub allow_other: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Permission bits removed from 0777 (dirs) / 0666 (files); `"022"` by default.
    pub umask: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a folder listing is trusted.
    pub dir_cache_time: Duration,
    /// How long "no such name" is remembered.
    pub negative_cache_time: Duration,
    /// Subtracted from a download link's expiry before it is refreshed.
    pub link_expiry_margin: Duration,
    /// Memory for cached file blocks, in MiB.
    pub memory_limit_mb: u64,
    /// Upper bound of one open file's read-ahead window, in MiB.
    pub max_read_ahead_mb: u64,
    /// Written to the mount's `read_ahead_kb` (best effort; 0 leaves the kernel's value).
    pub kernel_read_ahead_kb: u32,
    /// Reads bypass the kernel's page cache and readahead (see `fuse::mount`).
    pub direct_io: bool,
    /// Parallel ranged requests per open file; 0 uses the driver's own limit.
    pub connections_per_file: u32,
    /// Where the disk cache keeps blocks; `None` leaves it off.
    pub dir: Option<PathBuf>,
    /// The disk cache's size limit, in bytes.
    pub max_size: u64,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Absolute, normalised (`/a/b`, or `/`).
    pub path: String,
    pub driver: String,
    pub options: Options,
    /// `read_only = true`: every write gets `EROFS` (shares and links are read-only anyway).
    pub read_only: bool,
    /// `traffic_budget`: CDN bytes this storage may download per period; `None` meters without
    /// a limit (see `crate::budget`).
    pub traffic_budget: Option<u64>,
    /// `traffic_period`: when the count starts again.
    pub traffic_period: TrafficPeriod,
}

/// When a storage's traffic count starts again: 00:00 UTC on the 1st of each month (the
/// default, as 123pan's monthly allowance), or at 00:00 UTC each day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrafficPeriod {
    #[default]
    Month,
    Day,
}

impl TrafficPeriod {
    pub fn name(self) -> &'static str {
        match self {
            TrafficPeriod::Month => "month",
            TrafficPeriod::Day => "day",
        }
    }
}

pub use driver_options::{DriverOption, OptionType, is_access_only, is_secret};

/// One storage's driver options, already resolved (`${ENV}` expanded, `X_file` read into `X`).
/// Its `Debug` leaves out the values that hold a credential ([`is_secret`]).
#[derive(Clone, Default)]
pub struct Options {
    pub file: PathBuf,
    /// `storage[N]`, the prefix of every key in an error.
    pub table: String,
    pub values: BTreeMap<String, OptionValue>,
    /// The options holding a credential ([`is_secret`]) written in the config file itself.
    pub inline_secrets: Vec<String>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values: BTreeMap<&str, String> = self
            .values
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret(k, &v.value) { "<redacted>".to_owned() } else { v.value.to_string() };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("Options")
            .field("file", &self.file)
            .field("table", &self.table)
            .field("values", &values)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct OptionValue {
    pub value: toml::Value,
    pub line: Option<usize>,
}

impl Options {
    /// An error about `key` (line and table filled in).
    ///
    /// Drivers use this for their own checks, e.g.
    /// `options.error("valid_duration", "must be at least 1 (minutes)")`.
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.values.get(key).and_then(|v| v.line),
            key: Some(format!("{}.{key}", self.table)),
            message: message.into(),
        }
    }

    fn get(&self, key: &str) -> Option<&toml::Value> {
        self.values.get(key).map(|v| &v.value)
    }

    fn type_error(&self, key: &str, expected: &str) -> ConfigError {
        let found = self.get(key).map(toml_type_name).unwrap_or("nothing");
        self.error(key, format!("expected {expected}, found {found}"))
    }

    /// A string option; `None` when it is not given. Any other type is an error.
    pub fn str(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.type_error(key, "a string")),
        }
    }

    /// A string option that must be given.
    pub fn require_str(&self, key: &str) -> Result<String, ConfigError> {
        self.str(key)?.ok_or_else(|| self.error(key, "missing required option"))
    }

    /// A boolean option. The strings `"true"` and `"false"` are accepted too, since a
    /// `${NAME}` value is always a string.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(toml::Value::Boolean(b)) => Ok(*b),
            Some(toml::Value::String(s)) if s == "true" => Ok(true),
            Some(toml::Value::String(s)) if s == "false" => Ok(false),
            Some(_) => Err(self.type_error(key, "a boolean (true or false)")),
        }
    }

    /// A non-negative integer option; a string of decimal digits is accepted too (`${NAME}`).
    pub fn u64_or(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(toml::Value::Integer(i)) => {
                u64::try_from(*i).map_err(|_| self.error(key, format!("expected a non-negative integer, found {i}")))
            }
            Some(toml::Value::String(s)) => parse_digits(s)
                .ok_or_else(|| self.error(key, format!("expected a non-negative integer, found the string {s:?}"))),
            Some(_) => Err(self.type_error(key, "a non-negative integer")),
        }
    }

    /// An integer option; a string holding a decimal integer is accepted too (`${NAME}`).
    pub fn i64_or(&self, key: &str, default: i64) -> Result<i64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(toml::Value::Integer(i)) => Ok(*i),
            Some(toml::Value::String(s)) => s
                .parse::<i64>()
                .ok()
                .ok_or_else(|| self.error(key, format!("expected an integer, found the string {s:?}"))),
            Some(_) => Err(self.type_error(key, "an integer")),
        }
    }
}

impl Default for FuseConfig {
    fn default() -> Self {
        FuseConfig { allow_other: false, uid: None, gid: None, umask: 0o022 }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            dir_cache_time: Duration::from_secs(5 * 60),
            negative_cache_time: Duration::from_secs(60),
            link_expiry_margin: Duration::from_secs(60),
            memory_limit_mb: 128,
            max_read_ahead_mb: 64,
            kernel_read_ahead_kb: 128,
            direct_io: true,
            connections_per_file: 0,
            dir: None,
            max_size: 10 << 30,
        }
    }
}

impl Config {
    /// Read and validate the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read the config file: {e}"),
        })?;
        let config = Config::parse(&text, path)?;
        warn_if_shared(&config);
        Ok(config)
    }

    /// Validate config `text`; `file` is only used in errors and to resolve relative `X_file`
    /// paths.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        Parser { file, text }.document()
    }
}

/// One warning when the config file holds a credential itself and other users may read it.
fn warn_if_shared(config: &Config) {
    use std::os::unix::fs::PermissionsExt;
    let storage_secret = config
        .storages
        .iter()
        .find_map(|s| s.options.inline_secrets.first().map(|o| (s.options.table.as_str(), o.as_str())));
    let notify_secret = || {
        let n = config.notify.iter().find(|n| n.inline_secret)?;
        Some((n.table.as_str(), if matches!(n.target, NotifyTarget::Plex { .. }) { "token" } else { "api_key" }))
    };
    let Some((table, option)) = storage_secret.or_else(notify_secret) else {
        return;
    };
    let Ok(meta) = std::fs::metadata(&config.file) else { return };
    if meta.permissions().mode() & 0o044 != 0 {
        let file = config.file.display();
        tracing::warn!(
            "{file}: {table}.{option} is written in the file and other users can read it: run `chmod 600 {file}`, \
             or give it as {option}_file or \"${{ENV}}\""
        );
    }
}
