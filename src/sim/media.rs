//! A fake media server for the library refresh hooks (`crate::notify`): it records every
//! request (method, path, query, headers, body) and answers with scripted statuses, so a test
//! checks the exact requests a Jellyfin, Emby or Plex would get, and a failing server.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The raw query (still percent-encoded), empty when there is none.
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Received {
    /// A header's value (names are lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct Script {
    received: Vec<Received>,
    /// Statuses for the next requests, then `status`.
    next: VecDeque<u16>,
    status: u16,
    /// Bodies by path (with a 200 unless `next` says otherwise).
    bodies: HashMap<String, String>,
}

/// The fake server, on the runtime that started it (stops with it).
#[derive(Clone)]
pub struct FakeMedia {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
}

impl FakeMedia {
    /// Listen on loopback; every request gets `status` until told otherwise.
    pub async fn start(status: u16) -> std::io::Result<FakeMedia> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let script = Arc::new(Mutex::new(Script { status, ..Script::default() }));
        let app = Router::new().fallback(record).with_state(script.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(FakeMedia { addr, script })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next requests get these statuses, in order.
    pub fn then(&self, statuses: &[u16]) {
        self.script.lock().unwrap().next.extend(statuses);
    }

    /// Requests to `path` get `body` (JSON).
    pub fn serve(&self, path: &str, body: &str) {
        self.script.lock().unwrap().bodies.insert(path.to_owned(), body.to_owned());
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }
}

async fn record(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut script = script.lock().unwrap();
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    script.received.push(Received {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let body = script.bodies.get(uri.path()).cloned();
    let status = script.next.pop_front().unwrap_or(if body.is_some() { 200 } else { script.status });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match body {
        Some(body) if status.is_success() => (status, [("content-type", "application/json")], body).into_response(),
        _ => status.into_response(),
    }
}
