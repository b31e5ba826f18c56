//! `[[notify]]`: the media servers (or a command) told which folders changed (`crate::notify`).
//! Kept apart from the storages: a hook reads nothing from a drive, and its secret (an API key,
//! a Plex token) is not a driver option.

use std::path::PathBuf;

/// One `[[notify]]` table.
#[derive(Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// `notify[N]`, as errors and logs name it.
    pub table: String,
    pub target: NotifyTarget,
    /// The mount point as the media server sees it; `None`: the mount point itself.
    pub path_prefix: Option<PathBuf>,
    /// The secret is written in the config file itself (not `${ENV}` nor `X_file`).
    pub inline_secret: bool,
}

/// Whom to tell, and with what credential.
#[derive(Clone, PartialEq, Eq)]
pub enum NotifyTarget {
    Jellyfin {
        url: url::Url,
        api_key: String,
    },
    Emby {
        url: url::Url,
        api_key: String,
    },
    Plex {
        url: url::Url,
        token: String,
    },
    /// The program and its first arguments; the changed paths are appended.
    Command {
        argv: Vec<String>,
    },
}

/// The values `kind` takes.
pub const NOTIFY_KINDS: &[&str] = &["jellyfin", "emby", "plex", "command"];

impl NotifyTarget {
    /// The `kind` the table was written with.
    pub fn kind(&self) -> &'static str {
        match self {
            NotifyTarget::Jellyfin { .. } => "jellyfin",
            NotifyTarget::Emby { .. } => "emby",
            NotifyTarget::Plex { .. } => "plex",
            NotifyTarget::Command { .. } => "command",
        }
    }

    /// The server's URL (none for a command).
    pub fn url(&self) -> Option<&url::Url> {
        match self {
            NotifyTarget::Jellyfin { url, .. } | NotifyTarget::Emby { url, .. } | NotifyTarget::Plex { url, .. } => {
                Some(url)
            }
            NotifyTarget::Command { .. } => None,
        }
    }
}

/// Never the key or token: `Debug` output may end in a log.
impl std::fmt::Debug for NotifyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotifyTarget::Command { argv } => f.debug_struct("Command").field("argv", argv).finish(),
            _ => f
                .debug_struct(self.kind())
                .field("url", &self.url().map(url::Url::as_str))
                .field("secret", &"<redacted>")
                .finish(),
        }
    }
}

impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("table", &self.table)
            .field("target", &self.target)
            .field("path_prefix", &self.path_prefix)
            .finish_non_exhaustive()
    }
}
