//! `123pan_share`: a 123pan share link (`https://www.123pan.com/s/<share_key>`), read-only
//! (pan123-protocol.md §3).
//!
//! The same web API client as `123pan` (headers, signature, envelope) with `platform: web`
//! fixed and `Bearer <access_token>` (empty when not given). There is no account, so there is
//! no re-login: a 401 is an error saying the access token was refused.
//! - Listing: `GET /b/api/share/get` with `shareKey` and `SharePwd`, paged like the personal
//!   listing (no `Total` in replies), behind its own 700 ms limiter (`list_interval_ms`).
//! - Links: `POST /b/api/share/download/info` (`data.DownloadURL`), then the same `params` hop
//!   as `123pan`, with the same lifetime option and 5113 handling.
//! - Code 5103 (password missing or wrong) becomes a message naming `share_password`.
//!   `login` lists the share's root once, so a wrong password marks the storage down at mount
//!   time with that message instead of failing every lookup later.
//!
//! Ids and versions are those of `123pan` (see [`crate::drivers::pan123`]).

pub mod api;

use async_trait::async_trait;

use self::api::ShareDownloadRequest;
use super::pan123::api::{DownloadInfo, ListPage};
use super::pan123::client::Client;
use super::pan123::{self, FileRef, LinkMinter, paging};
use super::{BuildContext, Driver, Entry, Link};
use crate::config::driver_options::{DriverOption, PROXY, count, secret, text};
use crate::config::{ConfigError, Options};
use crate::error::Result;
use crate::http::limit::RateLimiter;

pub const OPTIONS: &[DriverOption] = &[
    text("share_key"),
    secret("share_password"),
    text("root_folder_id"),
    secret("access_token"),
    text("api_base"),
    PROXY,
    count("list_interval_ms"),
    count("link_lifetime_secs"),
];

const LIST_PATH: &str = "/b/api/share/get";
const DOWNLOAD_PATH: &str = "/b/api/share/download/info";

pub struct Pan123Share {
    client: Client,
    share_key: String,
    share_password: String,
    root_id: String,
    list_limiter: RateLimiter,
    links: LinkMinter,
}

impl Pan123Share {
    pub fn from_options(options: &Options, ctx: &BuildContext) -> Result<Self, ConfigError> {
        let share_key = share_key(&options.require_str("share_key")?).ok_or_else(|| {
            options.error("share_key", "expected the share key (the last part of https://www.123pan.com/s/<key>)")
        })?;
        let share_password = options.str("share_password")?.unwrap_or_default().trim().to_string();
        let access_token = options.str("access_token")?.unwrap_or_default().trim().to_string();
        let api_base = pan123::base(options, "api_base", pan123::DEFAULT_API_BASE)?;
        let client = Client::new(ctx.http.inner.clone(), &api_base, &api_base, "web", None, access_token);
        Ok(Pan123Share {
            client,
            share_key,
            share_password,
            root_id: pan123::root_id(options)?,
            list_limiter: pan123::list_limiter(options)?,
            links: LinkMinter::from_options(options)?,
        })
    }

    async fn page(&self, dir: &str, page: u32) -> Result<ListPage> {
        let query = [
            ("limit", paging::PAGE_LIMIT.to_string()),
            ("next", "0".to_string()),
            ("orderBy", "file_id".to_string()),
            ("orderDirection", "desc".to_string()),
            ("parentFileId", dir.to_string()),
            ("Page", page.to_string()),
            ("shareKey", self.share_key.clone()),
            ("SharePwd", self.share_password.clone()),
        ];
        self.client.get(LIST_PATH, &query, Some(&self.list_limiter)).await
    }
}

/// The key from what a user may paste: the key itself, or the whole share URL (with or
/// without `.html`, a query or a trailing `/`).
fn share_key(text: &str) -> Option<String> {
    let text = text.trim();
    let path = text.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/');
    let last = path.rsplit('/').next().unwrap_or_default();
    let key = last.strip_suffix(".html").unwrap_or(last);
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')).then(|| key.to_string())
}

#[async_trait]
impl Driver for Pan123Share {
    fn kind(&self) -> &'static str {
        "123pan_share"
    }

    fn max_connections(&self) -> usize {
        crate::drivers::PAN123_CONNECTIONS
    }

    fn root(&self) -> Entry {
        Entry::root_folder(&self.root_id)
    }

    async fn login(&self) -> Result<()> {
        self.page(&self.root_id, 1).await.map(|_| ())
    }

    async fn list(&self, dir: &Entry) -> Result<Vec<Entry>> {
        pan123::list_all(|page| self.page(&dir.id, page), &dir.id).await
    }

    fn content_hash(&self, file: &Entry) -> Option<crate::drivers::ContentHash> {
        pan123::content_hash(file)
    }

    async fn link(&self, file: &Entry) -> Result<Link> {
        let f = FileRef::of(file)?;
        let body = ShareDownloadRequest {
            share_key: &self.share_key,
            share_pwd: &self.share_password,
            etag: &f.etag,
            file_id: f.id,
            s3_key_flag: &f.s3_key_flag,
            size: file.size.unwrap_or(0),
        };
        let info = self.client.post::<DownloadInfo, _>(DOWNLOAD_PATH, &body).await;
        self.links.mint(info).await
    }
}

#[cfg(test)]
mod tests {
    use super::share_key;

    #[test]
    fn share_keys_from_urls() {
        assert_eq!(share_key("abcd-1234").as_deref(), Some("abcd-1234"));
        assert_eq!(share_key("https://www.123pan.com/s/abcd-1234.html").as_deref(), Some("abcd-1234"));
        assert_eq!(share_key("https://www.123pan.com/s/abcd-1234/?pwd=x").as_deref(), Some("abcd-1234"));
        assert_eq!(share_key(" "), None);
        assert_eq!(share_key("a b"), None);
    }
}
