//! `pikpak`: a PikPak personal drive (pikpak-protocol.md §2–§8, §10).
//!
//! Files: [`identity`] (client identities and salts), [`captcha`] (captcha_sign and meta),
//! [`client`] (one HTTP exchange, error classification, captcha tokens; shared with
//! `pikpak_share`), [`auth`] (login, refresh rotation, persistence), [`links`] (link choice,
//! expiry, time formats), [`api`] (wire types), [`offline`] (cloud-download tasks), and the
//! write side: [`write`] (folders, rename, move, trash), [`upload`] (init, instant upload,
//! completion) over [`store`] (the object store), [`gcid`] (the content hash).
//!
//! Every drive call goes through [`PikPak::call`], the request pipeline of §14: refresh ahead of
//! `expires_in`; on an expired access token refresh once and retry once; on a captcha refusal
//! re-mint for that request's `METHOD:path` and retry once; on rate limits and transient
//! failures back off (`http::retry`: 100 ms doubling, `Retry-After` honoured) a bounded number
//! of times. POSTs are replayed only when the server refused them (rate limit, auth, captcha),
//! never after a transport error or a 5xx, so an offline task is not created twice.
//!
//! Device id: the `device_id` option; else the one persisted in `state_dir`; else a new random
//! one, persisted. Without `state_dir` it is `md5(username or refresh_token, platform)`, so it
//! still stays the same across restarts (the captcha token is bound to it).

pub mod api;
pub mod auth;
pub mod captcha;
pub mod client;
pub mod gcid;
pub mod identity;
pub mod links;
pub(crate) mod offline;
mod store;
pub mod upload;
mod write;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;

use self::api::{About, File, FileList};
use self::auth::{Credentials, Session};
use self::client::{ApiError, Client, Fault};
use self::identity::{Identity, Platform};
use super::pages::Pages;
use super::{BuildContext, Driver, Entry, Link, OfflineTasks, Quota, Writable, decode};
use crate::config::driver_options::{DriverOption, PROXY, flag, secret, text};
use crate::config::{ConfigError, Options};
use crate::error::{Error, Result};
use crate::http::retry::{Policy, retry};
use crate::state::StateFile;

/// The options of a `pikpak` storage (INTERFACE.md; mount-configs/pikpak.toml).
pub const OPTIONS: &[DriverOption] = &[
    text("username"),
    secret("password"),
    secret("refresh_token"),
    secret("captcha_token"),
    text("device_id"),
    text("platform"),
    text("root_folder_id"),
    flag("disable_media_link"),
    text("api_base"),
    text("user_base"),
    PROXY,
];

pub const DEFAULT_API_BASE: &str = "https://api-drive.mypikpak.com";
pub const DEFAULT_USER_BASE: &str = "https://user.mypikpak.com";
/// OpenList's page size for listings (§7.1); the server's maximum is unknown (§15.6).
const PAGE_LIMIT: &str = "100";
/// Retries of one call after a rate limit or (reads only) a transient failure; a refused
/// access token and a captcha refusal are retried once each on top.
const MAX_RETRIES: u32 = 5;
/// §7.1: only finished, untrashed items.
const LIST_FILTERS: &str = r#"{"phase":{"eq":"PHASE_TYPE_COMPLETE"},"trashed":{"eq":false}}"#;

pub struct PikPak {
    client: Client,
    session: Session,
    root_id: String,
    disable_media_link: bool,
}

/// Platform option shared by both PikPak drivers.
pub fn platform_option(options: &Options) -> Result<Identity, ConfigError> {
    let name = options.str("platform")?.unwrap_or_else(|| "web".into());
    Platform::parse(&name)
        .map(Identity::of)
        .ok_or_else(|| options.error("platform", format!("unknown platform {name:?}: expected web, android or pc")))
}

/// A device id: the option, else the state file's, else new (persisted when possible).
pub fn device_id_option(options: &Options, state: &StateFile, fallback_seed: &str) -> Result<String, ConfigError> {
    if let Some(id) = options.str("device_id")?.filter(|s| !s.is_empty()) {
        return Ok(id);
    }
    if !state.is_persistent() {
        return Ok(identity::md5_hex(fallback_seed));
    }
    if let Some(id) = state.get("device_id").filter(|s| s.len() == 32) {
        return Ok(id);
    }
    let id = identity::new_device_id();
    if let Err(e) = state.set("device_id", &id) {
        tracing::warn!(storage = %options.table, "cannot persist the device id: {e}");
    }
    Ok(id)
}

impl PikPak {
    pub fn from_options(options: &Options, ctx: &BuildContext) -> Result<Self, ConfigError> {
        let ident = platform_option(options)?;
        let username = options.str("username")?.filter(|s| !s.is_empty());
        let password = options.str("password")?.filter(|s| !s.is_empty());
        let refresh = options.str("refresh_token")?.filter(|s| !s.is_empty());
        let captcha = options.str("captcha_token")?.filter(|s| !s.is_empty());
        let creds = match (username.clone(), password) {
            (Some(username), Some(password)) => Some(Credentials { username, password }),
            (Some(_), None) => return Err(options.error("password", "missing: `username` needs `password`")),
            (None, Some(_)) => return Err(options.error("username", "missing: `password` needs `username`")),
            (None, None) => None,
        };
        if creds.is_none() && refresh.is_none() {
            return Err(options.error("username", "missing: give `username` and `password`, or `refresh_token`"));
        }
        // The account, as far as we know it before logging in: the username, else the
        // config's first refresh token (a new one in the config starts a new state file).
        let account = username.clone().or_else(|| refresh.clone()).unwrap_or_default();
        let state = StateFile::new(ctx.state_dir.as_deref(), "pikpak", &[&account, ident.platform.name()]);
        let device_id = device_id_option(options, &state, &format!("{account}\0{}", ident.platform.name()))?;
        let api_base = options.str("api_base")?.unwrap_or_else(|| DEFAULT_API_BASE.into());
        let user_base = options.str("user_base")?.unwrap_or_else(|| DEFAULT_USER_BASE.into());
        for (key, base) in [("api_base", &api_base), ("user_base", &user_base)] {
            if url::Url::parse(base).is_err() {
                return Err(options.error(key, format!("not a URL: {base:?}")));
            }
        }
        let _proxy = options.str("proxy")?; // used by the HTTP client the core builds
        Ok(PikPak {
            client: Client::new(ctx.http.clone(), ident, device_id, &api_base, &user_base),
            session: Session::new(state, creds, refresh, captcha),
            root_id: options.str("root_folder_id")?.unwrap_or_default(),
            disable_media_link: options.bool_or("disable_media_link", true)?,
        })
    }

    /// A drive call through the pipeline described in the module docs.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value> {
        self.call_api(method, path, query, body).await.map_err(Error::from)
    }

    /// [`Self::call`], with what a refusal means (`Fault`) for callers that branch on it.
    /// Only GET and DELETE are sent again after a transport error or a 5xx: a create, a batch
    /// call or a rename (PATCH: sent twice, the second finds the name taken) may have been
    /// carried out already.
    pub(crate) async fn call_api(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let failed = |error| ApiError { fault: Fault::Other, error };
        self.session.ensure_fresh(&self.client).await.map_err(failed)?;
        let url = &format!("{}{path}", self.client.api_base);
        let policy = if method == Method::GET || method == Method::DELETE {
            Policy::read(path, MAX_RETRIES)
        } else {
            Policy::write(path, MAX_RETRIES)
        };
        let (auth_retried, captcha_retried) = (&AtomicBool::new(false), &AtomicBool::new(false));
        let method = &method;
        // One attempt refreshes the token or re-mints the captcha (once per call each) and
        // sends again; a failed refresh or mint ends the call (`Ok(Err)`).
        retry(&policy, || async move {
            loop {
                let (token, generation) = self.session.current();
                let captcha = self.client.captcha();
                let bearer = (!token.is_empty()).then_some(token.as_str());
                let err = match self.client.exchange(method.clone(), url, query, body, bearer).await {
                    Ok(v) => return Ok(Ok(v)),
                    Err(e) => e,
                };
                let renewed = match err.fault {
                    Fault::AccessExpired if !auth_retried.swap(true, Ordering::Relaxed) => {
                        self.session.refresh_after(&self.client, generation).await
                    }
                    Fault::Captcha if !captcha_retried.swap(true, Ordering::Relaxed) => {
                        let action = captcha::action(method.as_str(), path);
                        self.client.remint(&action, &captcha).await.map_err(Error::from)
                    }
                    _ => return Err(err),
                };
                if let Err(e) = renewed {
                    return Ok(Err(failed(e)));
                }
            }
        })
        .await?
    }

    pub(crate) fn entry(f: &File) -> Entry {
        let is_dir = f.kind == "drive#folder";
        let mtime = links::rfc3339(&f.modified_time)
            .or_else(|| links::rfc3339(&f.created_time))
            .map_or(UNIX_EPOCH, links::to_system_time);
        let size = if is_dir { Some(0) } else { f.size };
        let version =
            if f.hash.is_empty() { format!("{}-{}", f.size.unwrap_or(0), f.modified_time) } else { f.hash.clone() };
        Entry { id: f.id.clone(), name: f.name.clone(), is_dir, size, mtime, version }
    }
}

/// Page through a listing: `fetch(page_token)` until `next_page_token` is empty, a page is
/// empty or a token repeats (§11: a defensive client stops on all of these), within the bounds
/// of [`crate::drivers::pages`]. `keep` turns each listed file into an entry, or leaves it out.
pub(crate) async fn collect_pages<F, Fut>(
    folder: &str,
    mut fetch: F,
    keep: impl Fn(&File) -> Option<Entry>,
) -> Result<Vec<Entry>>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<FileList>>,
{
    let mut pages = Pages::new(folder);
    let mut seen = std::collections::HashSet::new();
    let mut token = String::new();
    loop {
        let page = fetch(token.clone()).await?;
        let empty = page.files.is_empty();
        pages.add(page.files.iter().filter_map(&keep), |e| &e.id)?;
        if empty || page.next_page_token.is_empty() || !seen.insert(page.next_page_token.clone()) {
            return Ok(pages.into_items());
        }
        token = page.next_page_token;
    }
}

#[async_trait]
impl Driver for PikPak {
    fn kind(&self) -> &'static str {
        "pikpak"
    }

    fn root(&self) -> Entry {
        Entry::root_folder(&self.root_id)
    }

    async fn login(&self) -> Result<()> {
        self.session.login(&self.client).await
    }

    async fn list(&self, dir: &Entry) -> Result<Vec<Entry>> {
        let fetch = |token: String| async move {
            let query = [
                ("parent_id", dir.id.as_str()),
                ("thumbnail_size", "SIZE_LARGE"),
                ("with_audit", "true"),
                ("limit", PAGE_LIMIT),
                ("filters", LIST_FILTERS),
                ("page_token", token.as_str()),
            ];
            let v = self.call(Method::GET, "/drive/v1/files", &query, None).await?;
            decode::<FileList>("file list", v)
        };
        let complete = |f: &File| !f.trashed && (f.phase.is_empty() || f.phase == "PHASE_TYPE_COMPLETE");
        collect_pages(&dir.id, fetch, |f| complete(f).then(|| Self::entry(f))).await
    }

    async fn link(&self, file: &Entry) -> Result<Link> {
        let usage = if self.disable_media_link { "FETCH" } else { "CACHE" };
        let query = [("_magic", "2021"), ("usage", usage), ("thumbnail_size", "SIZE_LARGE")];
        let v = self.call(Method::GET, &format!("/drive/v1/files/{}", file.id), &query, None).await?;
        let f: File = decode("file detail", v)?;
        let (url, expire) = links::choose_personal(&f, self.disable_media_link).ok_or_else(|| {
            Error::Remote(format!("PikPak gave no download link for {} (phase {})", file.name, f.phase))
        })?;
        let expires_at = links::link_expiry(&url, &expire);
        Ok(Link { url, headers: Vec::new(), expires_at })
    }

    async fn quota(&self) -> Result<Option<Quota>> {
        let v = self.call(Method::GET, "/drive/v1/about", &[], None).await?;
        let about: About = decode("about", v)?;
        Ok(match (about.quota.limit, about.quota.usage) {
            (Some(total), Some(used)) if total > 0 => Some(Quota { total, used }),
            _ => None,
        })
    }

    fn offline(&self) -> Option<&dyn OfflineTasks> {
        Some(self)
    }

    fn writable(&self) -> Option<&dyn Writable> {
        Some(self)
    }

    fn content_hash(&self, file: &Entry) -> Option<crate::drivers::ContentHash> {
        content_hash(file)
    }
}

/// A listed file's GCID (its `hash`, which is the entry's version when listed; a transcode
/// or a file listed without one has none).
pub(crate) fn content_hash(file: &Entry) -> Option<crate::drivers::ContentHash> {
    let value = crate::drivers::hex_hash(&file.version, 40)?.to_ascii_uppercase();
    (!file.is_dir).then_some(crate::drivers::ContentHash { kind: crate::drivers::HashKind::Gcid, value })
}

#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "sim"))]
mod write_tests;
