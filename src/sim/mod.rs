//! The provider simulator: an HTTP server on loopback that plays the clouds' side.
//!
//! This part serves the CDN (signed 123pan direct links to files under a data directory, with
//! fault knobs) and the admin endpoints that drive the knobs. It is used by the tests, the
//! benchmark, `panmount demo` and `panmount sim`. The simulator builds every answer from its own
//! reading of `reference/` and never calls the crate's client or driver code: a client bug must
//! fail a test, not be mirrored here.
//!
//! Files: `cdn` (the file server), `auth_key` (123pan direct-link signature check), `range`
//! (`Range` parsing, HTTP dates), `knobs` (fault knobs, counters), `sample` (sample tree, link
//! tree text), `conn` (connections a fault can cut), `gcid` (PikPak's content hash), `s3` (an S3-compatible store for rclone), `media` (a fake
//! media server for the library refresh hooks).
//!
//! Routes:
//! - `GET`/`HEAD /cdn/{path}`: the files (see [`cdn`]).
//! - `POST /api/user/sign_in`, `/b/api/...`, `/sim123/hop/{id}`: the 123pan web API (see
//!   [`pan123`]; its knobs and counters are on [`SimHandle::pan123`]).
//! - `GET /_sim/knobs` → the [`KnobValues`] as JSON; `PUT /_sim/knobs` with a JSON body replaces
//!   them (missing fields take defaults); `GET /_sim/stats` → [`StatsSnapshot`];
//!   `POST /_sim/stats/reset`.
//! - `/s3/...`: an S3-compatible object store for rclone (see [`s3`]; knobs and counters at
//!   `/_sim/s3/knobs`, `/_sim/s3/counters`).
//! - `GET /_sim/api_calls` → API calls per provider so far ([`ApiCalls`]).
//! - With the `provider_down` knob every other route answers 503 (an outage of the whole
//!   provider, API and CDN), counted in `down_refused`. With `api_fault` the next API calls
//!   (anything but `/cdn/` and `/_sim/`) answer the status and JSON body it names.
//!
//! [`start`] spawns the server on the calling tokio runtime and returns at once. On a
//! current-thread runtime the server only makes progress while that runtime is being driven, so
//! a test that blocks its thread (FUSE) should start the simulator on a multi-thread runtime or on
//! a dedicated runtime in another thread.

pub mod auth_key;
pub mod cdn;
pub mod conn;
pub mod gcid;
pub mod knobs;
pub mod media;
pub mod pan123;
pub mod pikpak;
pub mod range;
pub mod s3;
pub mod sample;
pub mod secrets;
mod store;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use auth_key::{expected_md5, verify_auth_key};
pub use knobs::{ApiFault, KnobValues, Knobs, Stats, StatsSnapshot};
pub use range::{RangeSpec, parse_range};
pub use sample::{SampleFile, SizeMode, generate, link_tree};
pub use secrets::Secrets;

/// How long [`SimHandle::shutdown`] waits for open connections before dropping the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What to serve and where.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen, e.g. `127.0.0.1:0` for a free port.
    pub listen: SocketAddr,
    /// The files served under `/cdn/`.
    pub data_dir: PathBuf,
    /// When set, every CDN request needs a valid 123pan `auth_key` (pan123-protocol.md §4.3).
    pub cdn_auth: Option<CdnAuth>,
}

/// The 123pan direct-link signing secret ("鉴权密钥") and account UID.
#[derive(Clone)]
pub struct CdnAuth {
    pub private_key: String,
    pub uid: u64,
}

impl std::fmt::Debug for CdnAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdnAuth").field("private_key", &"<redacted>").field("uid", &self.uid).finish()
    }
}

/// A running simulator. Dropping it stops the server too (without waiting).
pub struct SimHandle {
    pub addr: SocketAddr,
    pub knobs: Arc<Knobs>,
    pub stats: Arc<Stats>,
    /// The simulated PikPak (accounts, knobs, counters).
    pub pikpak: Arc<pikpak::PikPakSim>,
    /// The simulated 123pan API: knobs, accounts, shares, counters.
    pub pan123: Arc<pan123::Pan123Sim>,
    /// The S3-compatible object store under `/s3` (the benchmark's rclone remote).
    pub s3: Arc<s3::S3Sim>,
    /// API calls per provider (also `GET /_sim/api_calls`).
    pub api_calls: Arc<ApiCalls>,
    /// Every secret issued or received (see [`secrets`]).
    pub secrets: Arc<Secrets>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The unsigned, percent-encoded URL of the file at `rel_path` (`/Movies/a.mp4`) under the
    /// data dir. Its last segment decodes to the file name.
    pub fn cdn_url(&self, rel_path: &str) -> String {
        format!("{}{}", self.base_url(), cdn::cdn_path(rel_path))
    }

    /// Stop accepting, abort bodies in flight, and wait (up to 2 s) for the server to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Bind `config.listen`, spawn the server on the current tokio runtime and return.
pub async fn start(config: SimConfig) -> io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let knobs = Arc::new(Knobs::default());
    let stats = Arc::new(Stats::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let link_secret = format!("{:032x}", rand::random::<u128>());
    let secrets = Arc::new(Secrets::default());
    secrets.record(&link_secret);
    if let Some(auth) = &config.cdn_auth {
        secrets.record(&auth.private_key);
    }
    let base_url = format!("http://{addr}");
    let pikpak =
        Arc::new(pikpak::PikPakSim::new(base_url.clone(), link_secret.clone(), &config.data_dir, secrets.clone()));
    let pan123 = Arc::new(pan123::Pan123Sim::new(
        config.data_dir.clone(),
        base_url.clone(),
        link_secret.clone(),
        secrets.clone(),
    ));
    let s3 = Arc::new(s3::S3Sim::new(&config.data_dir));
    let api_calls = Arc::new(ApiCalls::default());
    let calls = api_calls.clone();
    let state = Arc::new(cdn::CdnState {
        data_dir: config.data_dir,
        auth: config.cdn_auth,
        link_secret,
        secrets: secrets.clone(),
        knobs: knobs.clone(),
        stats: stats.clone(),
        first_seen: Mutex::new(HashMap::new()),
        active: Default::default(),
        shutdown: shutdown_rx.clone(),
    });
    let app = Router::new()
        // `get` also answers HEAD (axum drops the body, keeps our Content-Length).
        .route("/cdn/{*path}", get(cdn::serve))
        .route("/_sim/knobs", get(get_knobs).put(put_knobs))
        .route("/_sim/stats", get(get_stats))
        .route("/_sim/stats/reset", post(reset_stats))
        .with_state(state)
        .merge(pikpak::router(pikpak.clone()))
        .merge(pan123::router(pan123.clone()))
        .merge(s3::router(s3.clone()))
        .route("/_sim/api_calls", get(move || std::future::ready(json(StatusCode::OK, &calls.snapshot()))))
        .layer(axum::middleware::from_fn_with_state((knobs.clone(), stats.clone(), api_calls.clone()), outage));
    let mut signal = shutdown_rx;
    let task = tokio::spawn(async move {
        let listener = conn::CuttableListener(listener);
        let app = app.into_make_service_with_connect_info::<conn::CutSwitch>();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = signal.wait_for(|v| *v).await;
        });
        if let Err(e) = server.await {
            tracing::warn!("simulator server ended: {e}");
        }
    });
    tracing::debug!(%addr, "simulator listening");
    Ok(SimHandle {
        addr,
        knobs,
        stats,
        pikpak,
        pan123,
        s3,
        api_calls,
        secrets,
        shutdown: shutdown_tx,
        task: Some(task),
    })
}

/// Calls of each provider's API, counted as they arrive (refused, faulted and rate-limited
/// ones included): what a client costs the service, e.g. API calls per uploaded file.
#[derive(Debug, Default)]
pub struct ApiCalls {
    /// PikPak's user and drive APIs (`/v1/...`, `/drive/v1/...`).
    pub pikpak: AtomicU64,
    /// 123pan's web API (`/api/...`, `/b/api/...`).
    pub pan123: AtomicU64,
}

impl ApiCalls {
    /// Count a request to `path` if it is an API call. The object stores, the CDN, 123pan's
    /// link hop and the admin routes are not.
    fn count(&self, path: &str) {
        let counter = if path.starts_with("/v1/") || path.starts_with("/drive/v1/") {
            &self.pikpak
        } else if path.starts_with("/api/") || path.starts_with("/b/api/") {
            &self.pan123
        } else {
            return;
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "pikpak": self.pikpak.load(Ordering::Relaxed),
            "pan123": self.pan123.load(Ordering::Relaxed),
        })
    }
}

/// `provider_down`: every request but the admin routes answers 503, before any route sees it;
/// `api_fault`: the next API calls answer what it says.
async fn outage(
    State((knobs, stats, api_calls)): State<(Arc<Knobs>, Arc<Stats>, Arc<ApiCalls>)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    api_calls.count(request.uri().path());
    if knobs.get().provider_down && !request.uri().path().starts_with("/_sim/") {
        Stats::add(&stats.down_refused, 1);
        let mut res = Response::new(Body::from("Service Unavailable"));
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return res;
    }
    let path = request.uri().path();
    if !path.starts_with("/cdn/") && !path.starts_with("/_sim/") {
        if let Some((status, body)) = knobs.take_api_fault(path) {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return json(status, &body);
        }
    }
    next.run(request).await
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    res
}

async fn get_knobs(State(st): State<Arc<cdn::CdnState>>) -> Response {
    json(StatusCode::OK, &st.knobs.get())
}

async fn put_knobs(State(st): State<Arc<cdn::CdnState>>, body: Bytes) -> Response {
    let parsed = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(KnobValues::default())
    } else {
        serde_json::from_slice::<KnobValues>(&body)
    };
    match parsed {
        Ok(values) => {
            st.knobs.set(values);
            json(StatusCode::OK, &st.knobs.get())
        }
        Err(e) => json(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": e.to_string() })),
    }
}

async fn get_stats(State(st): State<Arc<cdn::CdnState>>) -> Response {
    json(StatusCode::OK, &st.stats.snapshot())
}

async fn reset_stats(State(st): State<Arc<cdn::CdnState>>) -> Response {
    st.stats.reset();
    json(StatusCode::OK, &st.stats.snapshot())
}

/// `panmount sim`: serve `data` (or a freshly generated sample) until ctrl-c.
pub async fn run_cli(
    listen: SocketAddr,
    data: Option<PathBuf>,
    private_key: Option<String>,
    uid: u64,
) -> io::Result<()> {
    let generated = data.is_none();
    let data_dir = match data {
        Some(dir) => dir,
        None => {
            let dir = std::env::temp_dir().join(format!("panmount-sim-{}", std::process::id()));
            sample::generate(&dir)?;
            dir
        }
    };
    let cdn_auth = private_key.filter(|k| !k.is_empty()).map(|private_key| CdnAuth { private_key, uid });
    let signed = cdn_auth.is_some();
    let sim = start(SimConfig { listen, data_dir: data_dir.clone(), cdn_auth }).await?;
    // The handler is installed before the address is printed: whoever reads it may send
    // SIGINT at once, and `ctrl_c()` would only install it when first awaited.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    println!("listening on {}", sim.base_url());
    let auth = if signed { ", auth_key required" } else { "" };
    println!("data dir {} (served under /cdn/{auth})", data_dir.display());
    interrupt.recv().await;
    sim.shutdown().await;
    if generated {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    Ok(())
}
