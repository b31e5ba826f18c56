//! Simulated mutations (pikpak-protocol.md §8.1–§8.4, §13.16; the write decisions file):
//! mkdir, rename (PATCH), and the batch calls (move, trash, untrash, delete), each answering
//! `{"task_id"}` that resolves through `GET /drive/v1/tasks/{id}`. A batch's change lands when
//! its task completes (after the `batch_task_delay_ms` knob), so a client that does not wait
//! for the task sees the old tree. Requests that can never succeed (unknown ids, a move into
//! the moved folder itself or below it) are refused at once.
//!
//! Choices where the reference is silent: a move within the same folder is a no-op; batchDelete
//! removes the bytes from disk too (it is permanent); a rename of a trashed node is refused
//! like its detail (code 9 `file_in_recycle_bin`).

use std::path::Path;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::auth::check_drive;
use super::drive::file_json;
use super::knobs::Counters;
use super::tree::disk;
use super::{Inner, Node, PikPakSim, body_fields, error, field, ok, time, unix_now};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Move,
    Trash,
    Untrash,
    Delete,
    /// An upload's task: complete when its file is.
    Upload,
}

pub(crate) struct OpTask {
    pub id: String,
    pub kind: OpKind,
    pub ids: Vec<String>,
    /// Move destination (`""` = root).
    pub to: String,
    pub created_unix: u64,
    /// The task completes once the `batch_task_delay_ms` knob (as it is then) has passed since.
    pub created: Instant,
    pub applied: bool,
    /// Why the task ended in `PHASE_TYPE_ERROR`.
    pub error: Option<String>,
}

impl PikPakSim {
    /// The state, with every batch task whose time has come applied and every stored upload
    /// whose completion delay has passed complete.
    pub(crate) fn settled(&self) -> MutexGuard<'_, Inner> {
        let k = self.knobs();
        let (task_delay, completion_delay) =
            (Duration::from_millis(k.batch_task_delay_ms), Duration::from_millis(k.completion_delay_ms));
        let mut inner = self.lock();
        for n in inner.nodes.values_mut() {
            if !n.complete && n.stored_at.is_some_and(|t| t.elapsed() >= completion_delay) {
                n.complete = true;
            }
        }
        let mut due: Vec<(Instant, String)> = inner
            .ops
            .values()
            .filter(|o| !o.applied && o.created.elapsed() >= task_delay)
            .map(|o| (o.created, o.id.clone()))
            .collect();
        due.sort();
        for (_, id) in due {
            let result = apply(&mut inner, &self.data_dir, &id);
            if let Some(op) = inner.ops.get_mut(&id) {
                op.applied = true;
                op.error = result.err();
            }
        }
        inner
    }
}

fn apply(inner: &mut Inner, data_dir: &Path, op_id: &str) -> Result<(), String> {
    let Some(op) = inner.ops.get(op_id) else { return Ok(()) };
    let (kind, ids, to) = (op.kind, op.ids.clone(), op.to.clone());
    for id in &ids {
        if !inner.nodes.contains_key(id) {
            return Err(format!("file {id} not found"));
        }
        match kind {
            OpKind::Move => move_one(inner, data_dir, id, &to)?,
            OpKind::Trash => {
                let n = inner.nodes.get_mut(id).expect("checked");
                n.trashed = true;
                n.delete_time = unix_now();
            }
            OpKind::Untrash => untrash_one(inner, data_dir, id).map_err(|e| e.to_string())?,
            OpKind::Delete => delete_one(inner, data_dir, id),
            OpKind::Upload => {}
        }
    }
    Ok(())
}

fn move_one(inner: &mut Inner, data_dir: &Path, id: &str, to: &str) -> Result<(), String> {
    if !to.is_empty() && !inner.nodes.get(to).is_some_and(|n| n.is_dir) {
        return Err("destination folder not found".into());
    }
    if inner.is_within(to, id) {
        return Err("file_move_or_copy_to_cur".into());
    }
    if inner.nodes[id].parent_id == to {
        return Ok(());
    }
    let name = inner.free_name(to, &inner.nodes[id].name, id);
    let n = inner.nodes.get_mut(id).expect("checked");
    n.parent_id = to.to_owned();
    n.name = name;
    n.mtime = unix_now();
    inner.place(data_dir, id).map_err(|e| format!("move on disk: {e}"))
}

/// Out of the trash, back into its folder, renamed `name(1)` when the name was taken meanwhile.
pub(crate) fn untrash_one(inner: &mut Inner, data_dir: &Path, id: &str) -> std::io::Result<()> {
    let Some(n) = inner.nodes.get(id) else { return Ok(()) };
    if !n.trashed {
        return Ok(());
    }
    let name = inner.free_name(&n.parent_id.clone(), &n.name.clone(), id);
    let n = inner.nodes.get_mut(id).expect("checked");
    n.trashed = false;
    n.delete_time = 0;
    n.name = name;
    inner.place(data_dir, id)
}

/// Permanent: the node, everything below it, and their bytes.
fn delete_one(inner: &mut Inner, data_dir: &Path, id: &str) {
    let rel = inner.nodes[id].rel_path.clone();
    let doomed: Vec<String> =
        inner.nodes.values().filter(|n| inner.is_within(&n.id, id)).map(|n| n.id.clone()).collect();
    for d in doomed {
        inner.nodes.remove(&d);
    }
    let path = disk(data_dir, &rel);
    let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
}

/// A task object for `GET /drive/v1/tasks/{id}` (§8.6's shape; `type` says which operation).
pub(crate) fn op_json(inner: &Inner, op: &OpTask) -> Value {
    let (phase, message) = match (op.kind, op.applied, &op.error) {
        (OpKind::Upload, ..) => {
            let done = op.ids.first().and_then(|id| inner.nodes.get(id)).is_some_and(Node::is_complete);
            if done { ("PHASE_TYPE_COMPLETE", "") } else { ("PHASE_TYPE_PENDING", "") }
        }
        (_, false, _) => ("PHASE_TYPE_RUNNING", ""),
        (_, true, None) => ("PHASE_TYPE_COMPLETE", ""),
        (_, true, Some(e)) => ("PHASE_TYPE_ERROR", e.as_str()),
    };
    let kind = match op.kind {
        OpKind::Move => "move",
        OpKind::Trash => "trash",
        OpKind::Untrash => "untrash",
        OpKind::Delete => "delete",
        OpKind::Upload => "upload",
    };
    let file = op.ids.first().and_then(|id| inner.nodes.get(id));
    json!({
        "kind": "drive#task", "id": op.id, "name": file.map_or("", |n| n.name.as_str()), "type": kind,
        "user_id": "YRdkHHI8ZU8Ap0ER", "file_id": op.ids.first().cloned().unwrap_or_default(),
        "file_name": file.map_or("", |n| n.name.as_str()), "file_size": file.map_or(0, |n| n.size).to_string(),
        "message": message, "phase": phase, "progress": if phase == "PHASE_TYPE_COMPLETE" { 100 } else { 0 },
        "status_size": op.ids.len(), "statuses": [], "params": {},
        "created_time": time(op.created_unix), "updated_time": time(unix_now()),
        "third_task_id": "", "icon_link": "", "callback": "", "space": "", "reference_resource": null,
    })
}

/// Record a task; with no delay it lands at the next `settled()`.
pub(crate) fn add_op(inner: &mut Inner, kind: OpKind, ids: Vec<String>, to: String) -> String {
    inner.seq += 1;
    let id = format!("VTask{:021}", inner.seq);
    let created = Instant::now();
    let op = OpTask { id: id.clone(), kind, ids, to, created_unix: unix_now(), created, applied: false, error: None };
    inner.ops.insert(id.clone(), op);
    id
}

/// §8.1: a folder; duplicate names are allowed (the disk name then carries the id).
pub(super) fn mkdir(st: &PikPakSim, body: &Value) -> Response {
    let (parent, name) = (field(body, "parent_id"), field(body, "name"));
    if name.is_empty() {
        return error(StatusCode::BAD_REQUEST, "file_name_empty", 3, "The file name is empty");
    }
    let mut inner = st.settled();
    if !parent.is_empty() && !inner.nodes.get(&parent).is_some_and(|n| n.is_dir && !inner.in_trash(&n.id)) {
        return error(StatusCode::NOT_FOUND, "file_not_found", 5, "parent not found");
    }
    let id = inner.new_id(true);
    inner.nodes.insert(id.clone(), Node::new(id.clone(), parent, name, true, 0, String::new()));
    let rel = inner.disk_slot(&st.data_dir, &id);
    if let Err(e) = std::fs::create_dir(disk(&st.data_dir, &rel)) {
        inner.nodes.remove(&id);
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", 13, &format!("mkdir on disk: {e}"));
    }
    let n = inner.nodes.get_mut(&id).expect("just inserted");
    n.rel_path = rel;
    Counters::bump(&st.counters.mkdirs);
    ok(json!({ "upload_type": "", "file": file_json(n), "task": null }))
}

/// §8.2: `PATCH /drive/v1/files/{id}` `{"name"}` → the updated file.
pub(super) async fn rename(
    State(st): State<Arc<PikPakSim>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Err(r) = check_drive(&st, &headers, &format!("PATCH:{}", uri.path())) {
        return r;
    }
    let name = field(&body_fields(&body), "name");
    let mut inner = st.settled();
    let Some(n) = inner.nodes.get(&id) else {
        return error(StatusCode::NOT_FOUND, "file_not_found", 5, "File not found");
    };
    let refusal = if inner.in_trash(&id) {
        Some(("file_in_recycle_bin", 9, "The file is in the recycle bin"))
    } else if name.is_empty() {
        Some(("file_name_empty", 3, "The file name is empty"))
    } else if n.name == name {
        Some(("file_rename_to_same_name", 3, "The new name is the same as the old one"))
    } else if inner.name_taken(&n.parent_id, &name, &id) {
        Some(("file_duplicated_name", 3, "A file with this name already exists"))
    } else {
        None
    };
    if let Some((reason, code, text)) = refusal {
        return error(StatusCode::BAD_REQUEST, reason, code, text);
    }
    let n = inner.nodes.get_mut(&id).expect("checked");
    n.name = name;
    n.mtime = unix_now();
    if let Err(e) = inner.place(&st.data_dir, &id) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", 13, &format!("rename on disk: {e}"));
    }
    Counters::bump(&st.counters.renames);
    ok(file_json(&inner.nodes[&id]))
}

/// `POST /drive/v1/files:{batchMove,batchTrash,batchUntrash,batchDelete}` `{"ids", "to"}`.
pub(super) async fn batch(State(st): State<Arc<PikPakSim>>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let action = uri.path().trim_start_matches("/drive/v1/");
    let (kind, counter) = match action {
        "files:batchMove" => (OpKind::Move, &st.counters.batch_moves),
        "files:batchTrash" => (OpKind::Trash, &st.counters.batch_trashes),
        "files:batchUntrash" => (OpKind::Untrash, &st.counters.batch_untrashes),
        "files:batchDelete" => (OpKind::Delete, &st.counters.batch_deletes),
        _ => return error(StatusCode::NOT_FOUND, "not_found", 5, "no such call"),
    };
    if let Err(r) = check_drive(&st, &headers, &format!("POST:/drive/v1/{action}")) {
        return r;
    }
    Counters::bump(counter);
    let body = body_fields(&body);
    let ids: Vec<String> =
        body["ids"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect();
    let to = body["to"].get("parent_id").and_then(Value::as_str).unwrap_or("").to_owned();
    let mut inner = st.settled();
    if ids.is_empty() {
        return error(StatusCode::BAD_REQUEST, "invalid_argument", 3, "ids is empty");
    }
    if let Some(missing) = ids.iter().find(|id| !inner.nodes.contains_key(*id)) {
        return error(StatusCode::NOT_FOUND, "file_not_found", 5, &format!("File {missing} not found"));
    }
    if kind == OpKind::Move {
        if !to.is_empty() && !inner.nodes.get(&to).is_some_and(|n| n.is_dir && !inner.in_trash(&to)) {
            return error(StatusCode::NOT_FOUND, "file_not_found", 5, "destination folder not found");
        }
        if ids.iter().any(|id| inner.is_within(&to, id)) {
            return error(
                StatusCode::BAD_REQUEST,
                "file_move_or_copy_to_cur",
                9,
                "Cannot move a folder into itself or a folder below it",
            );
        }
    }
    let task_id = add_op(&mut inner, kind, ids, to);
    drop(inner);
    drop(st.settled());
    ok(json!({ "task_id": task_id }))
}
