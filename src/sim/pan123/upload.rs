//! Uploads (pan123-protocol.md §2.7, §5, §6 item 10), the presigned flow of today's service:
//! `upload_request` (`type:0`; `type:1` is mkdir, see `mutate`) → `s3_upload_object/auth` or
//! `s3_repare_upload_parts_batch` (URLs for parts `[partNumberStart, partNumberEnd)`) → part
//! PUTs (see `objects`) → `upload_complete/v2`, which joins the parts in order, checks their
//! size and MD5 against the request and creates the file. `s3_list_upload_parts` answers the
//! parts received so far (`Parts: null` when none). Calls name the upload by `uploadId` (and
//! `key`); a completion without `uploadId` is matched by `fileId`. `SliceSize` is not
//! enforced: parts may have any size (the service's rule is unknown, §7).
//!
//! - A file of the same MD5 and size anywhere in the drive (not in the trash) makes the upload
//!   instant: the file is created at once and the answer is `Reuse:true` with its `FileId`
//!   (RC saw `FileId:0` there: knob `reuse_file_id_zero`).
//! - Names: `duplicate:2` replaces a same-name file (it goes to the trash) while the
//!   `honor_overwrite` knob is on; otherwise, and for `duplicate` 1, 0 or absent, a taken name
//!   becomes `name(1)`. Decided when the file is created (completion or instant upload); a
//!   folder of that name is never replaced.
//! - `new_id_on_complete`: the file gets another FileId than upload_request answered (RC).
//!
//! Error codes where the reference has none (§7; all guesses, as constants): 5060 for a
//! 0-byte upload (`refuse_empty`; users report the service refuses them), 5054 when the space
//! is full (`quota_limit`), 5058 when parts are missing or their sizes do not add up, 5059 when
//! the joined parts' MD5 is not the requested `etag`, 5066 (known) for an unknown upload or
//! folder, 1 for a malformed body.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use md5::{Digest, Md5};
use serde_json::{Value, json};

use super::edit::NewFile;
use super::routes::{Fail, Reply, fail, field, int, ok, personal_post, text};
use super::tree::UID;
use super::{Pan123Counters, Pan123Sim, mutate, objects};
use crate::sim::store::copy_bytes;

pub const EMPTY_REFUSED: i64 = 5060;
pub const SPACE_FULL: i64 = 5054;
pub const PARTS_INCOMPLETE: i64 = 5058;
pub const MD5_MISMATCH: i64 = 5059;

/// MD5 of no bytes.
pub const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";
/// What upload_request answers as `Bucket`, `StorageNode` and `EndPoint`'s host.
pub const BUCKET: &str = "sim123-bucket";
pub const STORAGE_NODE: &str = "m76";

/// One upload between upload_request and completion.
pub(crate) struct Upload {
    /// The `FileId` upload_request answered.
    pub file_id: i64,
    pub parent: i64,
    pub name: String,
    pub size: u64,
    pub etag: String,
    /// `duplicate:2` with `honor_overwrite`.
    pub replace: bool,
    pub key: String,
    pub parts: BTreeMap<u32, Part>,
}

pub(crate) struct Part {
    pub path: PathBuf,
    pub size: u64,
    /// Lowercase hex MD5 (the PUT's `ETag`).
    pub etag: String,
}

pub(crate) fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn upload_request(sim: &Pan123Sim, body: &Value) -> Reply {
    match int(field(body, "type")) {
        Some(1) => mutate::mkdir(sim, body),
        _ => request_file(sim, body),
    }
}

fn bad() -> Fail {
    fail(1, "参数错误")
}

fn request_file(sim: &Pan123Sim, body: &Value) -> Reply {
    Pan123Counters::add(&sim.counters.upload_requests);
    let k = sim.knobs();
    let parent = int(field(body, "parentFileId")).unwrap_or(0);
    let name = text(field(body, "fileName"));
    let size = int(field(body, "size")).and_then(|s| u64::try_from(s).ok()).ok_or_else(bad)?;
    let mut etag = text(field(body, "etag")).to_ascii_lowercase();
    if name.is_empty() {
        return Err(fail(mutate::INVALID, "文件名不能为空"));
    }
    if sim.tree.node(parent).is_none_or(|n| !n.is_dir) {
        return Err(fail(mutate::NOT_FOUND, "文件不存在"));
    }
    if size == 0 {
        if k.refuse_empty {
            return Err(fail(EMPTY_REFUSED, "不能上传空文件"));
        }
        etag = EMPTY_MD5.to_string();
    }
    if etag.len() != 32 || !etag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    if size > k.quota_limit.saturating_sub(sim.tree.usage().0) {
        return Err(fail(SPACE_FULL, "空间不足"));
    }
    let replace = int(field(body, "duplicate")) == Some(2) && k.honor_overwrite;
    let key = format!("{UID}-0/{etag}");
    // Instant: the bytes are staged first, the source may be the very file a replace trashes.
    let source = if size == 0 { None } else { sim.tree.find_content(&etag, size) };
    if size == 0 || source.is_some() {
        let staged = sim.tree.staging.file(&format!("instant-{:032x}", rand::random::<u128>()));
        let staged = staged
            .and_then(|p| match &source {
                Some(from) => copy_bytes(from, &p).map(|_| p),
                None => std::fs::write(&p, b"").map(|_| p),
            })
            .map_err(|e| fail(1, &e.to_string()))?;
        let made = sim.tree.add_file(&NewFile { parent, name: &name, md5: &etag, id: None, replace }, &staged);
        if made.is_err() {
            let _ = std::fs::remove_file(&staged);
        }
        let (node, replaced) = made?;
        if replaced.is_some() {
            Pan123Counters::add(&sim.counters.trashes);
        }
        Pan123Counters::add(&sim.counters.instant_uploads);
        let id = if k.reuse_file_id_zero { 0 } else { node.id };
        return Ok(ok(answer(sim, id, true, &key, "", k.slice_size)));
    }
    let file_id = sim.tree.new_id();
    let upload_id = format!("{:032x}", rand::random::<u128>());
    let upload = Upload { file_id, parent, name, size, etag, replace, key: key.clone(), parts: BTreeMap::new() };
    sim.uploads.lock().unwrap().insert(upload_id.clone(), upload);
    Ok(ok(answer(sim, file_id, false, &key, &upload_id, k.slice_size)))
}

/// upload_request's `data` (§2.7 step 2, §5).
fn answer(sim: &Pan123Sim, file_id: i64, reuse: bool, key: &str, upload_id: &str, slice: u64) -> Value {
    json!({
        "AccessKeyId": null, "SecretAccessKey": null, "SessionToken": null, "Expiration": null,
        "Bucket": BUCKET, "Key": key, "FileId": file_id, "Reuse": reuse,
        "EndPoint": format!("{}/{}", sim.base_url, objects::PREFIX), "StorageNode": STORAGE_NODE,
        "UploadId": upload_id, "SliceSize": slice.to_string(), "UploadFileStatus": if reuse { 2 } else { 0 },
    })
}

/// The upload a body names by `uploadId` (and `key`, when given), or else by `fileId`.
fn upload_of(sim: &Pan123Sim, body: &Value) -> Result<String, Fail> {
    let id = text(field(body, "uploadId"));
    let key = text(field(body, "key"));
    let file_id = int(field(body, "fileId"));
    let uploads = sim.uploads.lock().unwrap();
    let found = match uploads.get(&id) {
        Some(u) => (key.is_empty() || key == u.key).then_some(id),
        None if id.is_empty() => uploads.iter().find(|(_, u)| Some(u.file_id) == file_id).map(|(id, _)| id.clone()),
        None => None,
    };
    found.ok_or_else(|| fail(mutate::NOT_FOUND, "上传任务不存在"))
}

/// `s3_upload_object/auth` and `s3_repare_upload_parts_batch`: `presignedUrls` for parts
/// `[partNumberStart, partNumberEnd)`.
pub(super) fn presign(sim: &Pan123Sim, body: &Value) -> Reply {
    Pan123Counters::add(&sim.counters.presign_calls);
    let upload_id = upload_of(sim, body)?;
    let start = int(field(body, "partNumberStart")).ok_or_else(bad)?;
    let end = int(field(body, "partNumberEnd")).ok_or_else(bad)?;
    if start < 1 || end <= start || end > 10_001 {
        return Err(bad());
    }
    let key = sim.uploads.lock().unwrap().get(&upload_id).map(|u| u.key.clone()).unwrap_or_default();
    let ttl = sim.knobs().presign_ttl_secs;
    let urls: serde_json::Map<String, Value> = (start..end)
        .map(|n| (n.to_string(), Value::String(objects::presigned_url(sim, &key, n as u32, &upload_id, ttl))))
        .collect();
    Ok(ok(json!({"presignedUrls": urls})))
}

pub(super) fn list_parts(sim: &Pan123Sim, body: &Value) -> Reply {
    let upload_id = upload_of(sim, body)?;
    let uploads = sim.uploads.lock().unwrap();
    let parts: Vec<Value> = uploads[&upload_id]
        .parts
        .iter()
        .map(|(n, p)| json!({"PartNumber": n, "ETag": format!("\"{}\"", p.etag), "Size": p.size}))
        .collect();
    Ok(ok(json!({"Parts": if parts.is_empty() { Value::Null } else { Value::Array(parts) }})))
}

/// `upload_complete/v2`: check the parts, join them (off the async threads), check the MD5,
/// create the file; answers `data.file_info`.
pub(super) async fn complete(State(sim): State<Arc<Pan123Sim>>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let delay = sim.knobs().completion_delay_ms;
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let mut checked = None;
    let refused = personal_post(&sim, &headers, &uri, &body, |body| {
        checked = Some(complete_parts(&sim, body)?);
        Ok(ok(Value::Null))
    });
    let Some((upload_id, paths)) = checked else { return refused };
    let run = async {
        let staged = sim.tree.staging.file(&format!("{upload_id}.joined")).map_err(|e| fail(1, &e.to_string()))?;
        let target = staged.clone();
        let md5 = tokio::task::spawn_blocking(move || join(&paths, &target))
            .await
            .map_err(|e| fail(1, &e.to_string()))?
            .map_err(|e| fail(1, &e.to_string()))?;
        let created = create(&sim, &upload_id, &staged, &md5);
        if created.is_err() {
            let _ = std::fs::remove_file(&staged);
        }
        created
    };
    run.await.unwrap_or_else(Fail::response)
}

/// The upload a completion names, when its parts are numbered 1..n with no gap and add up to
/// the requested size (and `fileSize`): its id and the parts' paths in order.
fn complete_parts(sim: &Pan123Sim, body: &Value) -> Result<(String, Vec<PathBuf>), Fail> {
    let upload_id = upload_of(sim, body)?;
    let uploads = sim.uploads.lock().unwrap();
    let u = &uploads[&upload_id];
    let declared = int(field(body, "fileSize")).map_or(u.size, |s| s as u64);
    let numbered = u.parts.keys().copied().eq(1..=u.parts.len() as u32);
    let total: u64 = u.parts.values().map(|p| p.size).sum();
    if !numbered || u.parts.is_empty() || total != u.size || declared != u.size {
        return Err(fail(PARTS_INCOMPLETE, "分片缺失或大小不符"));
    }
    Ok((upload_id.clone(), u.parts.values().map(|p| p.path.clone()).collect()))
}

/// Create the file of upload `upload_id` from the joined bytes at `staged` (MD5 `md5`).
fn create(sim: &Pan123Sim, upload_id: &str, staged: &std::path::Path, md5: &str) -> Reply {
    let gone = || fail(mutate::NOT_FOUND, "上传任务不存在");
    let upload = sim.uploads.lock().unwrap().remove(upload_id).ok_or_else(gone)?;
    let created = if md5 != upload.etag {
        Err(fail(MD5_MISMATCH, "文件校验失败"))
    } else {
        let id = (!sim.knobs().new_id_on_complete).then_some(upload.file_id);
        let made = sim
            .tree
            .add_file(&NewFile { parent: upload.parent, name: &upload.name, md5, id, replace: upload.replace }, staged);
        made.map_err(Fail::from)
    };
    let (node, replaced) = match created {
        Ok(c) => c,
        Err(e) => {
            sim.uploads.lock().unwrap().insert(upload_id.to_string(), upload);
            return Err(e);
        }
    };
    for part in upload.parts.values() {
        let _ = std::fs::remove_file(&part.path);
    }
    if replaced.is_some() {
        Pan123Counters::add(&sim.counters.trashes);
    }
    Pan123Counters::add(&sim.counters.completes);
    let info = json!({"FileId": node.id, "ParentFileId": node.parent, "FileName": node.name, "Size": node.size, "Etag": md5, "Type": 0});
    Ok(ok(json!({"file_info": info})))
}

/// Concatenate `parts` into `out`: the MD5 of the whole, lowercase hex.
fn join(parts: &[PathBuf], out: &std::path::Path) -> std::io::Result<String> {
    let mut md5 = Md5::new();
    let mut file = std::fs::File::create(out)?;
    for p in parts {
        let bytes = std::fs::read(p)?;
        md5.update(&bytes);
        std::io::Write::write_all(&mut file, &bytes)?;
    }
    Ok(md5.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
