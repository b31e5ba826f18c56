//! `pikpak_share`: a PikPak share link, anonymously (pikpak-protocol.md §9, §5.5, §10.1).
//!
//! No login: every call carries the share identity headers (client id, device id) and a captcha
//! token minted with the signed meta and `user_id: ""`. A share password is exchanged once for a
//! `pass_code_token` (`/drive/v1/share`); listings page through `/drive/v1/share/detail`, links
//! come from `/drive/v1/share/file_info`.
//!
//! Share statuses become one clear message each. A `PASS_CODE_*` answer to a listing re-opens
//! the share once (the token may have expired) and then fails: a wrong password never loops
//! (OpenList's retries it without bound, §9.2).
//!
//! With `use_transcoding_address`, a file may be served from a transcode whose size differs
//! from the listed one. The listing's size would then be a lie the read path turns into EIO, so
//! files are listed without a size and the core learns the size of the bytes actually served
//! (one 1-byte request per file, cached).

pub mod api;

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;

use self::api::{ShareFileInfo, SharePage};
use super::pikpak::api::{File, FileList};
use super::pikpak::client::{Client, Fault, now_ms};
use super::pikpak::{self, PikPak, captcha, collect_pages, links};
use super::{BuildContext, Driver, Entry, Link, decode};
use crate::config::driver_options::{DriverOption, PROXY, flag, secret, text};
use crate::config::{ConfigError, Options};
use crate::error::{Error, Result};
use crate::http::renew::Renewable;
use crate::http::retry::{Policy, retry};
use crate::state::StateFile;

/// The options of a `pikpak_share` storage (mount-configs/pikpak-share.toml).
pub const OPTIONS: &[DriverOption] = &[
    text("share_id"),
    secret("share_password"),
    text("root_folder_id"),
    flag("use_transcoding_address"),
    text("platform"),
    text("device_id"),
    text("api_base"),
    text("user_base"),
    PROXY,
];

/// OpenList mints the share token for this action (§4.3).
const CAPTCHA_ACTION: &str = "GET:/drive/v1/share:batch_file_info";
const FILTERS: &str = r#"{"phase":{"eq":"PHASE_TYPE_COMPLETE"},"trashed":{"eq":false}}"#;
/// Retries of a share call after a rate limit or a transient failure (all share calls read).
const MAX_RETRIES: u32 = 5;

pub struct PikPakShare {
    client: Client,
    share_id: String,
    password: String,
    root_id: String,
    use_transcoding: bool,
    /// The `pass_code_token` of the open share, renewed once by whoever finds it refused.
    pass_token: Renewable<String>,
}

/// The message for a share status other than `OK`.
pub fn status_message(status: &str, text: &str) -> String {
    let what = match status {
        "PASS_CODE_EMPTY" => "the share needs a password: set `share_password`",
        "PASS_CODE_ERROR" => "the share password is wrong: check `share_password`",
        "DELETED" => "the share was deleted by its owner",
        "EXPIRED" => "the share has expired",
        "NOT_FOUND" => "no such share: check `share_id`",
        "PROHIBITED" => "the share is not available from this region",
        "AUDITING" | "SENSITIVE_RESOURCE" | "SENSITIVE_WORD" => "the share is blocked by PikPak's review",
        _ => "the share cannot be opened",
    };
    let text = if text.is_empty() { String::new() } else { format!(": {text}") };
    format!("{what} ({status}{text})")
}

impl PikPakShare {
    pub fn from_options(options: &Options, ctx: &BuildContext) -> Result<Self, ConfigError> {
        let ident = pikpak::platform_option(options)?;
        let share_id = options.require_str("share_id")?;
        if share_id.is_empty() || share_id.contains(['/', '?', '#']) {
            return Err(options.error("share_id", "expected the id after /s/ in the share URL"));
        }
        let state = StateFile::new(ctx.state_dir.as_deref(), "pikpak_share", &[&share_id, ident.platform.name()]);
        let device_id = pikpak::device_id_option(options, &state, &format!("share\0{share_id}"))?;
        let api_base = options.str("api_base")?.unwrap_or_else(|| pikpak::DEFAULT_API_BASE.into());
        let user_base = options.str("user_base")?.unwrap_or_else(|| pikpak::DEFAULT_USER_BASE.into());
        let _proxy = options.str("proxy")?;
        Ok(PikPakShare {
            client: Client::new(ctx.http.clone(), ident, device_id, &api_base, &user_base),
            share_id,
            password: options.str("share_password")?.unwrap_or_default(),
            root_id: options.str("root_folder_id")?.unwrap_or_default(),
            use_transcoding: options.bool_or("use_transcoding_address", false)?,
            pass_token: Renewable::new(String::new()),
        })
    }

    async fn mint(&self) -> Result<()> {
        let meta = captcha::signed_meta(&self.client.ident, &self.client.device_id, "", now_ms());
        self.client.mint(CAPTCHA_ACTION, meta).await.map(drop).map_err(Error::from)
    }

    /// An anonymous GET with captcha re-minting (once) and bounded backoff.
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let url = &format!("{}{path}", self.client.api_base);
        let captcha_retried = &AtomicBool::new(false);
        retry(&Policy::read(path, MAX_RETRIES), || async move {
            loop {
                let captcha = self.client.captcha();
                let err = match self.client.exchange(Method::GET, url, query, None, None).await {
                    Ok(v) => return Ok(Ok(v)),
                    Err(e) => e,
                };
                if err.fault != Fault::Captcha || captcha_retried.swap(true, Ordering::Relaxed) {
                    return Err(err);
                }
                if let Err(e) = self.client.remint(&captcha::action("GET", path), &captcha).await {
                    return Ok(Err(e.error));
                }
            }
        })
        .await
        .map_err(Error::from)?
    }

    /// §9.1: open the share with the password for a new `pass_code_token`.
    async fn open(&self) -> Result<String> {
        let query = [
            ("share_id", self.share_id.as_str()),
            ("pass_code", self.password.as_str()),
            ("thumbnail_size", "SIZE_LARGE"),
            ("limit", "100"),
        ];
        let v = self.get("/drive/v1/share", &query).await?;
        let page: SharePage = decode("share", v)?;
        if page.share_status != "OK" {
            return Err(Error::Remote(status_message(&page.share_status, &page.share_status_text)));
        }
        Ok(page.pass_code_token)
    }

    /// A share call whose reply carries `share_status`; a `PASS_CODE_*` status re-opens the
    /// share once.
    async fn share_call(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        for reopened in [false, true] {
            let token = self.pass_token.get();
            let mut q: Vec<(&str, &str)> = query.to_vec();
            q.push(("pass_code_token", &token));
            let v = self.get(path, &q).await?;
            let status = v.get("share_status").and_then(Value::as_str).unwrap_or("OK").to_owned();
            if status == "OK" {
                return Ok(v);
            }
            let text = v.get("share_status_text").and_then(Value::as_str).unwrap_or("").to_owned();
            if reopened || !status.starts_with("PASS_CODE") {
                return Err(Error::Remote(status_message(&status, &text)));
            }
            self.pass_token.renew(&token, || self.open()).await?;
        }
        unreachable!("the loop returns")
    }
}

#[async_trait]
impl Driver for PikPakShare {
    fn kind(&self) -> &'static str {
        "pikpak_share"
    }

    fn root(&self) -> Entry {
        Entry::root_folder(&self.root_id)
    }

    async fn login(&self) -> Result<()> {
        self.mint().await?;
        self.pass_token.set(self.open().await?);
        Ok(())
    }

    async fn list(&self, dir: &Entry) -> Result<Vec<Entry>> {
        let fetch = |token: String| async move {
            let query = [
                ("parent_id", dir.id.as_str()),
                ("share_id", self.share_id.as_str()),
                ("thumbnail_size", "SIZE_LARGE"),
                ("with_audit", "true"),
                ("limit", "100"),
                ("filters", FILTERS),
                ("page_token", token.as_str()),
            ];
            let v = self.share_call("/drive/v1/share/detail", &query).await?;
            let page: SharePage = decode("share detail", v)?;
            Ok(FileList { files: page.files, next_page_token: page.next_page_token })
        };
        let keep = |f: &File| {
            let mut e = (!f.trashed).then(|| PikPak::entry(f))?;
            if self.use_transcoding && !e.is_dir {
                // The bytes served may be a transcode: let the core measure them.
                e.size = None;
                e.version = format!("t-{}", e.version);
            }
            Some(e)
        };
        collect_pages(&dir.id, fetch, keep).await
    }

    fn content_hash(&self, file: &Entry) -> Option<crate::drivers::ContentHash> {
        super::pikpak::content_hash(file)
    }

    async fn link(&self, file: &Entry) -> Result<Link> {
        let query =
            [("share_id", self.share_id.as_str()), ("file_id", file.id.as_str()), ("thumbnail_size", "SIZE_LARGE")];
        let v = self.share_call("/drive/v1/share/file_info", &query).await?;
        let info: ShareFileInfo = decode("share file_info", v)?;
        let (url, expire, _transcode) = links::choose_share(&info.file_info, self.use_transcoding)
            .ok_or_else(|| Error::Remote(format!("the share gave no download link for {}", file.name)))?;
        let expires_at = links::link_expiry(&url, &expire);
        Ok(Link { url, headers: Vec::new(), expires_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_become_clear_messages() {
        assert!(status_message("PASS_CODE_ERROR", "").contains("password is wrong"));
        assert!(status_message("PASS_CODE_EMPTY", "Please enter the pass code").contains("needs a password"));
        assert!(status_message("EXPIRED", "").contains("expired"));
        assert!(status_message("WHATEVER", "x").contains("WHATEVER: x"));
    }
}
