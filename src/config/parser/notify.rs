//! The walk over `[[notify]]` tables. Which keys a table takes depends on its `kind`, so
//! `kind` is read first; a key of another kind is an error that names the kind's keys.

use std::path::PathBuf;

use toml::de::DeValue;

use super::{Key, Parser, Val, sorted};
use crate::config::ConfigError;
use crate::config::notify::{NOTIFY_KINDS, NotifyConfig, NotifyTarget};
use crate::config::values::{env_name, normalize_storage_path};

const NOTIFY_KEYS: &[&str] =
    &["kind", "url", "api_key", "api_key_file", "token", "token_file", "command", "path_prefix"];

/// The keys of a kind (besides `kind` and `path_prefix`), secrets without their `_file` form.
fn kind_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "jellyfin" | "emby" => &["url", "api_key"],
        "plex" => &["url", "token"],
        _ => &["command"],
    }
}

impl Parser<'_> {
    pub(super) fn notifies(&self, v: &Val<'_>) -> Result<Vec<NotifyConfig>, ConfigError> {
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.type_err(v, "notify", "an array of tables ([[notify]], with two brackets)"));
        };
        items.iter().enumerate().map(|(i, item)| self.notify(i + 1, item)).collect()
    }

    fn notify(&self, n: usize, item: &Val<'_>) -> Result<NotifyConfig, ConfigError> {
        let table = format!("notify[{n}]");
        let DeValue::Table(t) = item.get_ref() else {
            return Err(self.type_err(item, &table, "a table ([[notify]])"));
        };
        let entries = sorted(t);
        let find = |name: &str| entries.iter().find(|(k, _)| k.get_ref() == name).copied();
        let kinds = NOTIFY_KINDS.join(", ");
        let kind_key = format!("{table}.kind");
        let Some((_, kv)) = find("kind") else {
            return Err(self.err(Some(item.span()), Some(&kind_key), format!("missing required key `kind` ({kinds})")));
        };
        let kind = self.string(&kind_key, kv)?;
        if !NOTIFY_KINDS.contains(&kind.as_str()) {
            return Err(self.err(
                Some(kv.span()),
                Some(&kind_key),
                format!("unknown kind `{kind}`; valid kinds: {kinds}"),
            ));
        }
        let own = kind_keys(&kind);
        for (k, _) in &entries {
            let name: &str = k.get_ref();
            let key = format!("{table}.{name}");
            if !NOTIFY_KEYS.contains(&name) {
                return Err(self.unknown(k, &key, "keys in [[notify]]", NOTIFY_KEYS));
            }
            let base = name.strip_suffix("_file").unwrap_or(name);
            if !["kind", "path_prefix"].contains(&name) && !own.contains(&base) {
                let valid = own.iter().map(|o| {
                    if o.starts_with("api_key") || *o == "token" { format!("{o} (or {o}_file)") } else { o.to_string() }
                });
                return Err(self.err(
                    Some(k.span()),
                    Some(&key),
                    format!(
                        "`{name}` does not apply to kind = \"{kind}\"; its keys: kind, {}, path_prefix",
                        valid.collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        let required = |name: &str| {
            self.err(
                Some(item.span()),
                Some(&format!("{table}.{name}")),
                format!("missing required key `{name}` for kind = \"{kind}\""),
            )
        };
        let url = || match find("url") {
            Some((_, v)) => self.http_url(&format!("{table}.url"), v),
            None => Err(required("url")),
        };
        let mut inline_secret = false;
        let mut secret = |name: &str| -> Result<String, ConfigError> {
            let (value, inline) = self.secret(&table, &entries, name)?.ok_or_else(|| required(name))?;
            inline_secret = inline;
            Ok(value)
        };
        let target = match kind.as_str() {
            "jellyfin" => NotifyTarget::Jellyfin { url: url()?, api_key: secret("api_key")? },
            "emby" => NotifyTarget::Emby { url: url()?, api_key: secret("api_key")? },
            "plex" => NotifyTarget::Plex { url: url()?, token: secret("token")? },
            _ => match find("command") {
                Some((_, v)) => NotifyTarget::Command { argv: self.argv(&format!("{table}.command"), v)? },
                None => return Err(required("command")),
            },
        };
        let path_prefix = match find("path_prefix") {
            Some((_, v)) => {
                let key = format!("{table}.path_prefix");
                let prefix = normalize_storage_path(&self.string(&key, v)?)
                    .map_err(|m| self.err(Some(v.span()), Some(&key), m))?;
                Some(PathBuf::from(prefix))
            }
            None => None,
        };
        Ok(NotifyConfig { table, target, path_prefix, inline_secret })
    }

    /// A secret `name`, given as `name` or `name_file` (not both); whether it was written in
    /// the file itself.
    fn secret(
        &self,
        table: &str,
        entries: &[(&Key<'_>, &Val<'_>)],
        name: &str,
    ) -> Result<Option<(String, bool)>, ConfigError> {
        let file_name = format!("{name}_file");
        let plain = entries.iter().find(|(k, _)| k.get_ref() == name);
        let from_file = entries.iter().find(|(k, _)| k.get_ref() == file_name.as_str());
        match (plain, from_file) {
            (Some(_), Some((k, _))) => Err(self.err(
                Some(k.span()),
                Some(&format!("{table}.{file_name}")),
                format!("both `{name}` and `{file_name}` are given; use only one"),
            )),
            (Some((_, v)), None) => {
                let value = self.string(&format!("{table}.{name}"), v)?;
                let inline = !matches!(v.get_ref(), DeValue::String(raw) if env_name(raw).is_some());
                Ok(Some((value, inline)))
            }
            (None, Some((_, v))) => {
                let key = format!("{table}.{file_name}");
                let file = self.string(&key, v)?;
                Ok(Some((self.read_option_file(&key, v, &file)?, false)))
            }
            (None, None) => Ok(None),
        }
    }

    fn http_url(&self, key: &str, v: &Val<'_>) -> Result<url::Url, ConfigError> {
        let text = self.string(key, v)?;
        match url::Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
            _ => Err(self.err(
                Some(v.span()),
                Some(key),
                format!("expected an http(s) URL such as \"http://127.0.0.1:8096\", found {text:?}"),
            )),
        }
    }

    /// A command line: a non-empty array of strings, the program first.
    fn argv(&self, key: &str, v: &Val<'_>) -> Result<Vec<String>, ConfigError> {
        let hint = "an array of strings, the program first (e.g. [\"/usr/local/bin/on-change\"])";
        let DeValue::Array(items) = v.get_ref() else { return Err(self.type_err(v, key, hint)) };
        let argv = items.iter().map(|item| self.string(key, item)).collect::<Result<Vec<_>, _>>()?;
        if argv.first().is_none_or(|program| program.is_empty()) {
            return Err(self.err(Some(v.span()), Some(key), format!("expected {hint}")));
        }
        Ok(argv)
    }
}
