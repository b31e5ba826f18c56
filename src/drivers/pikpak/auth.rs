//! Login, refresh with rotation, and token persistence (pikpak-protocol.md §5).
//!
//! The refresh token rotates on every refresh and the old one dies at once (§5.2). Two rules
//! follow, both enforced here:
//! - the new token is written to the state file (atomically, see `crate::state`) *before* it is
//!   used or even kept in memory, so a crash never strands the account;
//! - logins and refreshes are serialised (`http::renew`), and a task that saw an expired access
//!   token only refreshes if nobody did since it took its snapshot (the `generation`), so two
//!   tasks never spend the same token.
//!
//! On start the persisted token wins over the config's (the config's was spent by an earlier
//! run). `invalid_grant` falls back to a password login when a password is configured.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::api::Token;
use super::captcha;
use super::client::{ApiError, Client, Fault};
use crate::error::{Error, Result};
use crate::http::renew::Renewable;
use crate::http::retry::{Policy, retry};
use crate::state::StateFile;

/// Refresh this long before `expires_in` runs out (capped at a quarter of the lifetime).
const REFRESH_SKEW: Duration = Duration::from_secs(300);
const STATE_KEY: &str = "refresh_token";
/// A refresh spends the token it sends and a signin starts a session: sent again only after
/// a refusal that proves the server did not act on it (a rate limit), never after a
/// transport error, which might have come after the token was spent.
const REFRESH_RETRY: Policy<'static> = Policy::write("PikPak auth/token", 4);
const SIGNIN_RETRY: Policy<'static> = Policy::write("PikPak auth/signin", 4);

/// Username and password. No `Debug`: the password must never reach a log.
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Clone, Default, PartialEq)]
struct Access {
    token: String,
    refresh_at: Option<Instant>,
    generation: u64,
}

/// A caller names the access token it saw refused by its generation.
impl PartialEq<u64> for Access {
    fn eq(&self, generation: &u64) -> bool {
        self.generation == *generation
    }
}

pub struct Session {
    state: StateFile,
    creds: Option<Credentials>,
    config_refresh: Option<String>,
    /// A captcha token the user solved in a browser, used for the first signin only.
    config_captcha: Mutex<Option<String>>,
    /// The current refresh token, changed only while `access` is being renewed.
    refresh: Mutex<Option<String>>,
    access: Renewable<Access>,
    warned: AtomicBool,
}

impl Session {
    pub fn new(
        state: StateFile,
        creds: Option<Credentials>,
        config_refresh: Option<String>,
        config_captcha: Option<String>,
    ) -> Self {
        Session {
            state,
            creds,
            config_refresh,
            config_captcha: Mutex::new(config_captcha),
            refresh: Mutex::new(None),
            access: Renewable::new(Access::default()),
            warned: AtomicBool::new(false),
        }
    }

    /// The access token and its generation, for one request.
    pub fn current(&self) -> (String, u64) {
        let a = self.access.get();
        (a.token, a.generation)
    }

    /// Log in from scratch: the persisted refresh token, else the config's, else the password.
    pub async fn login(&self, client: &Client) -> Result<()> {
        self.access
            .replace(|| async {
                let start = self.state.get(STATE_KEY).or_else(|| self.config_refresh.clone());
                let Some(token) = start else { return self.signin(client).await };
                match self.refresh_with(client, token).await {
                    Ok(access) => Ok(access),
                    Err(e) if e.fault == Fault::InvalidGrant && self.creds.is_some() => {
                        tracing::info!(
                            "PikPak refused the stored refresh token (invalid_grant); logging in with the password"
                        );
                        self.signin(client).await
                    }
                    Err(e) if e.fault == Fault::InvalidGrant => Err(invalid_grant_error()),
                    Err(e) => Err(e.error),
                }
            })
            .await?;
        // §5.5 step 3: a token for drive calls, with the signed meta.
        let uid = client.user_id.lock().unwrap().clone();
        let meta = captcha::signed_meta(&client.ident, &client.device_id, &uid, super::client::now_ms());
        client.mint("GET:/drive/v1/files", meta).await?;
        Ok(())
    }

    /// Refresh because the access token of `generation` was refused or is about to expire;
    /// nothing happens if another task already refreshed since.
    pub async fn refresh_after(&self, client: &Client, generation: u64) -> Result<()> {
        self.access
            .renew(&generation, || async {
                let token = self.refresh.lock().unwrap().clone();
                let Some(token) = token else { return Err(Error::Remote("not logged in".into())) };
                match self.refresh_with(client, token).await {
                    Ok(access) => Ok(access),
                    Err(e) if e.fault == Fault::InvalidGrant && self.creds.is_some() => self.signin(client).await,
                    Err(e) if e.fault == Fault::InvalidGrant => Err(invalid_grant_error()),
                    Err(e) => Err(e.error),
                }
            })
            .await
            .map(drop)
    }

    /// Refresh ahead of `expires_in`.
    pub async fn ensure_fresh(&self, client: &Client) -> Result<()> {
        let a = self.access.get();
        let due = a.refresh_at.is_some_and(|t| Instant::now() >= t);
        if due { self.refresh_after(client, a.generation).await } else { Ok(()) }
    }

    async fn refresh_with(&self, client: &Client, token: String) -> Result<Access, ApiError> {
        let url = format!("{}/v1/auth/token", client.user_base);
        let body = json!({
            "client_id": client.ident.client_id,
            "client_secret": client.ident.client_secret,
            "grant_type": "refresh_token",
            "refresh_token": token,
        });
        let query = [("client_id", client.ident.client_id)];
        let (url, query, body) = (&url, &query, &body);
        let value =
            retry(&REFRESH_RETRY, || async move { client.exchange(Method::POST, url, query, Some(body), None).await })
                .await?;
        self.accept(client, value).map_err(|error| ApiError { fault: Fault::Other, error })
    }

    async fn signin(&self, client: &Client) -> Result<Access> {
        let Some(creds) = &self.creds else { return Err(invalid_grant_error()) };
        let url = format!("{}/v1/auth/signin", client.user_base);
        let query = [("client_id", client.ident.client_id)];
        let (url, query) = (&url, &query);
        let user_token = &Mutex::new(self.config_captcha.lock().unwrap().take());
        let fresh_captcha_tried = &AtomicBool::new(false);
        // A captcha refusal mints a new token once, inside one attempt; a failed mint ends the
        // login (`Ok(Err)`: it had its own retries).
        let value = retry(&SIGNIN_RETRY, || async move {
            loop {
                let user = user_token.lock().unwrap().take();
                let captcha = match user {
                    Some(t) => t,
                    None => match client.mint("POST:/v1/auth/signin", captcha::login_meta(&creds.username)).await {
                        Ok(t) => t,
                        Err(e) => return Ok(Err(e.error)),
                    },
                };
                let body = json!({
                    "captcha_token": captcha,
                    "client_id": client.ident.client_id,
                    "client_secret": client.ident.client_secret,
                    "username": creds.username,
                    "password": creds.password,
                });
                match client.exchange(Method::POST, url, query, Some(&body), None).await {
                    Ok(value) => return Ok(Ok(value)),
                    Err(e) if e.fault == Fault::LoginCaptcha && !fresh_captcha_tried.swap(true, Ordering::Relaxed) => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .map_err(Error::from)??;
        self.accept(client, value)
    }

    /// Take a token reply: persist the new refresh token first, then use it. Called while
    /// `access` is being renewed, which the returned value becomes.
    fn accept(&self, client: &Client, value: serde_json::Value) -> Result<Access> {
        let t: Token = crate::drivers::decode("token reply", value)?;
        if t.access_token.is_empty() || t.refresh_token.is_empty() {
            return Err(Error::InvalidResponse("token reply without access_token or refresh_token".into()));
        }
        if self.state.is_persistent() {
            if let Err(e) = self.state.set(STATE_KEY, &t.refresh_token) {
                // The old token is already dead on the server; keep going with the new one in
                // memory, but say loudly that a restart will need a new login.
                tracing::error!(
                    "cannot persist the rotated PikPak refresh token: {e}; a restart will need the password or a new refresh_token"
                );
            }
        } else if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::info!("no state_dir configured: rotated PikPak refresh tokens will not survive a restart");
        }
        *self.refresh.lock().unwrap() = Some(t.refresh_token);
        if !t.sub.is_empty() {
            *client.user_id.lock().unwrap() = t.sub;
        }
        let lifetime = Duration::from_secs(t.expires_in.max(1));
        let skew = REFRESH_SKEW.min(lifetime / 4);
        Ok(Access {
            token: t.access_token,
            refresh_at: Some(Instant::now() + lifetime - skew),
            generation: self.access.get().generation + 1,
        })
    }
}

fn invalid_grant_error() -> Error {
    Error::LoginLost(
        "refresh_token refused (invalid_grant: already used or expired); configure a new refresh_token, or a username and password".into(),
    )
}
