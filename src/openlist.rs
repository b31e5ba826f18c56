//! `panmount import-openlist`: turn an OpenList (or alist) storage export into `[[storage]]`
//! tables.
//!
//! Why: most panmount users come from OpenList, where their accounts, share keys and link trees
//! already sit. panmount's option names follow OpenList's, but copying by hand is still error
//! prone: the options hide in a JSON document inside a JSON string (`addition`), a few names
//! differ (123PanShare's `sharekey` is `share_key`), OpenList keeps options panmount does not
//! have, and OpenList allows nested mount paths, which panmount refuses.
//!
//! What it promises: every storage of the export either becomes a `[[storage]]` table, or gets
//! a comment in the output and a line on stderr saying why not. The tables together are a valid
//! panmount config (the tests load them). Secrets are copied as given, with a comment suggesting
//! `X_file` or `${ENV}`. The output is written as text rather than serialised from a table
//! because it carries those comments; every value is written by the `toml` crate, so quoting is
//! never hand-made, and text from the export that ends up in a comment is escaped so it cannot
//! end the comment line.
//!
//! Layout: [`wire`] reads the export's shapes, [`mapping`] knows the drivers and options, this
//! file decides per storage and writes the output.

mod mapping;
#[cfg(test)]
mod tests;
mod wire;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::app::AppError;
use crate::config::{ConfigError, normalize_storage_path, storage_paths_overlap};
use mapping::{Converted, DRIVERS, DriverMap};

/// The result of an import: the config text and what the user should know about it.
#[derive(Debug)]
pub struct Import {
    pub toml: String,
    /// One line per skipped storage and per storage that lost something on the way.
    pub notes: Vec<String>,
    pub converted: usize,
    pub total: usize,
    file: PathBuf,
}

/// Read and convert the export at `path`. An unreadable file or one that is not an export is a
/// [`ConfigError`] (exit 2); storages that cannot be converted are notes, not errors.
pub fn convert_file(path: &Path) -> Result<Import, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| export_error(path, format!("cannot read the OpenList export: {e}")))?;
    convert(&bytes, path)
}

/// Convert an export's bytes; `file` is named in errors and in the output's header.
pub fn convert(bytes: &[u8], file: &Path) -> Result<Import, ConfigError> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| export_error(file, format!("not a JSON document: {e}")))?;
    let storages =
        wire::storages(doc).map_err(|m| export_error(file, format!("not an OpenList storage export: {m}")))?;
    let mut import =
        Import { toml: String::new(), notes: Vec::new(), converted: 0, total: storages.len(), file: file.into() };
    import.comment(&format!("panmount storages converted from the OpenList export {}.", file.display()));
    import.comment("Put `mountpoint = \"/mnt/pan\"` (and [fuse], [cache]) above the first [[storage]],");
    import.comment("or pass --mountpoint to `panmount mount`. Keep this file private (chmod 600).");
    let mut taken: Vec<(String, usize)> = Vec::new();
    for (i, raw) in storages.into_iter().enumerate() {
        let n = i + 1;
        match import.storage(n, raw, &taken) {
            Ok(path) => {
                taken.push((path, n));
                import.converted += 1;
            }
            Err((label, why)) => {
                import.toml.push('\n');
                import.comment(&format!("skipped {label}: {why}"));
                import.notes.push(escape(&format!("{label} skipped: {why}")));
            }
        }
    }
    Ok(import)
}

fn export_error(file: &Path, message: String) -> ConfigError {
    ConfigError { file: file.into(), line: None, key: None, message }
}

impl Import {
    /// Print the notes to stderr; fail (exit 1) when nothing was converted.
    pub fn report(&self) -> Result<(), AppError> {
        for note in &self.notes {
            eprintln!("panmount: {note}");
        }
        let (n, total, file) = (self.converted, self.total, self.file.display());
        if n == 0 {
            return Err(AppError::Failed(format!("{file}: none of its {total} storages could be converted")));
        }
        eprintln!("panmount: converted {n} of {total} storages");
        Ok(())
    }

    /// A comment line; the text is escaped so that nothing in it can end the comment.
    fn comment(&mut self, text: &str) {
        let _ = writeln!(self.toml, "# {}", escape(text));
    }

    /// Convert storage number `n` and write its table; `Err` is (its label, why it was skipped).
    fn storage(&mut self, n: usize, raw: Value, taken: &[(String, usize)]) -> Result<String, (String, String)> {
        let field = |k: &str| raw.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
        let label = format!("storage {n} ({}, {})", field("mount_path"), field("driver"));
        let s: wire::Storage = serde_json::from_value(raw).map_err(|e| (label.clone(), e.to_string()))?;
        let skip = |why: String| (label.clone(), why);
        if s.disabled {
            return Err(skip("disabled in OpenList; enable it there and export again to carry it over".into()));
        }
        // Case, spaces and punctuation do not count, as in OpenList's own backup restore.
        let norm = |d: &str| d.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase();
        let map = DRIVERS.iter().find(|d| norm(d.openlist) == norm(&s.driver)).ok_or_else(|| {
            skip(mapping::unsupported_hint(&norm(&s.driver)).map(str::to_string).unwrap_or_else(|| {
                let known: Vec<_> = DRIVERS.iter().map(|d| d.openlist).collect();
                format!("panmount has no driver for OpenList's {}; it converts {}", s.driver, known.join(", "))
            }))
        })?;
        let path = normalize_storage_path(&s.mount_path).map_err(&skip)?;
        if let Some((other, m)) = taken.iter().find(|(p, _)| storage_paths_overlap(p, &path)) {
            return Err(skip(format!(
                "its path overlaps {other} (storage {m}), and panmount storages may not share or nest paths; \
                 add it by hand under another path"
            )));
        }
        let converted = map.convert(&s.addition).map_err(&skip)?;
        self.table(n, &s, map, &path, converted, &label);
        Ok(path)
    }

    fn table(&mut self, n: usize, s: &wire::Storage, map: &DriverMap, path: &str, c: Converted, label: &str) {
        self.toml.push('\n');
        self.comment(&format!("OpenList storage {n}: {} ({})", s.mount_path, s.driver));
        if let Some(remark) = s.remark.as_deref().filter(|r| !r.trim().is_empty()) {
            self.comment(&format!("remark: {remark}"));
        }
        self.toml.push_str("[[storage]]\n");
        let head = [("path", toml::Value::from(path)), ("driver", toml::Value::from(map.panmount))];
        for (key, value) in head.iter().chain(&c.options) {
            let _ = writeln!(self.toml, "{key} = {value}");
        }
        let mut warnings = c.problems.iter().map(|p| format!("left out, unreadable: {p}")).collect::<Vec<_>>();
        for (key, value) in &c.options {
            if value.as_str().is_some_and(|v| v.starts_with("${") && v.ends_with('}')) {
                warnings.push(format!(
                    "`{key}` looks like ${{NAME}}, which panmount reads from the environment variable NAME"
                ));
            }
            for line in mapping::advice(map.panmount, key).iter().flat_map(|a| a.lines()) {
                self.comment(line);
            }
        }
        if let Some(first) = c.secrets.first() {
            self.comment(&format!(
                "Secrets copied as given: {}. To keep them out of this file write",
                c.secrets.join(", ")
            ));
            self.comment(&format!(
                "e.g. {first}_file = \"/etc/panmount/{first}\" or {first} = \"${{PANMOUNT_{}}}\".",
                first.to_uppercase()
            ));
        }
        if !c.dropped.is_empty() {
            warnings.push(format!("not carried over (panmount has no such option): {}", c.dropped.join(", ")));
        }
        for w in warnings {
            self.comment(&w);
            self.notes.push(escape(&format!("{label}: {w}")));
        }
    }
}

/// Control characters (a newline above all) written as escapes, so a value from the export
/// cannot end a comment line or steer a terminal.
fn escape(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}
