//! The config file (TOML) of INTERFACE.md: schema, defaults, `${ENV}` values, `X_file` keys and
//! validation. Every mistake is a [`ConfigError`] naming the file, the key, the line where it is
//! known, and what is wrong; the CLI turns it into exit code 2.
//!
//! API SKETCH: the parsing is being written; these are the types the rest of the program uses.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

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
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.values.get(key).and_then(|v| v.line),
            key: Some(format!("{}.{key}", self.table)),
            message: message.into(),
        }
    }
}
