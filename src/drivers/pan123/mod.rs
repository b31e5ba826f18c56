//! `123pan`: a personal 123pan (123云盘) drive through its web API (pan123-protocol.md §1-2).
//!
//! - [`client`]: headers, the request signature ([`sign`]), the envelope, 401 → re-login once.
//! - Listing: `GET /b/api/file/list/new`, `Page` from 1, `limit` 100, `orderBy=file_id desc`
//!   (name order truncates pages on the real service, §1.5), stopped by [`paging`]; sorted by
//!   name here. List calls go through a per-endpoint [`RateLimiter`]: one call per 700 ms by
//!   default (`list_interval_ms`), the spacing 123pan's own maintainers added to OpenList so the
//!   service does not take the client for an attack. The core caches listings and shares them
//!   between concurrent lookups, so a 1,000-entry folder costs ten spaced calls once.
//! - Links: `POST /b/api/file/download_info`, then the `params` hop ([`hop`]), shared with
//!   `123pan_share`. The real link lifetime is unconfirmed (§7; P123 says 24 h), so a link is
//!   trusted for `link_lifetime_secs` (default 15 min) and the core re-mints it early on a 403.
//!   Code 5113 (the account's download traffic is spent) is `Error::TrafficExhausted`: the
//!   storage's traffic meter (`crate::budget`) marks it spent, logs it once, and holds further
//!   requests back.
//! - Quota: `GET /b/api/user/info`, total = `SpacePermanent + SpaceTemp`, used = `SpaceUsed`.
//! - Writes ([`write`], [`upload`]): folders, rename, move and trash (§2.6), and uploads by
//!   MD5 through presigned part URLs (§2.7).
//!
//! Entry ids are the `FileId` (int64, root `0`) as decimal. `download_info` also needs the
//! file's `Etag` and `S3KeyFlag`, and a driver keeps no cache, so a file's `version` carries
//! them: `"<Etag>|<S3KeyFlag>|<UpdateAt unix>"`. Any content change changes the Etag, so this
//! is also the right cache key. The core may rename duplicate names (`a (2).mp4`); the name
//! sent as `fileName` is then the shown one, which the service only uses for the download's
//! file name.

pub mod api;
pub mod client;
pub mod hop;
pub mod paging;
pub mod sign;
pub mod time;
pub mod upload;
pub mod write;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use self::api::{DownloadInfo, DownloadInfoRequest, File, ListPage, UserInfo};
use self::client::{Client, Credentials};
use super::pages::Pages;
use super::{BuildContext, Driver, Entry, Link, Quota};
use crate::config::driver_options::{DriverOption, PROXY, count, secret, text};
use crate::config::{ConfigError, Options};
use crate::error::{Error, Result};
use crate::http::limit::RateLimiter;

pub const OPTIONS: &[DriverOption] = &[
    text("username"),
    secret("password"),
    text("root_folder_id"),
    text("platform"),
    text("api_base"),
    text("login_base"),
    PROXY,
    count("list_interval_ms"),
    count("write_interval_ms"),
    count("link_lifetime_secs"),
];

pub const DEFAULT_API_BASE: &str = "https://yun.123pan.com";
pub const DEFAULT_LOGIN_BASE: &str = "https://login.123pan.com";
/// OpenList's list limiter: one call per 700 ms per endpoint (§1.5).
pub const DEFAULT_LIST_INTERVAL_MS: u64 = 700;
/// How long a minted link is trusted (the service's real expiry is unconfirmed, §7).
pub const DEFAULT_LINK_LIFETIME_SECS: u64 = 15 * 60;

const LIST_PATH: &str = "/b/api/file/list/new";
const DOWNLOAD_INFO_PATH: &str = "/b/api/file/download_info";
const USER_INFO_PATH: &str = "/b/api/user/info";

pub struct Pan123 {
    client: Client,
    /// For part uploads: the long read timeout of file bodies, no API headers.
    upload_http: reqwest::Client,
    root_id: String,
    list_limiter: RateLimiter,
    links: LinkMinter,
}

impl Pan123 {
    pub fn from_options(options: &Options, ctx: &BuildContext) -> Result<Self, ConfigError> {
        let username = options.require_str("username")?;
        let password = options.require_str("password")?;
        let root_id = root_id(options)?;
        let platform = options.str("platform")?.unwrap_or_else(|| "web".into());
        let api_base = base(options, "api_base", DEFAULT_API_BASE)?;
        let login_base = base(options, "login_base", DEFAULT_LOGIN_BASE)?;
        let client = Client::new(
            ctx.http.inner.clone(),
            &api_base,
            &login_base,
            &platform,
            Some(Credentials { username, password }),
            String::new(),
        )
        .with_write_interval(Duration::from_millis(
            options.u64_or("write_interval_ms", client::DEFAULT_WRITE_INTERVAL_MS)?,
        ));
        Ok(Pan123 {
            client,
            upload_http: ctx.http.upload.clone(),
            root_id,
            list_limiter: list_limiter(options)?,
            links: LinkMinter::from_options(options)?,
        })
    }
}

#[async_trait]
impl Driver for Pan123 {
    fn kind(&self) -> &'static str {
        "123pan"
    }

    fn max_connections(&self) -> usize {
        crate::drivers::PAN123_CONNECTIONS
    }

    fn root(&self) -> Entry {
        Entry::root_folder(&self.root_id)
    }

    /// Sign in, then check the session with `user/info` (it is signed, so a wrong clock shows
    /// up here, at mount time, rather than at the first listing).
    async fn login(&self) -> Result<()> {
        self.client.login().await?;
        let _: UserInfo = self.client.get(USER_INFO_PATH, &[], None).await?;
        Ok(())
    }

    async fn list(&self, dir: &Entry) -> Result<Vec<Entry>> {
        list_all(
            |page| {
                let query = [
                    ("driveId", "0".to_string()),
                    ("limit", paging::PAGE_LIMIT.to_string()),
                    ("next", "0".to_string()),
                    ("orderBy", "file_id".to_string()),
                    ("orderDirection", "desc".to_string()),
                    ("parentFileId", dir.id.clone()),
                    ("trashed", "false".to_string()),
                    ("SearchData", String::new()),
                    ("Page", page.to_string()),
                    ("OnlyLookAbnormalFile", "0".to_string()),
                    ("event", "homeListFile".to_string()),
                    ("operateType", "4".to_string()),
                    ("inDirectSpace", "false".to_string()),
                ];
                async move { self.client.get::<ListPage>(LIST_PATH, &query, Some(&self.list_limiter)).await }
            },
            &dir.id,
        )
        .await
    }

    async fn link(&self, file: &Entry) -> Result<Link> {
        let f = FileRef::of(file)?;
        let request = DownloadInfoRequest {
            drive_id: 0,
            etag: &f.etag,
            file_id: f.id,
            file_name: &file.name,
            s3_key_flag: &f.s3_key_flag,
            size: file.size.unwrap_or(0),
            kind: 0,
        };
        let info = self.client.post::<DownloadInfo, _>(DOWNLOAD_INFO_PATH, &request).await;
        self.links.mint(info).await
    }

    async fn quota(&self) -> Result<Option<Quota>> {
        let info: UserInfo = self.client.get(USER_INFO_PATH, &[], None).await?;
        Ok(Some(Quota { total: info.space_permanent.saturating_add(info.space_temp), used: info.space_used }))
    }

    fn writable(&self) -> Option<&dyn crate::drivers::Writable> {
        Some(self)
    }

    fn content_hash(&self, file: &Entry) -> Option<crate::drivers::ContentHash> {
        content_hash(file)
    }
}

/// A listed file's MD5 (its `Etag`, kept in the entry's version).
pub(crate) fn content_hash(file: &Entry) -> Option<crate::drivers::ContentHash> {
    let etag = FileRef::of(file).ok()?.etag.to_ascii_lowercase();
    let value = crate::drivers::hex_hash(&etag, 32)?;
    Some(crate::drivers::ContentHash { kind: crate::drivers::HashKind::Md5, value })
}

/// `root_folder_id`: a decimal FileId, `"0"` (the drive root) by default.
pub(crate) fn root_id(options: &Options) -> Result<String, ConfigError> {
    let id = options.str("root_folder_id")?.unwrap_or_default();
    let id = if id.trim().is_empty() { "0".to_string() } else { id.trim().to_string() };
    if id.parse::<i64>().is_err() {
        return Err(options.error("root_folder_id", "expected a numeric 123pan folder id (0 is the root)"));
    }
    Ok(id)
}

pub(crate) fn base(options: &Options, key: &str, default: &str) -> Result<String, ConfigError> {
    let value = options.str(key)?.unwrap_or_else(|| default.to_string());
    match url::Url::parse(&value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(value.trim_end_matches('/').to_string()),
        _ => Err(options.error(key, "expected an http:// or https:// URL")),
    }
}

pub(crate) fn list_limiter(options: &Options) -> Result<RateLimiter, ConfigError> {
    let ms = options.u64_or("list_interval_ms", DEFAULT_LIST_INTERVAL_MS)?;
    Ok(RateLimiter::new(Duration::from_millis(ms)))
}

/// Every entry of a folder, all pages, sorted by name, within the bounds of
/// [`crate::drivers::pages`]. `fetch(page)` gets one page.
pub(crate) async fn list_all<F, Fut>(fetch: F, dir_id: &str) -> Result<Vec<Entry>>
where
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = Result<ListPage>>,
{
    let mut pager = paging::Pager::default();
    let mut pages = Pages::new(dir_id);
    let mut total = None;
    while let Some(page) = pager.next_page() {
        let reply = fetch(page).await?;
        total = reply.total.or(total);
        let files = reply.info_list.unwrap_or_default();
        let count = files.len();
        pages.add(files.iter().map(entry_of), |e| &e.id)?;
        if let Some(stop) = pager.record(&reply.next, count) {
            if stop == paging::Stop::NextUnchanged {
                tracing::warn!(folder = dir_id, page, ?stop, "123pan listing stopped early");
            }
            break;
        }
    }
    let mut entries = pages.into_items();
    if let Some(total) = total.filter(|t| *t != entries.len() as i64) {
        tracing::warn!(
            folder = dir_id,
            total,
            received = entries.len(),
            "123pan listing: Total differs from the entries received"
        );
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// An [`Entry`] of a listed file (see the module doc for `version`).
pub(crate) fn entry_of(f: &File) -> Entry {
    let mtime = time::parse_update_at(&f.update_at).unwrap_or(0);
    let mtime = if mtime >= 0 { UNIX_EPOCH + Duration::from_secs(mtime as u64) } else { UNIX_EPOCH };
    let is_dir = f.kind == 1;
    Entry {
        id: f.file_id.to_string(),
        name: f.file_name.clone(),
        is_dir,
        size: if is_dir { Some(0) } else { f.size },
        mtime,
        version: if is_dir { String::new() } else { format!("{}|{}|{}", f.etag, f.s3_key_flag, f.update_at) },
    }
}

/// What `download_info` needs of a file, read back from its [`Entry`].
pub(crate) struct FileRef {
    pub id: i64,
    pub etag: String,
    pub s3_key_flag: String,
}

impl FileRef {
    pub fn of(entry: &Entry) -> Result<FileRef> {
        if entry.is_dir {
            return Err(Error::IsDir);
        }
        let id = entry.id.parse().map_err(|_| Error::internal(format!("123pan: not a file id: {}", entry.id)))?;
        let mut parts = entry.version.splitn(3, '|');
        let etag = parts.next().unwrap_or_default().to_string();
        let s3_key_flag = parts.next().unwrap_or_default().to_string();
        Ok(FileRef { id, etag, s3_key_flag })
    }
}

/// Turns a `download_info` answer into a [`Link`]: the hop, the Referer, the lifetime. A 5113
/// passes through as `Error::TrafficExhausted`, which the storage's meter logs and acts on.
pub(crate) struct LinkMinter {
    /// Follows no redirects: the hop's 302 is the answer, not something to follow.
    hop_http: reqwest::Client,
    lifetime: Duration,
}

impl LinkMinter {
    pub fn from_options(options: &Options) -> Result<Self, ConfigError> {
        let secs = options.u64_or("link_lifetime_secs", DEFAULT_LINK_LIFETIME_SECS)?;
        if secs == 0 {
            return Err(options.error("link_lifetime_secs", "must be at least 1 (seconds)"));
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30));
        if let Some(proxy) = options.str("proxy")? {
            let proxy = reqwest::Proxy::all(&proxy).map_err(|e| options.error("proxy", e.to_string()))?;
            builder = builder.proxy(proxy);
        }
        let hop_http = builder.build().map_err(|e| options.error("proxy", e.to_string()))?;
        Ok(LinkMinter { hop_http, lifetime: Duration::from_secs(secs) })
    }

    pub async fn mint(&self, info: Result<DownloadInfo>) -> Result<Link> {
        let (url, referer) = hop::resolve(&self.hop_http, &info?.download_url).await?;
        Ok(Link {
            url,
            headers: vec![("Referer".to_string(), referer)],
            expires_at: Some(SystemTime::now() + self.lifetime),
        })
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod write_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_what_download_info_needs() {
        let f: File = serde_json::from_str(
            r#"{"FileId":20000000002,"FileName":"a.mp4","Type":0,"Size":1048576,"Etag":"b6d8","S3KeyFlag":"1814435971-0","UpdateAt":"2024-05-02T08:30:15+08:00"}"#,
        )
        .unwrap();
        let e = entry_of(&f);
        assert_eq!((e.id.as_str(), e.is_dir, e.size), ("20000000002", false, Some(1_048_576)));
        assert_eq!(e.mtime, UNIX_EPOCH + Duration::from_secs(1_714_609_815));
        let r = FileRef::of(&e).unwrap();
        assert_eq!((r.id, r.etag.as_str(), r.s3_key_flag.as_str()), (20_000_000_002, "b6d8", "1814435971-0"));
        let d: File =
            serde_json::from_str(r#"{"FileId":"7","FileName":"Movies","Type":1,"Size":0,"UpdateAt":"garbage"}"#)
                .unwrap();
        let d = entry_of(&d);
        assert!(d.is_dir && d.mtime == UNIX_EPOCH && d.version.is_empty());
        assert!(matches!(FileRef::of(&d), Err(Error::IsDir)));
    }
}
