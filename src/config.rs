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
//! - `umask` is a string of octal digits (`"022"`): TOML has octal integers (`0o022`), but a
//!   bare `umask = 022` is the decimal 22, which would be a silent, wrong umask, so integers are
//!   refused with a hint to quote the value.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use crate::drivers::DRIVERS;

#[cfg(test)]
mod tests;

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
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Absolute, normalised (`/a/b`, or `/`).
    pub path: String,
    pub driver: String,
    pub options: Options,
}

/// One storage's driver options, already resolved (`${ENV}` expanded, `X_file` read into `X`).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub file: PathBuf,
    /// `storage[N]`, the prefix of every key in an error.
    pub table: String,
    pub values: BTreeMap<String, OptionValue>,
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
        self.str(key)?
            .ok_or_else(|| self.error(key, "missing required option"))
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
            Some(toml::Value::Integer(i)) => u64::try_from(*i).map_err(|_| {
                self.error(key, format!("expected a non-negative integer, found {i}"))
            }),
            Some(toml::Value::String(s)) => parse_digits(s).ok_or_else(|| {
                self.error(
                    key,
                    format!("expected a non-negative integer, found the string {s:?}"),
                )
            }),
            Some(_) => Err(self.type_error(key, "a non-negative integer")),
        }
    }

    /// An integer option; a string holding a decimal integer is accepted too (`${NAME}`).
    pub fn i64_or(&self, key: &str, default: i64) -> Result<i64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(toml::Value::Integer(i)) => Ok(*i),
            Some(toml::Value::String(s)) => s.parse::<i64>().ok().ok_or_else(|| {
                self.error(key, format!("expected an integer, found the string {s:?}"))
            }),
            Some(_) => Err(self.type_error(key, "an integer")),
        }
    }
}

impl Default for FuseConfig {
    fn default() -> Self {
        FuseConfig {
            allow_other: false,
            uid: None,
            gid: None,
            umask: 0o022,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            dir_cache_time: Duration::from_secs(5 * 60),
            negative_cache_time: Duration::from_secs(60),
            link_expiry_margin: Duration::from_secs(60),
            memory_limit_mb: 256,
            max_read_ahead_mb: 64,
            kernel_read_ahead_kb: 1024,
        }
    }
}

const TOP_KEYS: &[&str] = &["mountpoint", "state_dir", "fuse", "cache", "storage"];
const FUSE_KEYS: &[&str] = &["allow_other", "uid", "gid", "umask"];
const CACHE_KEYS: &[&str] = &[
    "dir_cache_time",
    "negative_cache_time",
    "link_expiry_margin",
    "memory_limit_mb",
    "max_read_ahead_mb",
    "kernel_read_ahead_kb",
];
const DURATION_HINT: &str = "a duration (whole seconds as an integer, or a string like \"90s\", \"5m\", \"1h30m\", \"500ms\")";

impl Config {
    /// Read and validate the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read the config file: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Validate config `text`; `file` is only used in errors and to resolve relative `X_file`
    /// paths.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        Parser { file, text }.document()
    }
}

type Key<'i> = Spanned<DeString<'i>>;
type Val<'i> = Spanned<DeValue<'i>>;

struct Parser<'a> {
    file: &'a Path,
    text: &'a str,
}

impl<'a> Parser<'a> {
    /// 1-based line of a byte offset.
    fn line_at(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err(
        &self,
        span: Option<Range<usize>>,
        key: Option<&str>,
        msg: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: span.map(|s| self.line_at(s.start)),
            key: key.map(str::to_string),
            message: msg.into(),
        }
    }

    fn document(&self) -> Result<Config, ConfigError> {
        let root = DeTable::parse(self.text).map_err(|e| {
            let mut err = self.err(
                e.span(),
                None,
                format!("invalid TOML: {}", e.message().trim_end()),
            );
            if let Some(line) = err.line.and_then(|l| self.text.lines().nth(l - 1)) {
                // `umask = 022` is a TOML error (leading zero): say what to write instead.
                let line = line.trim_start();
                if line.starts_with("umask") && line.contains('=') && !line.contains('"') {
                    err.message
                        .push_str("; write the umask as a quoted string, e.g. umask = \"022\"");
                }
            }
            err
        })?;
        let mut config = Config {
            file: self.file.to_path_buf(),
            mountpoint: None,
            state_dir: None,
            fuse: FuseConfig::default(),
            cache: CacheConfig::default(),
            storages: Vec::new(),
        };
        let mut storage_key_span = None;
        let mut path_lines = Vec::new();
        for (k, v) in sorted(root.get_ref()) {
            let name: &str = k.get_ref();
            match name {
                "mountpoint" => config.mountpoint = Some(self.path_value(name, v)?),
                "state_dir" => config.state_dir = Some(self.path_value(name, v)?),
                "fuse" => config.fuse = self.fuse(v)?,
                "cache" => config.cache = self.cache(v)?,
                "storage" => {
                    storage_key_span = Some(k.span());
                    (config.storages, path_lines) = self.storages(v)?;
                }
                _ => return Err(self.unknown(k, name, "top-level keys", TOP_KEYS)),
            }
        }
        if config.storages.is_empty() {
            return Err(self.err(
                storage_key_span,
                Some("storage"),
                "no storage configured: add at least one [[storage]] table with `path` and `driver`",
            ));
        }
        self.check_overlaps(&config.storages, &path_lines)?;
        Ok(config)
    }

    fn unknown(&self, k: &Key<'_>, full_key: &str, what: &str, valid: &[&str]) -> ConfigError {
        self.err(
            Some(k.span()),
            Some(full_key),
            format!(
                "unknown key `{}`; valid {what}: {}",
                k.get_ref(),
                valid.join(", ")
            ),
        )
    }

    fn type_err(&self, v: &Val<'_>, key: &str, expected: &str) -> ConfigError {
        self.err(
            Some(v.span()),
            Some(key),
            format!("expected {expected}, found {}", de_type_name(v.get_ref())),
        )
    }

    /// A string value with `${NAME}` expanded.
    fn string(&self, key: &str, v: &Val<'_>) -> Result<String, ConfigError> {
        match v.get_ref() {
            DeValue::String(s) => expand_env(s).map_err(|m| self.err(Some(v.span()), Some(key), m)),
            _ => Err(self.type_err(v, key, "a string")),
        }
    }

    fn path_value(&self, key: &str, v: &Val<'_>) -> Result<PathBuf, ConfigError> {
        let s = self.string(key, v)?;
        if s.is_empty() {
            return Err(self.err(Some(v.span()), Some(key), "must not be empty"));
        }
        Ok(PathBuf::from(s))
    }

    fn table<'v, 'i>(&self, key: &str, v: &'v Val<'i>) -> Result<&'v DeTable<'i>, ConfigError> {
        match v.get_ref() {
            DeValue::Table(t) => Ok(t),
            _ => Err(self.type_err(v, key, &format!("a table ([{key}])"))),
        }
    }

    /// An integer, or a string of digits (so that `${NAME}` works), at most `max`.
    fn uint(&self, key: &str, v: &Val<'_>, max: u64) -> Result<u64, ConfigError> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix()).ok(),
            DeValue::String(_) => parse_digits(&self.string(key, v)?),
            _ => return Err(self.type_err(v, key, "a non-negative integer")),
        };
        n.filter(|&n| n <= max).ok_or_else(|| {
            self.err(
                Some(v.span()),
                Some(key),
                format!("expected a non-negative integer no larger than {max}"),
            )
        })
    }

    fn bool(&self, key: &str, v: &Val<'_>) -> Result<bool, ConfigError> {
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            DeValue::String(_) => match self.string(key, v)?.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(self.type_err(v, key, "a boolean (true or false)")),
            },
            _ => Err(self.type_err(v, key, "a boolean (true or false)")),
        }
    }

    fn duration(&self, key: &str, v: &Val<'_>) -> Result<Duration, ConfigError> {
        match v.get_ref() {
            DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix())
                .map(Duration::from_secs)
                .map_err(|_| {
                    self.err(
                        Some(v.span()),
                        Some(key),
                        format!("expected {DURATION_HINT}, found {i}"),
                    )
                }),
            DeValue::String(_) => {
                let s = self.string(key, v)?;
                parse_duration(&s).map_err(|m| {
                    self.err(
                        Some(v.span()),
                        Some(key),
                        format!("{m}; expected {DURATION_HINT}"),
                    )
                })
            }
            _ => Err(self.type_err(v, key, DURATION_HINT)),
        }
    }

    fn fuse(&self, v: &Val<'_>) -> Result<FuseConfig, ConfigError> {
        let mut fuse = FuseConfig::default();
        for (k, v) in sorted(self.table("fuse", v)?) {
            let name: &str = k.get_ref();
            let key = format!("fuse.{name}");
            match name {
                "allow_other" => fuse.allow_other = self.bool(&key, v)?,
                "uid" => fuse.uid = Some(self.uint(&key, v, u32::MAX.into())? as u32),
                "gid" => fuse.gid = Some(self.uint(&key, v, u32::MAX.into())? as u32),
                "umask" => fuse.umask = self.umask(&key, v)?,
                _ => return Err(self.unknown(k, &key, "keys in [fuse]", FUSE_KEYS)),
            }
        }
        Ok(fuse)
    }

    fn umask(&self, key: &str, v: &Val<'_>) -> Result<u32, ConfigError> {
        let s = match v.get_ref() {
            DeValue::Integer(i) => {
                // `umask = 022` is the decimal 22 in TOML; `0o022` is fine but rare. Either way
                // suggest the quoted form with the digits the user most likely meant.
                let digits = match i.radix() {
                    10 => i.as_str().trim_start_matches('+').to_string(),
                    _ => format!(
                        "{:o}",
                        i64::from_str_radix(i.as_str(), i.radix()).unwrap_or(0o22)
                    ),
                };
                return Err(self.err(Some(v.span()), Some(key), format!(
                    "write the umask as a quoted string of octal digits, e.g. umask = \"{digits:0>3}\" \
                     (an unquoted number is ambiguous)"
                )));
            }
            DeValue::String(_) => self.string(key, v)?,
            _ => return Err(self.type_err(v, key, "a string of octal digits, e.g. \"022\"")),
        };
        let digits = s.strip_prefix("0o").unwrap_or(&s);
        match u32::from_str_radix(digits, 8) {
            Ok(m) if !digits.is_empty() && !digits.starts_with('+') && m <= 0o777 => Ok(m),
            _ => Err(self.err(
                Some(v.span()),
                Some(key),
                format!(
                    "expected octal digits between \"000\" and \"777\", e.g. \"022\", found {s:?}"
                ),
            )),
        }
    }

    fn cache(&self, v: &Val<'_>) -> Result<CacheConfig, ConfigError> {
        let mut cache = CacheConfig::default();
        for (k, v) in sorted(self.table("cache", v)?) {
            let name: &str = k.get_ref();
            let key = format!("cache.{name}");
            match name {
                "dir_cache_time" => cache.dir_cache_time = self.duration(&key, v)?,
                "negative_cache_time" => cache.negative_cache_time = self.duration(&key, v)?,
                "link_expiry_margin" => cache.link_expiry_margin = self.duration(&key, v)?,
                "memory_limit_mb" => cache.memory_limit_mb = self.uint_min(&key, v, 1)?,
                "max_read_ahead_mb" => cache.max_read_ahead_mb = self.uint_min(&key, v, 1)?,
                "kernel_read_ahead_kb" => {
                    cache.kernel_read_ahead_kb = self.uint(&key, v, u32::MAX.into())? as u32
                }
                _ => return Err(self.unknown(k, &key, "keys in [cache]", CACHE_KEYS)),
            }
        }
        Ok(cache)
    }

    fn uint_min(&self, key: &str, v: &Val<'_>, min: u64) -> Result<u64, ConfigError> {
        let n = self.uint(key, v, u64::MAX)?;
        if n < min {
            return Err(self.err(Some(v.span()), Some(key), format!("must be at least {min}")));
        }
        Ok(n)
    }

    /// The storages, and the line of each one's `path` (for the overlap check).
    fn storages(
        &self,
        v: &Val<'_>,
    ) -> Result<(Vec<StorageConfig>, Vec<Option<usize>>), ConfigError> {
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.type_err(
                v,
                "storage",
                "an array of tables ([[storage]], with two brackets)",
            ));
        };
        let mut out = Vec::new();
        let mut lines = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let (storage, line) = self.storage(i + 1, item)?;
            out.push(storage);
            lines.push(line);
        }
        Ok((out, lines))
    }

    fn storage(
        &self,
        n: usize,
        item: &Val<'_>,
    ) -> Result<(StorageConfig, Option<usize>), ConfigError> {
        let table_name = format!("storage[{n}]");
        let DeValue::Table(t) = item.get_ref() else {
            return Err(self.type_err(item, &table_name, "a table ([[storage]])"));
        };
        let entries = sorted(t);
        let find = |name: &str| entries.iter().find(|(k, _)| k.get_ref() == name).copied();
        let header = Some(item.span());

        let Some((_, dv)) = find("driver") else {
            return Err(self.err(
                header,
                Some(&format!("{table_name}.driver")),
                format!(
                    "missing required key `driver`; known drivers: {}",
                    driver_names()
                ),
            ));
        };
        let driver_key = format!("{table_name}.driver");
        let driver = self.string(&driver_key, dv)?;
        let Some((_, valid)) = DRIVERS.iter().find(|(name, _)| *name == driver) else {
            return Err(self.err(
                Some(dv.span()),
                Some(&driver_key),
                format!(
                    "unknown driver `{driver}`; known drivers: {}",
                    driver_names()
                ),
            ));
        };

        let Some((_, pv)) = find("path") else {
            return Err(self.err(header, Some(&format!("{table_name}.path")),
                "missing required key `path` (where the storage appears under the mount point, e.g. \"/pikpak\")"));
        };
        let path_key = format!("{table_name}.path");
        let path = normalize_storage_path(&self.string(&path_key, pv)?)
            .map_err(|m| self.err(Some(pv.span()), Some(&path_key), m))?;

        let mut options = Options {
            file: self.file.to_path_buf(),
            table: table_name.clone(),
            values: BTreeMap::new(),
        };
        // First which option each key gives (so that `X` with `X_file` is reported before any
        // file is read), then the values.
        let mut given: Vec<(&str, bool, &Key<'_>, &Val<'_>)> = Vec::new();
        for (k, v) in &entries {
            let name: &str = k.get_ref();
            if name == "path" || name == "driver" {
                continue;
            }
            let key = format!("{table_name}.{name}");
            let (option, from_file) = if valid.contains(&name) {
                (name, false)
            } else if let Some(base) = name.strip_suffix("_file").filter(|b| valid.contains(b)) {
                (base, true)
            } else {
                return Err(self.err(
                    Some(k.span()),
                    Some(&key),
                    format!(
                        "unknown option `{name}` for driver {driver}; valid options: {} \
                     (each may also be given as NAME_file)",
                        valid.join(", ")
                    ),
                ));
            };
            if let Some((_, _, first, _)) = given.iter().find(|(o, ..)| *o == option) {
                return Err(self.err(
                    Some(k.span()),
                    Some(&key),
                    format!(
                        "both `{}` and `{name}` are given; use only one",
                        first.get_ref()
                    ),
                ));
            }
            given.push((option, from_file, k, v));
        }
        for (option, from_file, k, v) in given {
            let key = format!("{table_name}.{}", k.get_ref());
            let value = if from_file {
                let file = self.string(&key, v)?;
                toml::Value::String(self.read_option_file(&key, v, &file)?)
            } else {
                match v.get_ref() {
                    DeValue::String(_) => toml::Value::String(self.string(&key, v)?),
                    other => to_toml(other),
                }
            };
            options.values.insert(
                option.to_string(),
                OptionValue {
                    value,
                    line: Some(self.line_at(k.span().start)),
                },
            );
        }
        Ok((
            StorageConfig {
                path,
                driver,
                options,
            },
            Some(self.line_at(pv.span().start)),
        ))
    }

    fn read_option_file(&self, key: &str, v: &Val<'_>, file: &str) -> Result<String, ConfigError> {
        let mut path = PathBuf::from(file);
        if path.is_relative() {
            if let Some(dir) = self.file.parent() {
                path = dir.join(path);
            }
        }
        let bytes = std::fs::read(&path).map_err(|e| {
            self.err(
                Some(v.span()),
                Some(key),
                format!("cannot read file {}: {e}", path.display()),
            )
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            self.err(
                Some(v.span()),
                Some(key),
                format!("file {} is not valid UTF-8", path.display()),
            )
        })?;
        let mut s = text.as_str();
        loop {
            if let Some(rest) = s.strip_suffix("\r\n") {
                s = rest;
            } else if let Some(rest) = s.strip_suffix('\n') {
                s = rest;
            } else {
                break;
            }
        }
        Ok(s.to_string())
    }

    fn check_overlaps(
        &self,
        storages: &[StorageConfig],
        path_lines: &[Option<usize>],
    ) -> Result<(), ConfigError> {
        for (j, later) in storages.iter().enumerate() {
            for (i, earlier) in storages[..j].iter().enumerate() {
                let (a, b) = (&earlier.path, &later.path);
                let (ni, nj) = (i + 1, j + 1);
                let key = format!("storage[{nj}].path");
                let line = path_lines.get(j).copied().flatten();
                let msg = if a == b {
                    format!(
                        "storage[{ni}] and storage[{nj}] both use the path {b}; each storage needs its own path"
                    )
                } else if a == "/" || b == "/" {
                    format!(
                        "storage[{ni}] ({a}) and storage[{nj}] ({b}) overlap: a storage at \"/\" must be the only storage"
                    )
                } else if is_inside(b, a) || is_inside(a, b) {
                    let (inner, outer) = if is_inside(b, a) { (b, a) } else { (a, b) };
                    format!(
                        "storage[{ni}] ({a}) and storage[{nj}] ({b}) overlap: {inner} is inside {outer}, which would hide one of them"
                    )
                } else {
                    continue;
                };
                return Err(ConfigError {
                    file: self.file.to_path_buf(),
                    line,
                    key: Some(key),
                    message: msg,
                });
            }
        }
        Ok(())
    }
}

/// Whether `inner` is strictly below `outer` (both normalised, neither `/`).
fn is_inside(inner: &str, outer: &str) -> bool {
    inner.len() > outer.len() && inner.starts_with(outer) && inner.as_bytes()[outer.len()] == b'/'
}

/// A table's entries in the order they appear in the file (the map itself is sorted by key).
fn sorted<'t, 'i>(t: &'t DeTable<'i>) -> Vec<(&'t Key<'i>, &'t Val<'i>)> {
    let mut v: Vec<_> = t.iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

fn driver_names() -> String {
    DRIVERS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `${NAME}` (the whole string) becomes the environment variable NAME; anything else is kept.
fn expand_env(s: &str) -> Result<String, String> {
    let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) else {
        return Ok(s.to_string());
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Ok(s.to_string());
    }
    match std::env::var(name) {
        Ok(v) => Ok(v),
        Err(std::env::VarError::NotPresent) => {
            Err(format!("environment variable {name} is not set"))
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("environment variable {name} is not valid UTF-8"))
        }
    }
}

/// Normalise a storage path: absolute, no repeated or trailing `/`, no `.` or `..` segments.
pub fn normalize_storage_path(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!(
            "the path {p:?} must be absolute (start with \"/\"), e.g. \"/pikpak\""
        ));
    }
    let mut out = String::new();
    for seg in p.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." {
            return Err(format!(
                "the path {p:?} must not contain \".\" or \"..\" segments"
            ));
        }
        if seg.contains('\0') {
            return Err("the path must not contain a NUL character".to_string());
        }
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Parse a duration: whole seconds (`"90"`), or number+unit groups (`"90s"`, `"5m"`, `"1h30m"`,
/// `"500ms"`, `"1d"`). Units: `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Some(secs) = parse_digits(t) {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => n.checked_mul(60).map(Duration::from_secs).ok_or_else(bad)?,
            "h" => n
                .checked_mul(3600)
                .map(Duration::from_secs)
                .ok_or_else(bad)?,
            "d" => n
                .checked_mul(86400)
                .map(Duration::from_secs)
                .ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        total = total.checked_add(d).ok_or_else(bad)?;
    }
    Ok(total)
}

fn de_type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn toml_type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// The plain `toml::Value` of a spanned value (driver options are stored this way).
fn to_toml(v: &DeValue<'_>) -> toml::Value {
    match v {
        DeValue::String(s) => toml::Value::String(s.to_string()),
        DeValue::Integer(i) => {
            toml::Value::Integer(i64::from_str_radix(i.as_str(), i.radix()).unwrap_or(i64::MAX))
        }
        DeValue::Float(f) => toml::Value::Float(f.as_str().parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => toml::Value::Boolean(*b),
        DeValue::Datetime(d) => toml::Value::Datetime(*d),
        DeValue::Array(a) => toml::Value::Array(a.iter().map(|x| to_toml(x.get_ref())).collect()),
        DeValue::Table(t) => toml::Value::Table(
            t.iter()
                .map(|(k, x)| (k.get_ref().to_string(), to_toml(x.get_ref())))
                .collect(),
        ),
    }
}
