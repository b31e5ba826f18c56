//! Scalar value syntax of the config: durations, sizes, storage paths, `${NAME}`, digit strings.

use std::time::Duration;

pub(super) fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `${NAME}` (the whole string) becomes the environment variable NAME; anything else is kept.
pub(super) fn expand_env(s: &str) -> Result<String, String> {
    let Some(name) = env_name(s) else {
        return Ok(s.to_string());
    };
    match std::env::var(name) {
        Ok(v) => Ok(v),
        Err(std::env::VarError::NotPresent) => Err(format!("environment variable {name} is not set")),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("environment variable {name} is not valid UTF-8")),
    }
}

/// `NAME` when `s` is exactly `${NAME}` (a letter or `_`, then letters, digits, `_`).
pub(super) fn env_name(s: &str) -> Option<&str> {
    let name = s.strip_prefix("${")?.strip_suffix('}')?;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(name)
}

/// Normalise a storage path: absolute, no repeated or trailing `/`, no `.` or `..` segments.
pub fn normalize_storage_path(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("the path {p:?} must be absolute (start with \"/\"), e.g. \"/pikpak\""));
    }
    let mut out = String::new();
    for seg in p.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." {
            return Err(format!("the path {p:?} must not contain \".\" or \"..\" segments"));
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

/// Whether `inner` is strictly below `outer` (both normalised, neither `/`).
pub(super) fn is_inside(inner: &str, outer: &str) -> bool {
    inner.len() > outer.len() && inner.starts_with(outer) && inner.as_bytes()[outer.len()] == b'/'
}

/// Whether two normalised storage paths may not both be used: the same path, one inside the
/// other, or either is `/` (which must be the only storage).
pub fn storage_paths_overlap(a: &str, b: &str) -> bool {
    a == b || a == "/" || b == "/" || is_inside(a, b) || is_inside(b, a)
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
            "h" => n.checked_mul(3600).map(Duration::from_secs).ok_or_else(bad)?,
            "d" => n.checked_mul(86400).map(Duration::from_secs).ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        total = total.checked_add(d).ok_or_else(bad)?;
    }
    Ok(total)
}

/// Parse a size: bytes (`"1048576"`), or a number with a binary unit (`"512K"`, `"500M"`,
/// `"20G"`, `"1T"`; the IEC `KiB`/`MiB`/`GiB`/`TiB` and `KB`/`MB`/`GB`/`TB` mean the same, any
/// case, a space before the unit allowed).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {s:?}; expected bytes or a number with a unit, e.g. \"500M\", \"10GiB\"");
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = t[..digits].parse().map_err(|_| bad())?;
    let unit = t[digits..].trim().to_ascii_uppercase();
    let prefix = unit.strip_suffix("IB").filter(|p| !p.is_empty()).or(unit.strip_suffix('B')).unwrap_or(&unit);
    let shift = match prefix {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1 << shift).ok_or_else(bad)
}

/// A size for people: `1.5 KiB`, `10.0 GiB` (one decimal, binary units; the inverse of
/// [`parse_size`] up to rounding).
pub fn format_size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}
