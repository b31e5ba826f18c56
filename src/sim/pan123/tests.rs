//! The write side of the simulated 123pan, driven over HTTP as a client would (signature check
//! off except where a test says; the guard itself is the read side's).

use md5::{Digest, Md5};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{MAIL, PASSWORD};
use crate::sim::{SimConfig, SimHandle, start};

struct Rig {
    sim: SimHandle,
    http: reqwest::Client,
    token: String,
    _dir: tempfile::TempDir,
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Deterministic content of `n` bytes, different per `seed`.
fn content(seed: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// The JSON a request is answered with.
async fn answer(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

impl Rig {
    /// A data dir with `/seed.bin` (3000 bytes of `content(7, ..)`) and the folder `/Docs`.
    async fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("Docs")).unwrap();
        std::fs::write(data.join("seed.bin"), content(7, 3000)).unwrap();
        let sim =
            start(SimConfig { listen: "127.0.0.1:0".parse().unwrap(), data_dir: data, cdn_auth: None }).await.unwrap();
        sim.pan123.update(|k| {
            k.strict_signature = false;
            k.list_interval_ms = 0;
        });
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let sign_in = http.post(format!("{}/api/user/sign_in", sim.base_url()));
        let login = answer(sign_in.json(&json!({"mail": MAIL, "password": PASSWORD, "type": 2}))).await;
        let token = login["data"]["token"].as_str().unwrap().to_string();
        Rig { sim, http, token, _dir: dir }
    }

    /// A personal `/b/api/{path}` POST: the whole envelope.
    async fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/b/api/{path}", self.sim.base_url());
        let req = self.http.post(url).header("platform", "web").bearer_auth(&self.token).json(&body);
        answer(req).await
    }

    /// `data` of a call that must succeed.
    async fn data(&self, path: &str, body: Value) -> Value {
        let answer = self.post(path, body).await;
        assert_eq!(answer["code"], 0, "{path}: {answer}");
        answer["data"].clone()
    }

    /// `data` of `GET user/info`.
    async fn user_info(&self) -> Value {
        let url = format!("{}/b/api/user/info", self.sim.base_url());
        let req = self.http.get(url).header("platform", "web").bearer_auth(&self.token);
        answer(req).await["data"].clone()
    }

    async fn names(&self, parent: i64) -> Vec<String> {
        let url = format!("{}/b/api/file/list/new?parentFileId={parent}&Page=1&limit=100", self.sim.base_url());
        let req = self.http.get(url).header("platform", "web").bearer_auth(&self.token);
        let list = answer(req).await["data"]["InfoList"].as_array().unwrap().clone();
        let mut names: Vec<String> = list.iter().map(|f| f["FileName"].as_str().unwrap().to_string()).collect();
        names.sort();
        names
    }

    async fn request(&self, parent: i64, name: &str, bytes: &[u8], duplicate: i64) -> Value {
        let body = json!({"driveId": 0, "duplicate": duplicate, "etag": md5_hex(bytes), "fileName": name,
            "parentFileId": parent.to_string(), "size": bytes.len(), "type": 0});
        self.data("file/upload_request", body).await
    }

    /// URLs for parts `[start, end)` of the upload `req` answered.
    async fn presign(&self, req: &Value, start: u32, end: u32) -> Value {
        let body = json!({"StorageNode": req["StorageNode"], "bucket": req["Bucket"], "key": req["Key"],
            "partNumberStart": start, "partNumberEnd": end, "uploadId": req["UploadId"]});
        self.data("file/s3_repare_upload_parts_batch", body).await["presignedUrls"].clone()
    }

    async fn put(&self, url: &Value, bytes: &[u8]) -> reqwest::Response {
        self.http.put(url.as_str().unwrap()).body(bytes.to_vec()).send().await.unwrap()
    }

    async fn complete(&self, req: &Value, size: usize) -> Value {
        let body = json!({"StorageNode": req["StorageNode"], "bucket": req["Bucket"], "fileId": req["FileId"],
            "fileSize": size, "isMultipart": true, "key": req["Key"], "uploadId": req["UploadId"]});
        self.post("file/upload_complete/v2", body).await
    }

    /// The whole presigned flow in parts of `part` bytes: `file_info`.
    async fn upload(&self, parent: i64, name: &str, bytes: &[u8], duplicate: i64, part: usize) -> Value {
        let req = self.request(parent, name, bytes, duplicate).await;
        assert_eq!(req["Reuse"], false);
        let chunks: Vec<&[u8]> = bytes.chunks(part).collect();
        let urls = self.presign(&req, 1, chunks.len() as u32 + 1).await;
        for (i, chunk) in chunks.iter().enumerate() {
            let res = self.put(&urls[(i + 1).to_string()], chunk).await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()["etag"].to_str().unwrap(), format!("\"{}\"", md5_hex(chunk)));
        }
        let done = self.complete(&req, bytes.len()).await;
        assert_eq!(done["code"], 0, "{done}");
        done["data"]["file_info"].clone()
    }

    /// Read a file back as a fresh reader does: download_info, the hop, the CDN.
    async fn download(&self, id: i64) -> Vec<u8> {
        let info = self.data("file/info", json!({"fileIdList": [{"FileId": id}]})).await;
        let f = &info["infoList"][0];
        let body = json!({"driveId": 0, "etag": f["Etag"], "fileId": id, "fileName": f["FileName"],
            "s3keyFlag": f["S3KeyFlag"], "size": f["Size"], "type": 0});
        let link = self.data("file/download_info", body).await["DownloadUrl"].as_str().unwrap().to_string();
        let params = link.split("params=").nth(1).unwrap().split('&').next().unwrap();
        let params = percent_encoding::percent_decode_str(params).decode_utf8().unwrap();
        use base64::Engine;
        let hop =
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(params.as_bytes()).unwrap()).unwrap();
        let res = self.http.get(hop).send().await.unwrap();
        let cdn = res.headers()["location"].to_str().unwrap().to_string();
        let referer = format!("{}/", self.sim.base_url());
        let res = self.http.get(cdn).header("referer", referer).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.bytes().await.unwrap().to_vec()
    }

    fn count(&self, f: impl FnOnce(&super::Pan123Counters) -> &std::sync::atomic::AtomicU64) -> u64 {
        self.sim.pan123.count(f)
    }
}

#[tokio::test]
async fn mkdir_reuses_a_same_name_folder_unless_not_reuse() {
    let rig = Rig::new().await;
    let docs = rig.sim.pan123.folder_id("/Docs").unwrap();
    let body = json!({"driveId": 0, "etag": "", "fileName": "Docs", "parentFileId": "0", "size": 0, "type": 1});
    let reused = rig.data("file/upload_request", body.clone()).await;
    assert_eq!((reused["Reuse"].clone(), reused["FileId"].as_i64()), (json!(true), Some(docs)));
    let mut fresh = body;
    fresh["NotReuse"] = json!(true);
    fresh["duplicate"] = json!(2);
    let made = rig.data("file/upload_request", fresh).await;
    assert_eq!(made["Reuse"], false);
    let node = rig.sim.pan123.node("/Docs(1)").unwrap();
    assert!(node.is_dir && !node.trashed);
    assert_eq!(made["FileId"].as_i64(), Some(node.id));
    assert_eq!(made["Info"]["FileName"], "Docs(1)");
    let inner = json!({"fileName": "Sub", "parentFileId": node.id, "type": 1});
    let sub = rig.data("file/upload_request", inner).await;
    assert_eq!(rig.names(node.id).await, ["Sub"]);
    assert_eq!(rig.sim.pan123.node("/Docs(1)/Sub").unwrap().id, sub["FileId"].as_i64().unwrap());
    assert_eq!(rig.count(|c| &c.mkdirs), 2);
}

#[tokio::test]
async fn a_known_md5_and_size_upload_is_instant() {
    let rig = Rig::new().await;
    let seed = content(7, 3000);
    let docs = rig.sim.pan123.folder_id("/Docs").unwrap();
    let req = rig.request(docs, "copy.bin", &seed, 1).await;
    assert_eq!(req["Reuse"], true);
    let copy = rig.sim.pan123.node("/Docs/copy.bin").unwrap();
    assert_eq!((req["FileId"].as_i64(), copy.size, copy.etag.as_str()), (Some(copy.id), 3000, md5_hex(&seed).as_str()));
    assert_eq!(rig.sim.pan123.bytes("/Docs/copy.bin").unwrap(), seed);
    // Same MD5 claimed with another size: not instant.
    let body = json!({"etag": md5_hex(&seed), "fileName": "other.bin", "parentFileId": docs, "size": 2999, "type": 0});
    assert_eq!(rig.data("file/upload_request", body).await["Reuse"], false);
    // The same content again, replacing the copy: instant, and the old copy is in the trash.
    let again = rig.request(docs, "copy.bin", &seed, 2).await;
    assert_eq!(again["Reuse"], true);
    assert_eq!(rig.sim.pan123.trashed_paths(), ["/Docs/copy.bin"]);
    assert_eq!(rig.sim.pan123.bytes("/Docs/copy.bin").unwrap(), seed);
    rig.sim.pan123.update(|k| k.reuse_file_id_zero = true);
    let again = rig.request(0, "third.bin", &seed, 1).await;
    assert_eq!((again["Reuse"].clone(), again["FileId"].clone()), (json!(true), json!(0)));
    assert!(rig.sim.pan123.node("/third.bin").is_some());
    assert_eq!(rig.count(|c| &c.instant_uploads), 3);
    assert_eq!(rig.count(|c| &c.upload_requests), 4);
}

#[tokio::test]
async fn a_three_part_upload_is_assembled_in_order_and_served() {
    let rig = Rig::new().await;
    let used_before = rig.user_info().await;
    let bytes = content(1, 2500);
    let req = rig.request(0, "new.bin", &bytes, 2).await;
    assert_eq!((req["SliceSize"].as_str(), req["AccessKeyId"].clone()), (Some("16777216"), Value::Null));
    let urls = rig.presign(&req, 1, 4).await;
    assert_eq!(urls.as_object().unwrap().len(), 3);
    assert!(urls["1"].as_str().unwrap().starts_with(&rig.sim.base_url()));
    let parts: Vec<&[u8]> = bytes.chunks(1000).collect();
    // Out of order on purpose: the join follows the part numbers.
    for i in [2, 0, 1] {
        assert_eq!(rig.put(&urls[(i + 1).to_string()], parts[i]).await.status(), StatusCode::OK);
    }
    let body = json!({"StorageNode": req["StorageNode"], "bucket": req["Bucket"], "key": req["Key"], "uploadId": req["UploadId"]});
    assert_eq!(rig.data("file/s3_list_upload_parts", body).await["Parts"].as_array().unwrap().len(), 3);
    let done = rig.complete(&req, 2500).await;
    let info = &done["data"]["file_info"];
    assert_eq!(
        (info["FileId"].clone(), info["Size"].clone(), info["Etag"].clone()),
        (req["FileId"].clone(), json!(2500), json!(md5_hex(&bytes)))
    );
    assert_eq!((info["FileName"].as_str(), info["ParentFileId"].as_i64()), (Some("new.bin"), Some(0)));
    assert_eq!(rig.sim.pan123.bytes("/new.bin").unwrap(), bytes);
    assert!(rig.names(0).await.contains(&"new.bin".to_string()));
    assert_eq!(rig.download(info["FileId"].as_i64().unwrap()).await, bytes);
    let used = |v: &Value| v["SpaceUsed"].as_u64().unwrap();
    assert_eq!(used(&rig.user_info().await), used(&used_before) + 2500);
    assert_eq!((rig.count(|c| &c.part_puts), rig.count(|c| &c.part_bytes), rig.count(|c| &c.completes)), (3, 2500, 1));
}

#[tokio::test]
async fn part_puts_refuse_expired_forged_and_authorized_requests() {
    let rig = Rig::new().await;
    let bytes = content(2, 100);
    let req = rig.request(0, "p.bin", &bytes, 1).await;
    let url = rig.presign(&req, 1, 2).await["1"].as_str().unwrap().to_string();
    let forged = url.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    let res = rig.http.put(&forged).body(bytes.clone()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("<Code>SignatureDoesNotMatch</Code>"));
    let res = rig.http.put(&url).bearer_auth(&rig.token).body(bytes.clone()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(rig.complete(&req, 100).await["code"], super::upload::PARTS_INCOMPLETE);
    rig.sim.pan123.update(|k| k.presign_ttl_secs = 0);
    let short = rig.presign(&req, 1, 2).await["1"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(rig.put(&short, &bytes).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(rig.count(|c| &c.part_403s), 3);
    rig.sim.pan123.update(|k| {
        k.put_fault_count = 1;
        k.put_fault = super::PutFault::ServerError;
    });
    assert_eq!(rig.put(&json!(url), &bytes).await.status(), StatusCode::INTERNAL_SERVER_ERROR);
    rig.sim.pan123.update(|k| {
        k.put_fault_count = 1;
        k.put_fault = super::PutFault::Reset;
    });
    assert!(rig.http.put(&url).body(bytes.clone()).send().await.is_err(), "the connection is cut");
    rig.sim.pan123.update(|k| k.store_bytes_per_sec = Some(400));
    let started = std::time::Instant::now();
    assert_eq!(rig.put(&json!(url), &bytes).await.status(), StatusCode::OK);
    assert!(started.elapsed() >= std::time::Duration::from_millis(200), "100 bytes at 400 B/s");
    // No uploadId: the completion is matched by fileId.
    let done = rig.post("file/upload_complete/v2", json!({"fileId": req["FileId"].to_string(), "fileSize": 100})).await;
    assert_eq!(done["code"], 0, "{done}");
    assert_eq!(rig.sim.pan123.bytes("/p.bin").unwrap(), bytes);
}

#[tokio::test]
async fn completion_checks_the_md5_and_may_change_the_id() {
    let rig = Rig::new().await;
    let bytes = content(3, 500);
    let body =
        json!({"etag": md5_hex(b"something else"), "fileName": "bad.bin", "parentFileId": 0, "size": 500, "type": 0});
    let req = rig.data("file/upload_request", body).await;
    let url = rig.presign(&req, 1, 2).await["1"].clone();
    assert_eq!(rig.put(&url, &bytes).await.status(), StatusCode::OK);
    assert_eq!(rig.complete(&req, 500).await["code"], super::upload::MD5_MISMATCH);
    assert!(rig.sim.pan123.node("/bad.bin").is_none());
    rig.sim.pan123.update(|k| k.new_id_on_complete = true);
    let req = rig.request(0, "good.bin", &bytes, 1).await;
    let url = rig.presign(&req, 1, 2).await["1"].clone();
    rig.put(&url, &bytes).await;
    let info = rig.complete(&req, 500).await["data"]["file_info"].clone();
    assert_ne!(info["FileId"], req["FileId"]);
    assert_eq!(info["FileId"].as_i64(), Some(rig.sim.pan123.node("/good.bin").unwrap().id));
}

#[tokio::test]
async fn duplicate_2_replaces_into_the_trash_and_1_keeps_both() {
    let rig = Rig::new().await;
    let (old, new, third) = (content(4, 300), content(5, 300), content(6, 300));
    let first = rig.upload(0, "a.txt", &old, 1, 128).await;
    rig.upload(0, "a.txt", &new, 2, 128).await;
    assert_eq!(rig.sim.pan123.trashed_paths(), ["/a.txt"]);
    assert_eq!(rig.sim.pan123.bytes("/a.txt").unwrap(), new);
    let gone = rig.data("file/info", json!({"fileIdList": [{"FileId": first["FileId"]}]})).await;
    assert_eq!(gone["infoList"], json!([]));
    rig.upload(0, "a.txt", &third, 1, 128).await;
    assert_eq!(rig.sim.pan123.bytes("/a(1).txt").unwrap(), third);
    rig.sim.pan123.update(|k| k.honor_overwrite = false);
    rig.upload(0, "a.txt", &content(8, 10), 2, 128).await;
    assert_eq!(rig.names(0).await, ["Docs", "a(1).txt", "a(2).txt", "a.txt", "seed.bin"]);
    assert_eq!(rig.count(|c| &c.trashes), 1);
    assert_eq!(rig.user_info().await["SpaceUsed"], 3000 + 3 * 300 + 10, "the trash takes space too");
}

#[tokio::test]
async fn rename_move_trash_and_restore_take_ids_as_numbers_or_strings() {
    let rig = Rig::new().await;
    let docs = rig.sim.pan123.folder_id("/Docs").unwrap();
    let seed = rig.sim.pan123.node("/seed.bin").unwrap();
    rig.data("file/rename", json!({"driveId": 0, "FileID": seed.id.to_string(), "fileName": "s.bin"})).await;
    rig.data("file/mod_pid", json!({"fileIdList": [{"FileId": seed.id}], "ParentFileId": docs.to_string()})).await;
    assert_eq!(rig.names(docs).await, ["s.bin"]);
    assert_eq!(rig.sim.pan123.node("/Docs/s.bin").unwrap().id, seed.id);
    let taken = rig.upload(0, "s.bin", &content(9, 50), 1, 64).await;
    let clash = json!({"fileIdList": [{"FileId": taken["FileId"].to_string()}], "parentFileId": docs});
    assert_eq!(rig.post("file/mod_pid", clash).await["code"], super::mutate::NAME_TAKEN);
    let onto = json!({"fileId": taken["FileId"], "fileName": "Docs"});
    assert_eq!(rig.post("file/rename", onto).await["code"], super::mutate::NAME_TAKEN);
    let docs_file = json!({"FileId": docs, "FileName": "Docs", "Type": 1, "Size": 0, "Etag": ""});
    rig.data("file/trash", json!({"driveId": 0, "operation": true, "fileTrashInfoList": [docs_file]})).await;
    assert_eq!(rig.names(0).await, ["s.bin"]);
    assert!(rig.sim.pan123.node("/Docs/s.bin").unwrap().trashed);
    assert_eq!(rig.sim.pan123.bytes("/Docs/s.bin").unwrap(), content(7, 3000));
    rig.data("file/trash", json!({"operation": false, "fileTrashInfoList": [{"FileId": docs.to_string()}]})).await;
    assert_eq!(rig.names(0).await, ["Docs", "s.bin"]);
    let back = rig.sim.pan123.node("/Docs/s.bin").unwrap();
    assert_eq!((back.id, back.trashed), (seed.id, false));
    assert!(rig.sim.pan123.trashed_paths().is_empty());
    let c = |f: fn(&super::Pan123Counters) -> &std::sync::atomic::AtomicU64| rig.count(f);
    assert_eq!((c(|c| &c.renames), c(|c| &c.moves), c(|c| &c.trashes), c(|c| &c.restores)), (1, 1, 1, 1));
}

#[tokio::test]
async fn empty_files_and_a_full_space_are_refused() {
    let rig = Rig::new().await;
    let body = json!({"etag": super::upload::EMPTY_MD5, "fileName": "e", "parentFileId": 0, "size": 0, "type": 0});
    assert_eq!(rig.post("file/upload_request", body.clone()).await["code"], super::upload::EMPTY_REFUSED);
    rig.sim.pan123.update(|k| k.refuse_empty = false);
    assert_eq!(rig.data("file/upload_request", body).await["Reuse"], true);
    assert_eq!(rig.sim.pan123.node("/e").unwrap().size, 0);
    rig.sim.pan123.update(|k| k.quota_limit = 3100);
    let info = rig.user_info().await;
    assert_eq!((info["SpaceUsed"].as_u64(), info["SpacePermanent"].as_u64()), (Some(3000), Some(3100)));
    let big = json!({"etag": md5_hex(b"x"), "fileName": "big", "parentFileId": 0, "size": 101, "type": 0});
    assert_eq!(rig.post("file/upload_request", big).await["code"], super::upload::SPACE_FULL);
}

#[tokio::test]
async fn writes_keep_the_guard_and_knobs_work_over_http() {
    let rig = Rig::new().await;
    let url = format!("{}/b/api/file/upload_request", rig.sim.base_url());
    let body = json!({"fileName": "x", "parentFileId": 0, "type": 1});
    let anonymous: Value = answer(rig.http.post(&url).header("platform", "web").json(&body)).await;
    assert_eq!(anonymous["code"], 401);
    let knobs = format!("{}/_sim/pan123/knobs", rig.sim.base_url());
    let set = rig.http.put(&knobs).json(&json!({"slice_size": 1234, "list_interval_ms": 0})).send().await.unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    assert!(rig.sim.pan123.knobs().strict_signature, "missing fields take their defaults");
    let unsigned = rig.post("file/upload_request", body).await;
    assert_eq!((unsigned["code"].as_i64(), rig.count(|c| &c.signature_refused)), (Some(1), 1));
    rig.sim.pan123.update(|k| k.strict_signature = false);
    assert_eq!(rig.request(0, "n.bin", b"abc", 1).await["SliceSize"], "1234");
    let counters = answer(rig.http.get(format!("{}/_sim/pan123/counters", rig.sim.base_url()))).await;
    assert_eq!((counters["upload_requests"].as_u64(), counters["mkdirs"].as_u64()), (Some(1), Some(0)));
}
