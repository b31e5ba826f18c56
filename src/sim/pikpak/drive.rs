//! Simulated drive API (pikpak-protocol.md §7, §8.5, §8.6, §13.10–§13.19): listing with filters
//! (`phase`, `trashed`, `kind`) and page tokens, file detail with signed links and medias
//! (pending files without links, trashed ones refused with code 9), quota, offline tasks. D3
//! hands folders to `mutate::mkdir` and uploads to `upload::init`; T2 also answers the batch
//! and upload tasks of `mutate`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::auth::check_drive;
use super::knobs::Counters;
use super::{Inner, Node, PikPakSim, TaskRec, body_fields, error, field, md5_hex, ok, time, unix_now};

type Q = Query<HashMap<String, String>>;

/// A file object as listings show it (§7.3, §13.11: `links` and `medias` always present).
pub(super) fn file_json(n: &Node) -> Value {
    let ext = n.name.rfind('.').map(|i| n.name[i..].to_owned()).unwrap_or_default();
    let deleted = if n.trashed { time(n.delete_time) } else { String::new() };
    json!({
        "kind": if n.is_dir { "drive#folder" } else { "drive#file" },
        "id": n.id, "parent_id": n.parent_id, "name": n.name, "user_id": "YRdkHHI8ZU8Ap0ER",
        "size": n.listed_size.clone().unwrap_or_else(|| json!(n.size.to_string())), "revision": "1", "file_extension": ext,
        "mime_type": if n.is_dir { "" } else { "application/octet-stream" },
        "starred": false, "web_content_link": "",
        "created_time": time(n.mtime), "modified_time": time(n.mtime), "user_modified_time": time(n.mtime),
        "icon_link": "", "thumbnail_link": "", "md5_checksum": "", "hash": n.hash,
        "links": {}, "phase": n.phase(),
        "audit": {"status": "STATUS_OK", "message": "Normal resource", "title": ""},
        "medias": [], "trashed": n.trashed, "delete_time": deleted, "original_url": "", "params": {},
        "original_file_index": 0, "space": "", "apps": [], "writable": true, "folder_type": "NORMAL",
        "collection": null,
    })
}

/// A media object (§7.3) for a link.
fn media(name: &str, origin: bool, url: &str, expire_json: &str) -> Value {
    json!({
        "media_id": md5_hex(url.as_bytes())[..8], "media_name": name, "is_origin": origin, "is_default": origin,
        "priority": if origin { 0 } else { 1 }, "category": if origin { "category_origin" } else { "category_transcode" },
        "resolution_name": if origin { "Original" } else { "720P" }, "is_visible": true, "need_more_quota": false,
        "vip_types": [], "redirect_link": "", "icon_link": "",
        "video": {"height": 720, "width": 1280, "duration": 60, "bit_rate": 800_000, "frame_rate": 24,
                  "video_codec": "h264", "audio_codec": "aac", "video_type": if origin { "mp4" } else { "mpegts" }},
        "link": {"url": url, "token": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "expire": expire_json},
    })
}

/// The file with its links (D2, S3): `web_content_link`, `links[octet-stream]`, `medias`.
/// `transcode_first` puts a transcode (another file, of another size) in front, as the
/// personal detail does under the `transcode` knob; otherwise the transcode comes second.
pub(super) fn detail_json(
    st: &PikPakSim,
    inner: &Inner,
    n: &Node,
    with_web_link: bool,
    transcode: Option<bool>,
) -> Value {
    let mut v = file_json(n);
    let knobs = st.knobs();
    let expire = unix_now() + knobs.link_ttl_secs;
    // §10.2: the JSON `expire` is 12 h before the URL's.
    let expire_json = time(expire.saturating_sub(12 * 3600));
    let fid = format!("F{}", &n.id[5..]);
    let url = st.cdn_link(&n.rel_path, &fid, n.size, expire);
    v["web_content_link"] = json!(if with_web_link { url.clone() } else { String::new() });
    v["links"] = json!({ "application/octet-stream": {"url": url, "token": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "expire": expire_json} });
    let origin = media("Original", true, &url, &expire_json);
    // The "transcode": the largest other file of a different size stands in for it.
    let other = inner
        .nodes
        .values()
        .filter(|o| !o.is_dir && o.is_complete() && o.size != n.size && o.size > 0)
        .max_by_key(|o| (o.size, o.id.clone()));
    let trans = other.map(|o| {
        media("720P", false, &st.cdn_link(&o.rel_path, &format!("T{}", &o.id[5..]), o.size, expire), &expire_json)
    });
    v["medias"] = match (transcode, trans) {
        (Some(true), Some(t)) => json!([t, origin]),
        (Some(false), Some(t)) => json!([origin, t]),
        _ => json!([origin]),
    };
    v
}

/// The `filters` a listing honours (§7.1): `phase` (`eq` or `in`), `trashed` and `kind` (`eq`).
/// A node counts as trashed when it or a folder above it is in the trash.
#[derive(Default)]
pub(super) struct ListFilter {
    phases: Option<Vec<String>>,
    trashed: Option<bool>,
    kind: Option<String>,
}

impl ListFilter {
    /// What clients ask for in practice: complete, untrashed items.
    pub(super) fn visible() -> Self {
        ListFilter { phases: Some(vec!["PHASE_TYPE_COMPLETE".into()]), trashed: Some(false), kind: None }
    }

    /// From the `filters` query parameter (already checked by [`check_filters`]).
    pub(super) fn parse(q: &HashMap<String, String>) -> Self {
        let v = q.get("filters").and_then(|f| serde_json::from_str::<Value>(f).ok()).unwrap_or_default();
        let phases = match (&v["phase"]["eq"], &v["phase"]["in"]) {
            (Value::String(p), _) => Some(vec![p.clone()]),
            (_, Value::String(list)) => Some(list.split(',').map(str::to_owned).collect()),
            _ => None,
        };
        let trashed = match &v["trashed"]["eq"] {
            Value::Bool(b) => Some(*b),
            Value::String(s) => Some(s == "true"),
            _ => None,
        };
        ListFilter { phases, trashed, kind: v["kind"]["eq"].as_str().map(str::to_owned) }
    }

    fn admits(&self, inner: &Inner, n: &Node) -> bool {
        let kind = if n.is_dir { "drive#folder" } else { "drive#file" };
        self.phases.as_ref().is_none_or(|p| p.iter().any(|x| x == n.phase()))
            && self.trashed.is_none_or(|t| t == inner.in_trash(&n.id))
            && self.kind.as_deref().is_none_or(|k| k == kind)
    }
}

/// Children of `parent` the filter admits, sorted by name, one page: (files, next_page_token).
pub(super) fn page(
    st: &PikPakSim,
    inner: &Inner,
    parent: &str,
    limit: &str,
    token: &str,
    filter: &ListFilter,
) -> Result<(Vec<Value>, String), Response> {
    let mut kids: Vec<&Node> =
        inner.nodes.values().filter(|n| n.parent_id == parent && filter.admits(inner, n)).collect();
    if !parent.is_empty() && !inner.nodes.get(parent).is_some_and(|n| n.is_dir) {
        return Err(error(StatusCode::NOT_FOUND, "file_not_found", 5, "parent not found"));
    }
    kids.sort_by(|a, b| a.name.cmp(&b.name));
    let size = limit.parse::<usize>().unwrap_or(100).clamp(1, st.knobs().page_size.max(1));
    let start: usize = match token {
        "" => 0,
        t => t
            .strip_prefix("pt-")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| error(StatusCode::BAD_REQUEST, "invalid_argument", 3, "bad page_token"))?,
    };
    let end = (start + size).min(kids.len());
    let files = kids.get(start..end).unwrap_or_default().iter().map(|n| file_json(n)).collect();
    let next = if end < kids.len() { format!("pt-{end}") } else { String::new() };
    Counters::bump(&st.counters.list_pages);
    Ok((files, next))
}

/// §7.1 filters: only the known fields; anything else is 404 (§13.13).
pub(super) fn check_filters(q: &HashMap<String, String>) -> Result<(), Response> {
    let Some(text) = q.get("filters").filter(|s| !s.is_empty()) else { return Ok(()) };
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return Err(error(StatusCode::BAD_REQUEST, "invalid_argument", 3, "filters is not JSON"));
    };
    match map
        .keys()
        .find(|k| !["phase", "trashed", "kind", "starred", "modified_time", "system_tag"].contains(&k.as_str()))
    {
        Some(k) => Err(error(StatusCode::NOT_FOUND, "not_found", 5, &format!("unknown filter field {k}"))),
        None => Ok(()),
    }
}

pub(super) async fn list(State(st): State<Arc<PikPakSim>>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = check_drive(&st, &headers, "GET:/drive/v1/files").and_then(|()| check_filters(&q)) {
        return r;
    }
    st.settle_tasks();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let inner = st.settled();
    match page(&st, &inner, &get("parent_id"), &get("limit"), &get("page_token"), &ListFilter::parse(&q)) {
        Ok((files, next)) => ok(
            json!({ "kind": "drive#fileList", "next_page_token": next, "files": files, "version": "", "version_outdated": false }),
        ),
        Err(r) => r,
    }
}

pub(super) async fn detail(
    State(st): State<Arc<PikPakSim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    if let Err(r) = check_drive(&st, &headers, &format!("GET:{}", uri.path())) {
        return r;
    }
    Counters::bump(&st.counters.details);
    st.settle_tasks();
    let inner = st.settled();
    let Some(n) = inner.nodes.get(&id) else {
        return error(StatusCode::NOT_FOUND, "file_not_found", 5, "File not found");
    };
    if inner.in_trash(&id) {
        return error(StatusCode::BAD_REQUEST, "file_in_recycle_bin", 9, "The file is in the recycle bin");
    }
    if n.is_dir || !n.is_complete() {
        return ok(file_json(n));
    }
    let transcode = st.knobs().transcode.then_some(true);
    ok(detail_json(&st, &inner, n, true, transcode))
}

pub(super) async fn about(State(st): State<Arc<PikPakSim>>, headers: HeaderMap) -> Response {
    Counters::bump(&st.counters.abouts);
    if let Err(r) = check_drive(&st, &headers, "GET:/drive/v1/about") {
        return r;
    }
    let usage = st.settled().usage();
    ok(json!({
        "kind": "drive#about",
        "quota": {"kind": "drive#quota", "limit": st.knobs().quota_limit.to_string(), "usage": usage.to_string(),
                  "usage_in_trash": "0", "play_times_limit": "-1", "play_times_usage": "0", "is_unlimited": false},
        "expires_at": "", "quotas": {},
    }))
}

/// D3: a folder (`kind` `drive#folder`), an upload (`drive#file`, see [`super::upload`]) or an
/// offline task (`UPLOAD_TYPE_URL`).
pub(super) async fn create(State(st): State<Arc<PikPakSim>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = check_drive(&st, &headers, "POST:/drive/v1/files") {
        return r;
    }
    let body = body_fields(&body);
    if field(&body, "upload_type") != "UPLOAD_TYPE_URL" {
        return match field(&body, "kind").as_str() {
            "drive#folder" => super::mutate::mkdir(&st, &body),
            "drive#file" => super::upload::init(&st, &body),
            _ => error(StatusCode::BAD_REQUEST, "invalid_argument", 3, "unknown kind"),
        };
    }
    let url = body.get("url").map(|u| field(u, "url")).unwrap_or_default();
    if url.is_empty() {
        return error(StatusCode::BAD_REQUEST, "invalid_argument", 3, "url is required");
    }
    let parent = field(&body, "parent_id");
    let mut inner = st.lock();
    if !parent.is_empty() && !inner.nodes.get(&parent).is_some_and(|n| n.is_dir) {
        return error(StatusCode::NOT_FOUND, "file_not_found", 5, "parent not found");
    }
    inner.seq += 1;
    let seq = inner.seq;
    let name = offline_name(&url, seq);
    let rel = format!("{}/{name}", inner.nodes.get(&parent).map(|n| n.rel_path.as_str()).unwrap_or(""));
    let rec = TaskRec {
        id: format!("VTask{:021}", seq),
        name,
        url,
        parent_id: parent,
        file_id: super::node_id(false, &rel),
        created: Instant::now(),
        created_unix: unix_now(),
        done: false,
    };
    let task = task_json(&st, &rec);
    inner.tasks.push(rec);
    ok(json!({ "upload_type": "UPLOAD_TYPE_URL", "url": {"kind": "upload#url"}, "file": null, "task": task }))
}

/// The file name a task produces: a magnet's `dn`, else the URL's last path segment.
fn offline_name(url: &str, seq: u64) -> String {
    let parsed = url::Url::parse(url).ok();
    let dn = parsed.as_ref().and_then(|u| u.query_pairs().find(|(k, _)| k == "dn").map(|(_, v)| v.into_owned()));
    let last = parsed.as_ref().and_then(|u| u.path_segments().and_then(|mut s| s.next_back().map(str::to_owned)));
    dn.or(last)
        .filter(|n| !n.is_empty() && !n.contains('/') && !n.contains(':'))
        .unwrap_or_else(|| format!("offline-{seq}.bin"))
}

fn task_json(st: &PikPakSim, t: &TaskRec) -> Value {
    let delay = st.knobs().offline_delay_ms.max(1) as f64;
    let progress =
        if t.done { 100 } else { ((t.created.elapsed().as_millis() as f64 / delay) * 100.0).min(99.0) as u64 };
    let phase = if t.done { "PHASE_TYPE_COMPLETE" } else { "PHASE_TYPE_RUNNING" };
    json!({
        "kind": "drive#task", "id": t.id, "name": t.name, "type": "offline", "user_id": "YRdkHHI8ZU8Ap0ER",
        "file_id": t.file_id, "file_name": t.name, "file_size": super::OFFLINE_FILE_SIZE.to_string(),
        "message": if t.done { "Saved" } else { "Saving" }, "phase": phase, "progress": progress,
        "status_size": 1, "statuses": [],
        "params": {"age": "0", "predict_speed": "0", "predict_type": "1", "url": t.url},
        "created_time": time(t.created_unix), "updated_time": time(unix_now()),
        "third_task_id": "", "icon_link": "", "callback": "", "space": "", "reference_resource": null,
    })
}

pub(super) async fn tasks(State(st): State<Arc<PikPakSim>>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = check_drive(&st, &headers, "GET:/drive/v1/tasks") {
        return r;
    }
    st.settle_tasks();
    let phases = q
        .get("filters")
        .and_then(|f| serde_json::from_str::<Value>(f).ok())
        .and_then(|v| v["phase"]["in"].as_str().map(str::to_owned));
    let inner = st.lock();
    let list: Vec<Value> = inner
        .tasks
        .iter()
        .map(|t| task_json(&st, t))
        .filter(|t| phases.as_deref().is_none_or(|p| p.split(',').any(|x| t["phase"] == x)))
        .collect();
    ok(json!({ "tasks": list, "next_page_token": "", "expires_in": 10 }))
}

pub(super) async fn task(
    State(st): State<Arc<PikPakSim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    if let Err(r) = check_drive(&st, &headers, &format!("GET:{}", uri.path())) {
        return r;
    }
    st.settle_tasks();
    let inner = st.settled();
    if let Some(op) = inner.ops.get(&id) {
        return ok(super::mutate::op_json(&inner, op));
    }
    match inner.tasks.iter().find(|t| t.id == id) {
        Some(t) => ok(task_json(&st, t)),
        None => error(StatusCode::NOT_FOUND, "task_not_found", 5, "Task not found"),
    }
}

/// T3: `task_ids` comma-separated or repeated; an empty 200 body (§8.6).
pub(super) async fn delete_tasks(State(st): State<Arc<PikPakSim>>, headers: HeaderMap, uri: Uri) -> Response {
    if let Err(r) = check_drive(&st, &headers, "DELETE:/drive/v1/tasks") {
        return r;
    }
    let ids: Vec<String> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "task_ids")
        .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    st.lock().tasks.retain(|t| !ids.contains(&t.id));
    let mut res = Response::new(axum::body::Body::empty());
    *res.status_mut() = StatusCode::OK;
    res
}
