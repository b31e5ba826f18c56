//! `123pan_link`: a tree of user-supplied 123pan direct links (pan123-protocol.md §4).
//!
//! There is no 123pan API here at all: the folder tree comes from the `origin_urls` text (see
//! [`tree`] for the format and where we differ from OpenList), and a download link is the
//! written URL, signed locally with the account's URL-auth key when one is configured (see
//! [`auth_key`]). So `list` never fails for a network reason and `link` costs nothing; the only
//! thing a link can do is expire, which is why it carries `expires_at`.
//!
//! Ids are full paths in the tree (`/Movies/a.mp4`): stable across restarts for an unchanged
//! text, and readable in logs. A file's `version` is a hash of its URL, size and mtime, so
//! editing a line invalidates cached blocks of that file and nothing else.
//!
//! Everything that can be wrong with the text (syntax, impossible folder names, URLs that cannot be
//! signed) is reported when the config is loaded, as an error on `origin_urls` naming the line
//! of the text.

pub mod auth_key;
pub mod tree;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use md5::{Digest, Md5};

use self::tree::{Node, Tree};
use super::{BuildContext, Driver, Entry, Link};
use crate::config::driver_options::{DriverOption, PROXY, count, integer, secret, text};
use crate::config::{ConfigError, Options};
use crate::error::{Error, Result};

pub const OPTIONS: &[DriverOption] =
    &[text("origin_urls"), secret("private_key"), count("uid"), integer("valid_duration"), PROXY];

/// OpenList's default: links valid for 30 minutes.
const DEFAULT_VALID_MINUTES: i64 = 30;

pub struct Pan123Link {
    tree: Tree,
    /// Empty: URLs are used as written, unsigned.
    private_key: String,
    uid: u64,
    valid_duration: Duration,
}

impl Pan123Link {
    pub fn from_options(options: &Options, _ctx: &BuildContext) -> Result<Self, ConfigError> {
        let text = options.require_str("origin_urls")?;
        let private_key = options.str("private_key")?.unwrap_or_default();
        let uid = options.u64_or("uid", 0)?;
        let minutes = options.i64_or("valid_duration", DEFAULT_VALID_MINUTES)?;
        if minutes < 1 {
            return Err(options.error("valid_duration", "must be at least 1 (minutes)"));
        }
        // Accepted for compatibility with OpenList configs and checked for type; the shared HTTP
        // client that fetches these links is built elsewhere.
        let _proxy = options.str("proxy")?;

        let tree = tree::parse(&text, crate::time::unix_now() as i64)
            .map_err(|e| options.error("origin_urls", format!("line {} of origin_urls: {}", e.line, e.message)))?;
        if !private_key.is_empty() {
            // Find unsignable URLs now rather than at the first read.
            for node in tree.files() {
                let url = node.file().expect("files() yields files").url;
                auth_key::sign(&url, &private_key, uid, 0, 0)
                    .map_err(|e| options.error("origin_urls", format!("line {} of origin_urls: {e}", node.line())))?;
            }
        }
        for warning in &tree.warnings {
            tracing::warn!(storage = %options.table, "123pan_link origin_urls {warning}");
        }
        Ok(Pan123Link {
            tree,
            private_key,
            uid,
            valid_duration: Duration::from_secs((minutes as u64).saturating_mul(60)),
        })
    }

    fn entry(node: Node) -> Entry {
        match node.file() {
            None => Entry {
                id: node.path(),
                name: node.name().into_owned(),
                is_dir: true,
                // A folder's size means nothing in a mount (and OpenList's sum is not computed).
                size: Some(0),
                mtime: UNIX_EPOCH,
                version: String::new(),
            },
            Some(f) => {
                let mut h = Md5::new();
                h.update(f.url.as_bytes());
                h.update(format!("\0{:?}\0{}", f.size, f.mtime).as_bytes());
                let version = h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect();
                Entry {
                    id: node.path(),
                    name: node.name().into_owned(),
                    is_dir: false,
                    size: f.size,
                    mtime: unix_to_system_time(f.mtime),
                    version,
                }
            }
        }
    }
}

#[async_trait]
impl Driver for Pan123Link {
    fn kind(&self) -> &'static str {
        "123pan_link"
    }

    fn max_connections(&self) -> usize {
        crate::drivers::PAN123_CONNECTIONS
    }

    fn root(&self) -> Entry {
        Self::entry(self.tree.root())
    }

    async fn list(&self, dir: &Entry) -> Result<Vec<Entry>> {
        let node = self.tree.get(&dir.id).ok_or(Error::NotFound)?;
        if !node.is_dir() {
            return Err(Error::NotDir);
        }
        Ok(self.tree.children(node).map(Self::entry).collect())
    }

    async fn link(&self, file: &Entry) -> Result<Link> {
        let node = self.tree.get(&file.id).ok_or(Error::NotFound)?;
        let info = node.file().ok_or(Error::IsDir)?;
        if self.private_key.is_empty() {
            return Ok(Link { url: info.url, headers: Vec::new(), expires_at: None });
        }
        let expires = crate::time::unix_now().saturating_add(self.valid_duration.as_secs());
        // Non-negative, up to 2^63-1, like Go's rand.Int() in OpenList.
        let rand = rand::random::<u64>() >> 1;
        let url = auth_key::sign(&info.url, &self.private_key, self.uid, expires, rand)
            .map_err(|e| Error::internal(format!("{}: {e}", node.path())))?;
        Ok(Link { url, headers: Vec::new(), expires_at: Some(UNIX_EPOCH + Duration::from_secs(expires)) })
    }
}

fn unix_to_system_time(secs: i64) -> SystemTime {
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    let t = if secs >= 0 { UNIX_EPOCH.checked_add(magnitude) } else { UNIX_EPOCH.checked_sub(magnitude) };
    t.unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests;
