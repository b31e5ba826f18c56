//! Upload init (pikpak-protocol.md §8.7, §13.17; the write decisions file): `POST
//! /drive/v1/files` with `kind` `drive#file`. A known GCID (a complete, untrashed file of that
//! hash and size anywhere in the drive) or size 0 makes the file complete at once with no
//! credentials (an instant upload). Otherwise the answer is a `PHASE_TYPE_PENDING` file,
//! `resumable` credentials for the object store on this listener (see [`super::objects`]) and
//! an upload task. A name taken in the folder (by a complete or pending node) gets `name(1)`.
//! Init checks the quota (code 8) and may be answered 429 by the `init_429_count` knob.
//!
//! Also [`store_object`]: what happens when the object store has the whole object.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::drive::file_json;
use super::knobs::Counters;
use super::mutate::{OpKind, add_op};
use super::tree::disk;
use super::{Inner, Node, PikPakSim, error, field, ok, time, unix_now};
use crate::sim::gcid;

/// The bucket the credentials name; the object store answers under `/<BUCKET>/<key>`.
pub const BUCKET: &str = "sim-pikpak-upload";

/// One init's credentials and object.
pub(crate) struct Upload {
    pub file_id: String,
    pub key: String,
    pub access_key_id: String,
    pub access_key_secret: String,
    pub security_token: String,
    pub expires: SystemTime,
    /// Multipart uploads in progress: upload id → part number → part.
    pub multipart: HashMap<String, BTreeMap<u32, Part>>,
}

pub(crate) struct Part {
    /// Uppercase hex MD5 of the part, as its `ETag` (quoted on the wire).
    pub etag: String,
    pub path: PathBuf,
    pub size: u64,
}

fn size_field(body: &Value) -> Option<u64> {
    match &body["size"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub(super) fn init(st: &PikPakSim, body: &Value) -> Response {
    if st.take_count(|k| &mut k.init_429_count) {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "aborted",
            10,
            "Your operation is too frequent, please try again later",
        );
    }
    let (parent, name, hash) = (field(body, "parent_id"), field(body, "name"), field(body, "hash").to_uppercase());
    let Some(size) = size_field(body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_argument", 3, "size is required");
    };
    if name.is_empty() {
        return error(StatusCode::BAD_REQUEST, "file_name_empty", 3, "The file name is empty");
    }
    let k = st.knobs();
    let mut inner = st.settled();
    if !parent.is_empty() && !inner.nodes.get(&parent).is_some_and(|n| n.is_dir && !inner.in_trash(&n.id)) {
        return error(StatusCode::NOT_FOUND, "file_not_found", 5, "parent not found");
    }
    if size > k.quota_limit.saturating_sub(inner.usage()) {
        return error(StatusCode::BAD_REQUEST, "file_space_not_enough", 8, "Storage space is not enough");
    }
    let name = inner.free_name(&parent, &name, "");
    let id = inner.new_id(false);
    let mut node = Node::new(id.clone(), parent, name, false, size, String::new());
    node.hash = hash.clone();
    Counters::bump(&st.counters.upload_inits);
    let source = if size == 0 { Some(None) } else { known_content(&mut inner, &st.data_dir, &hash, size).map(Some) };
    if let Some(source) = source {
        node.hash = if size == 0 { gcid::EMPTY.to_owned() } else { hash };
        node.gcid = Some(node.hash.clone());
        inner.nodes.insert(id.clone(), node);
        let rel = inner.disk_slot(&st.data_dir, &id);
        let written = match source {
            None => std::fs::write(disk(&st.data_dir, &rel), b""),
            Some(from) => crate::sim::store::copy_bytes(&disk(&st.data_dir, &from), &disk(&st.data_dir, &rel)),
        };
        if let Err(e) = written {
            inner.nodes.remove(&id);
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", 13, &format!("write on disk: {e}"));
        }
        inner.nodes.get_mut(&id).expect("just inserted").rel_path = rel;
        Counters::bump(&st.counters.instant_uploads);
        let file = file_json(&inner.nodes[&id]);
        return ok(json!({ "upload_type": "UPLOAD_TYPE_RESUMABLE", "file": file, "resumable": null, "task": null }));
    }
    node.complete = false;
    inner.nodes.insert(id.clone(), node);
    let rel = inner.disk_slot(&st.data_dir, &id);
    inner.nodes.get_mut(&id).expect("just inserted").rel_path = rel;
    let upload = credentials(st, &id, &k.user_id, k.upload_creds_ttl_secs);
    let params = json!({
        "access_key_id": upload.access_key_id, "access_key_secret": upload.access_key_secret, "bucket": BUCKET,
        "endpoint": st.base_url.trim_start_matches("http://"), "expiration": time(unix_now() + k.upload_creds_ttl_secs),
        "key": upload.key, "security_token": upload.security_token,
    });
    inner.uploads.insert(upload.key.clone(), upload);
    let task_id = add_op(&mut inner, OpKind::Upload, vec![id.clone()], String::new());
    let task = super::mutate::op_json(&inner, &inner.ops[&task_id]);
    let file = file_json(&inner.nodes[&id]);
    ok(json!({
        "upload_type": "UPLOAD_TYPE_RESUMABLE", "file": file, "task": task,
        "resumable": {"kind": "drive#resumable", "provider": "PROVIDER_ALIYUN", "params": params},
    }))
}

/// Fresh STS-like credentials for the object of file `id`, recorded as secrets.
fn credentials(st: &PikPakSim, id: &str, user_id: &str, ttl_secs: u64) -> Upload {
    let upload = Upload {
        file_id: id.to_owned(),
        key: format!("{user_id}/{id}"),
        access_key_id: format!("STS.{:024x}", rand::random::<u128>() >> 32),
        access_key_secret: format!("{:040x}", rand::random::<u128>()),
        security_token: format!("CAIS{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>()),
        expires: SystemTime::now() + Duration::from_secs(ttl_secs),
        multipart: HashMap::new(),
    };
    for secret in [&upload.access_key_id, &upload.access_key_secret, &upload.security_token] {
        st.secrets.record(secret);
    }
    upload
}

/// The `rel_path` of a complete, untrashed file with GCID `hash` and `size`: one that lists
/// that hash (what the service lists is the GCID it indexes, so a scanned file's stand-in
/// counts too: a copy by the hash a listing showed finds it), else one whose real GCID it is
/// (scanned files of that size get theirs computed now, once).
fn known_content(inner: &mut Inner, data_dir: &Path, hash: &str, size: u64) -> Option<String> {
    let candidates: Vec<String> = inner
        .nodes
        .values()
        .filter(|n| !n.is_dir && n.size == size && n.is_complete() && n.listed_size.is_none())
        .map(|n| n.id.clone())
        .collect();
    let live = |id: &String| !inner.in_trash(id);
    if let Some(listed) = candidates.iter().filter(|id| live(id)).find(|id| inner.nodes[*id].hash == hash) {
        return Some(inner.nodes[listed].rel_path.clone());
    }
    for id in candidates {
        if inner.in_trash(&id) {
            continue;
        }
        let n = inner.nodes.get_mut(&id).expect("listed");
        if n.gcid.is_none() {
            n.gcid = gcid::of_file(&disk(data_dir, &n.rel_path)).ok();
        }
        if n.gcid.as_deref() == Some(hash) {
            return Some(n.rel_path.clone());
        }
    }
    None
}

/// The object at `key` is complete with the bytes in `staged`: put them in place, set the
/// file's size and hash from them, and let it turn COMPLETE after the completion delay.
pub(super) async fn store_object(st: &PikPakSim, key: &str, staged: PathBuf) -> Result<(), String> {
    let path = staged.clone();
    let hash = tokio::task::spawn_blocking(move || gcid::of_file(&path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("hash: {e}"))?;
    let size = std::fs::metadata(&staged).map_err(|e| e.to_string())?.len();
    let mut inner = st.settled();
    let file_id = inner.uploads.get(key).map(|u| u.file_id.clone()).ok_or("no such upload")?;
    if !inner.nodes.contains_key(&file_id) {
        return Err("the file is gone".into());
    }
    let rel = inner.disk_slot(&st.data_dir, &file_id);
    let target = disk(&st.data_dir, &rel);
    std::fs::rename(&staged, &target)
        .or_else(|_| std::fs::copy(&staged, &target).map(|_| ()))
        .map_err(|e| format!("store on disk: {e}"))?;
    let _ = std::fs::remove_file(&staged);
    let n = inner.nodes.get_mut(&file_id).expect("checked");
    n.rel_path = rel;
    n.size = size;
    n.hash = hash.clone();
    n.gcid = Some(hash);
    n.mtime = unix_now();
    n.stored_at = Some(Instant::now());
    Ok(())
}

impl PikPakSim {
    /// Take one from a count-down knob (`init_429_count`, `put_fault_count`): whether it was
    /// above zero.
    pub(crate) fn take_count(&self, f: impl FnOnce(&mut super::PikPakKnobs) -> &mut u32) -> bool {
        let mut k = self.knobs.lock().unwrap();
        let count = f(&mut k);
        let taken = *count > 0;
        *count = count.saturating_sub(1);
        taken
    }

    /// Where upload bodies and parts wait (created on first use).
    pub(crate) fn staging_file(&self, name: &str) -> std::io::Result<PathBuf> {
        self.staging.file(name)
    }
}
