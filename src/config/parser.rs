//! The walk over the span-keeping TOML document: one method per table, each error with the
//! line of the key or value it is about. See the parent module's doc for the rules.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::values::{env_name, expand_env, is_inside, normalize_storage_path, parse_digits, parse_duration};
use super::{
    CacheConfig, Config, ConfigError, FuseConfig, OptionValue, Options, StorageConfig, TrafficPeriod, is_secret,
};
use crate::drivers::DRIVERS;

mod notify;

const TOP_KEYS: &[&str] = &["mountpoint", "state_dir", "fuse", "cache", "storage", "notify"];
const FUSE_KEYS: &[&str] = &["allow_other", "uid", "gid", "umask"];
const CACHE_KEYS: &[&str] = &[
    "dir_cache_time",
    "negative_cache_time",
    "link_expiry_margin",
    "memory_limit_mb",
    "max_read_ahead_mb",
    "kernel_read_ahead_kb",
    "direct_io",
    "connections_per_file",
    "dir",
    "max_size",
];
/// Keys of a `[[storage]]` table that are not the driver's options.
const STORAGE_KEYS: &[&str] = &["path", "driver", "read_only", "traffic_budget", "traffic_period"];
const SIZE_HINT: &str = "a size (bytes as an integer, or a string like \"500M\", \"10GiB\")";
const DURATION_HINT: &str =
    "a duration (whole seconds as an integer, or a string like \"90s\", \"5m\", \"1h30m\", \"500ms\")";

type Key<'i> = Spanned<DeString<'i>>;
type Val<'i> = Spanned<DeValue<'i>>;

pub(super) struct Parser<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
}

impl<'a> Parser<'a> {
    /// 1-based line of a byte offset.
    fn line_at(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1
    }

    fn err(&self, span: Option<Range<usize>>, key: Option<&str>, msg: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: span.map(|s| self.line_at(s.start)),
            key: key.map(str::to_string),
            message: msg.into(),
        }
    }

    pub(super) fn document(&self) -> Result<Config, ConfigError> {
        let root = DeTable::parse(self.text).map_err(|e| {
            let mut err = self.err(e.span(), None, format!("invalid TOML: {}", e.message().trim_end()));
            if let Some(line) = err.line.and_then(|l| self.text.lines().nth(l - 1)) {
                // `umask = 022` is a TOML error (leading zero): say what to write instead.
                let line = line.trim_start();
                if line.starts_with("umask") && line.contains('=') && !line.contains('"') {
                    err.message.push_str("; write the umask as a quoted string, e.g. umask = \"022\"");
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
            notify: Vec::new(),
        };
        let mut storage_key_span = None;
        let mut lines = Vec::new();
        for (k, v) in sorted(root.get_ref()) {
            let name: &str = k.get_ref();
            match name {
                "mountpoint" => config.mountpoint = Some(self.path_value(name, v)?),
                "state_dir" => config.state_dir = Some(self.path_value(name, v)?),
                "fuse" => config.fuse = self.fuse(v)?,
                "cache" => config.cache = self.cache(v)?,
                "storage" => {
                    storage_key_span = Some(k.span());
                    (config.storages, lines) = self.storages(v)?;
                }
                "notify" => config.notify = self.notifies(v)?,
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
        let path_lines: Vec<_> = lines.iter().map(|l| l.path).collect();
        self.check_overlaps(&config.storages, &path_lines)?;
        if config.state_dir.is_none()
            && let Some(n) = config.storages.iter().position(|s| s.traffic_budget.is_some())
        {
            return Err(ConfigError {
                file: self.file.to_path_buf(),
                line: lines[n].traffic_budget,
                key: Some(format!("storage[{}].traffic_budget", n + 1)),
                message: "a traffic budget is counted across restarts in `state_dir`: set `state_dir` at the top of \
                          the config"
                    .into(),
            });
        }
        Ok(config)
    }

    fn unknown(&self, k: &Key<'_>, full_key: &str, what: &str, valid: &[&str]) -> ConfigError {
        self.err(
            Some(k.span()),
            Some(full_key),
            format!("unknown key `{}`; valid {what}: {}", k.get_ref(), valid.join(", ")),
        )
    }

    fn type_err(&self, v: &Val<'_>, key: &str, expected: &str) -> ConfigError {
        self.err(Some(v.span()), Some(key), format!("expected {expected}, found {}", de_type_name(v.get_ref())))
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
            self.err(Some(v.span()), Some(key), format!("expected a non-negative integer no larger than {max}"))
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
                .map_err(|_| self.err(Some(v.span()), Some(key), format!("expected {DURATION_HINT}, found {i}"))),
            DeValue::String(_) => {
                let s = self.string(key, v)?;
                parse_duration(&s)
                    .map_err(|m| self.err(Some(v.span()), Some(key), format!("{m}; expected {DURATION_HINT}")))
            }
            _ => Err(self.type_err(v, key, DURATION_HINT)),
        }
    }

    fn size(&self, key: &str, v: &Val<'_>) -> Result<u64, ConfigError> {
        match v.get_ref() {
            DeValue::Integer(_) => self.uint(key, v, u64::MAX),
            DeValue::String(_) => {
                let s = self.string(key, v)?;
                super::values::parse_size(&s).map_err(|m| self.err(Some(v.span()), Some(key), m))
            }
            _ => Err(self.type_err(v, key, SIZE_HINT)),
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
                    _ => format!("{:o}", i64::from_str_radix(i.as_str(), i.radix()).unwrap_or(0o22)),
                };
                return Err(self.err(
                    Some(v.span()),
                    Some(key),
                    format!(
                        "write the umask as a quoted string of octal digits, e.g. umask = \"{digits:0>3}\" \
                     (an unquoted number is ambiguous)"
                    ),
                ));
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
                format!("expected octal digits between \"000\" and \"777\", e.g. \"022\", found {s:?}"),
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
                "kernel_read_ahead_kb" => cache.kernel_read_ahead_kb = self.uint(&key, v, u32::MAX.into())? as u32,
                "direct_io" => cache.direct_io = self.bool(&key, v)?,
                "connections_per_file" => cache.connections_per_file = self.uint(&key, v, 64)? as u32,
                "dir" => cache.dir = Some(self.path_value(&key, v)?),
                "max_size" => cache.max_size = self.size(&key, v)?,
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

    /// The storages, and the lines of some of their keys (for checks across storages).
    fn storages(&self, v: &Val<'_>) -> Result<(Vec<StorageConfig>, Vec<StorageLines>), ConfigError> {
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.type_err(v, "storage", "an array of tables ([[storage]], with two brackets)"));
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

    fn storage(&self, n: usize, item: &Val<'_>) -> Result<(StorageConfig, StorageLines), ConfigError> {
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
                format!("missing required key `driver`; known drivers: {}", driver_names()),
            ));
        };
        let driver_key = format!("{table_name}.driver");
        let driver = self.string(&driver_key, dv)?;
        let Some((_, valid)) = DRIVERS.iter().find(|(name, _)| *name == driver) else {
            return Err(self.err(
                Some(dv.span()),
                Some(&driver_key),
                format!("unknown driver `{driver}`; known drivers: {}", driver_names()),
            ));
        };

        let Some((_, pv)) = find("path") else {
            return Err(self.err(
                header,
                Some(&format!("{table_name}.path")),
                "missing required key `path` (where the storage appears under the mount point, e.g. \"/pikpak\")",
            ));
        };
        let path_key = format!("{table_name}.path");
        let path = normalize_storage_path(&self.string(&path_key, pv)?)
            .map_err(|m| self.err(Some(pv.span()), Some(&path_key), m))?;

        let mut options = Options {
            file: self.file.to_path_buf(),
            table: table_name.clone(),
            values: BTreeMap::new(),
            inline_secrets: Vec::new(),
        };
        // First which option each key gives (so that `X` with `X_file` is reported before any
        // file is read), then the values.
        let mut given: Vec<(&str, bool, &Key<'_>, &Val<'_>)> = Vec::new();
        for (k, v) in &entries {
            let name: &str = k.get_ref();
            if STORAGE_KEYS.contains(&name) {
                continue;
            }
            let key = format!("{table_name}.{name}");
            let declared = |n: &str| valid.iter().any(|o| o.name == n);
            let (option, from_file) = if declared(name) {
                (name, false)
            } else if let Some(base) = name.strip_suffix("_file").filter(|b| declared(b)) {
                (base, true)
            } else {
                return Err(self.err(
                    Some(k.span()),
                    Some(&key),
                    format!(
                        "unknown option `{name}` for driver {driver}; valid options: {} \
                     (each may also be given as NAME_file); keys of any storage: {}",
                        valid.iter().map(|o| o.name).collect::<Vec<_>>().join(", "),
                        STORAGE_KEYS.join(", ")
                    ),
                ));
            };
            if let Some((_, _, first, _)) = given.iter().find(|(o, ..)| *o == option) {
                return Err(self.err(
                    Some(k.span()),
                    Some(&key),
                    format!("both `{}` and `{name}` are given; use only one", first.get_ref()),
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
            if is_secret(option, &value)
                && !from_file
                && !matches!(v.get_ref(), DeValue::String(raw) if env_name(raw).is_some())
            {
                options.inline_secrets.push(option.to_string());
            }
            options.values.insert(option.to_string(), OptionValue { value, line: Some(self.line_at(k.span().start)) });
        }
        for option in valid.iter() {
            option.check(&options)?;
        }
        let read_only = match find("read_only") {
            Some((_, v)) => self.bool(&format!("{table_name}.read_only"), v)?,
            None => false,
        };
        let traffic_budget = match find("traffic_budget") {
            Some((_, v)) => Some(self.traffic_budget(&format!("{table_name}.traffic_budget"), v)?),
            None => None,
        };
        let traffic_period = match find("traffic_period") {
            Some((_, v)) => self.traffic_period(&format!("{table_name}.traffic_period"), v)?,
            None => TrafficPeriod::default(),
        };
        let lines = StorageLines {
            path: Some(self.line_at(pv.span().start)),
            traffic_budget: find("traffic_budget").map(|(k, _)| self.line_at(k.span().start)),
        };
        Ok((StorageConfig { path, driver, options, read_only, traffic_budget, traffic_period }, lines))
    }

    fn traffic_budget(&self, key: &str, v: &Val<'_>) -> Result<u64, ConfigError> {
        match self.size(key, v)? {
            0 => Err(self.err(
                Some(v.span()),
                Some(key),
                format!("must be more than 0: expected {SIZE_HINT}, or leave the key out for no budget"),
            )),
            n => Ok(n),
        }
    }

    fn traffic_period(&self, key: &str, v: &Val<'_>) -> Result<TrafficPeriod, ConfigError> {
        match self.string(key, v)?.as_str() {
            "month" => Ok(TrafficPeriod::Month),
            "day" => Ok(TrafficPeriod::Day),
            other => Err(self.err(
                Some(v.span()),
                Some(key),
                format!(
                    "unknown period {other:?}; expected \"month\" (from 00:00 UTC on the 1st) or \"day\" \
                     (from 00:00 UTC)"
                ),
            )),
        }
    }

    fn read_option_file(&self, key: &str, v: &Val<'_>, file: &str) -> Result<String, ConfigError> {
        let mut path = PathBuf::from(file);
        if path.is_relative() {
            if let Some(dir) = self.file.parent() {
                path = dir.join(path);
            }
        }
        let bytes = std::fs::read(&path)
            .map_err(|e| self.err(Some(v.span()), Some(key), format!("cannot read file {}: {e}", path.display())))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| self.err(Some(v.span()), Some(key), format!("file {} is not valid UTF-8", path.display())))?;
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

    fn check_overlaps(&self, storages: &[StorageConfig], path_lines: &[Option<usize>]) -> Result<(), ConfigError> {
        for (j, later) in storages.iter().enumerate() {
            for (i, earlier) in storages[..j].iter().enumerate() {
                let (a, b) = (&earlier.path, &later.path);
                let (ni, nj) = (i + 1, j + 1);
                let key = format!("storage[{nj}].path");
                let line = path_lines.get(j).copied().flatten();
                let msg = if a == b {
                    format!("storage[{ni}] and storage[{nj}] both use the path {b}; each storage needs its own path")
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
                return Err(ConfigError { file: self.file.to_path_buf(), line, key: Some(key), message: msg });
            }
        }
        Ok(())
    }
}

/// Lines of a storage's keys that checks across storages report.
struct StorageLines {
    path: Option<usize>,
    traffic_budget: Option<usize>,
}

/// A table's entries in the order they appear in the file (the map itself is sorted by key).
fn sorted<'t, 'i>(t: &'t DeTable<'i>) -> Vec<(&'t Key<'i>, &'t Val<'i>)> {
    let mut v: Vec<_> = t.iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

fn driver_names() -> String {
    DRIVERS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
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

pub(super) fn toml_type_name(v: &toml::Value) -> &'static str {
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
        DeValue::Integer(i) => toml::Value::Integer(i64::from_str_radix(i.as_str(), i.radix()).unwrap_or(i64::MAX)),
        DeValue::Float(f) => toml::Value::Float(f.as_str().parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => toml::Value::Boolean(*b),
        DeValue::Datetime(d) => toml::Value::Datetime(*d),
        DeValue::Array(a) => toml::Value::Array(a.iter().map(|x| to_toml(x.get_ref())).collect()),
        DeValue::Table(t) => {
            toml::Value::Table(t.iter().map(|(k, x)| (k.get_ref().to_string(), to_toml(x.get_ref()))).collect())
        }
    }
}
