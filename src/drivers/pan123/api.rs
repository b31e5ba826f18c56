//! Wire types of 123pan's web API (pan123-protocol.md §1.3, §2, §5), serde only.
//!
//! Tolerance, where the reference marks a fact unconfirmed (§7) or clients disagree:
//! - ids, sizes and types decode from JSON numbers *or* numeric strings (`"123"`);
//! - field names take the spellings seen in real clients (`FileId`/`FileID`/`fileId`, ...);
//! - `Next` may be a string or a number; `Total` may be missing (shares never send it);
//! - `UpdateAt` is kept as text (or a number) and parsed by [`super::time::parse_update_at`];
//! - a missing `data` or `InfoList` is an empty page, never an error.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// `{"code", "message", "data"}`. The 2023 signature error came back as `{"status", "info"}`
/// without a `code`; both shapes land here so the client can tell them apart.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(default, deserialize_with = "opt_i64")]
    pub code: Option<i64>,
    #[serde(default, alias = "msg")]
    pub message: Option<String>,
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    #[serde(default)]
    pub info: Option<String>,
}

/// `POST {login_base}/api/user/sign_in`, phone form.
#[derive(Serialize)]
pub struct SignInPhone<'a> {
    pub passport: &'a str,
    pub password: &'a str,
    pub remember: bool,
}

/// `POST {login_base}/api/user/sign_in`, e-mail form (`type: 2`).
#[derive(Serialize)]
pub struct SignInMail<'a> {
    pub mail: &'a str,
    pub password: &'a str,
    #[serde(rename = "type")]
    pub kind: u8,
}

/// No `Debug` here nor on the two link types below: a token or a signed URL must not reach a
/// log through `{:?}`.
#[derive(Deserialize)]
pub struct LoginData {
    #[serde(default)]
    pub token: String,
}

/// `GET /b/api/user/info`.
#[derive(Debug, Deserialize)]
pub struct UserInfo {
    #[serde(rename = "SpaceUsed", alias = "spaceUsed", default, deserialize_with = "u64_any")]
    pub space_used: u64,
    #[serde(rename = "SpacePermanent", alias = "spacePermanent", default, deserialize_with = "u64_any")]
    pub space_permanent: u64,
    #[serde(rename = "SpaceTemp", alias = "spaceTemp", default, deserialize_with = "u64_any")]
    pub space_temp: u64,
}

/// One page of `GET /b/api/file/list/new` or `GET /b/api/share/get`.
#[derive(Debug, Deserialize)]
pub struct ListPage {
    #[serde(rename = "Next", alias = "next", default, deserialize_with = "string_any")]
    pub next: String,
    #[serde(rename = "Total", alias = "total", default, deserialize_with = "opt_i64")]
    pub total: Option<i64>,
    #[serde(rename = "InfoList", alias = "infoList", default)]
    pub info_list: Option<Vec<File>>,
}

/// A file or folder as listed.
#[derive(Debug, Clone, Deserialize)]
pub struct File {
    #[serde(rename = "FileId", alias = "FileID", alias = "fileId", deserialize_with = "i64_any")]
    pub file_id: i64,
    #[serde(rename = "FileName", alias = "fileName", default)]
    pub file_name: String,
    /// 1 folder, 0 file.
    #[serde(rename = "Type", alias = "type", default, deserialize_with = "i64_any_default")]
    pub kind: i64,
    /// `None` when not a size (`crate::drivers::size`): the core asks the server.
    #[serde(rename = "Size", alias = "size", default, deserialize_with = "crate::drivers::size")]
    pub size: Option<u64>,
    #[serde(rename = "Etag", alias = "etag", alias = "ETag", default)]
    pub etag: String,
    #[serde(rename = "S3KeyFlag", alias = "s3KeyFlag", alias = "s3keyFlag", default)]
    pub s3_key_flag: String,
    #[serde(rename = "UpdateAt", alias = "updateAt", default, deserialize_with = "string_any")]
    pub update_at: String,
}

/// `POST /b/api/file/download_info` body (OpenList's spelling).
#[derive(Debug, Serialize)]
pub struct DownloadInfoRequest<'a> {
    #[serde(rename = "driveId")]
    pub drive_id: u8,
    pub etag: &'a str,
    #[serde(rename = "fileId")]
    pub file_id: i64,
    #[serde(rename = "fileName")]
    pub file_name: &'a str,
    #[serde(rename = "s3keyFlag")]
    pub s3_key_flag: &'a str,
    pub size: u64,
    #[serde(rename = "type")]
    pub kind: u8,
}

/// `data` of `download_info` (`DownloadUrl`) and of `share/download/info` (`DownloadURL`).
#[derive(Deserialize)]
pub struct DownloadInfo {
    #[serde(rename = "DownloadUrl", alias = "DownloadURL", alias = "downloadUrl", default)]
    pub download_url: String,
}

/// `data` of the JSON answer of the download hop.
#[derive(Deserialize)]
pub struct Redirect {
    #[serde(default)]
    pub redirect_url: String,
}

/// `data` of `POST /b/api/file/upload_request` (§2.7 step 2; for a folder, §2.6). No `Debug`:
/// it names the object store's bucket and key.
#[derive(Deserialize)]
pub struct UploadTicket {
    /// The service had the content (or the folder): done, nothing to send.
    #[serde(rename = "Reuse", alias = "reuse", default)]
    pub reuse: bool,
    #[serde(rename = "Key", alias = "key", default, deserialize_with = "string_any")]
    pub key: String,
    /// May be 0 with `Reuse` (seen by RC).
    #[serde(rename = "FileId", alias = "FileID", alias = "fileId", default, deserialize_with = "i64_any_default")]
    pub file_id: i64,
    #[serde(rename = "Bucket", alias = "bucket", default, deserialize_with = "string_any")]
    pub bucket: String,
    #[serde(rename = "StorageNode", alias = "storageNode", default, deserialize_with = "string_any")]
    pub storage_node: String,
    #[serde(rename = "UploadId", alias = "uploadId", default, deserialize_with = "string_any")]
    pub upload_id: String,
    /// The part size the service suggests (a string on the wire, `"16777216"`).
    #[serde(rename = "SliceSize", alias = "sliceSize", default, deserialize_with = "opt_i64")]
    pub slice_size: Option<i64>,
    /// The new folder, where the answer carries it (unconfirmed, §2.6: OpenList ignores it).
    #[serde(rename = "Info", alias = "info", default)]
    pub info: Option<File>,
}

impl UploadTicket {
    /// `Reuse`, or no object key to upload to: the service made the file from content it has.
    pub fn is_instant(&self) -> bool {
        self.reuse || self.key.is_empty()
    }
}

/// `data` of `s3_upload_object/auth` and `s3_repare_upload_parts_batch`: the decimal part
/// number to its presigned PUT URL. No `Debug`: the URLs carry signatures.
#[derive(Deserialize)]
pub struct PresignedUrls {
    #[serde(rename = "presignedUrls", alias = "PresignedUrls", alias = "presignedURLs", default)]
    pub urls: std::collections::HashMap<String, String>,
}

/// `data` of `upload_complete/v2`: the created file, whose id may differ from the ticket's.
#[derive(Deserialize)]
pub struct Completed {
    #[serde(rename = "file_info", alias = "fileInfo", alias = "FileInfo", default)]
    pub file_info: Option<File>,
}

/// `data` of `file/info`.
#[derive(Deserialize)]
pub struct FileInfos {
    #[serde(rename = "infoList", alias = "InfoList", default)]
    pub info_list: Vec<File>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Int(i64),
    Uint(u64),
    Float(f64),
    Text(String),
}

fn parse_num<E: de::Error>(v: NumOrText) -> Result<Option<i64>, E> {
    match v {
        NumOrText::Int(i) => Ok(Some(i)),
        NumOrText::Uint(u) => i64::try_from(u).map(Some).map_err(|_| E::custom("number out of range")),
        NumOrText::Float(f) if f.fract() == 0.0 => Ok(Some(f as i64)),
        NumOrText::Float(f) => Err(E::custom(format!("expected an integer, found {f}"))),
        NumOrText::Text(s) if s.trim().is_empty() => Ok(None),
        NumOrText::Text(s) => {
            s.trim().parse().map(Some).map_err(|_| E::custom(format!("expected a number, found {s:?}")))
        }
    }
}

fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<NumOrText>::deserialize(d)? {
        None => Ok(None),
        Some(v) => parse_num(v),
    }
}

fn i64_any<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    opt_i64(d)?.ok_or_else(|| de::Error::custom("missing id"))
}

fn i64_any_default<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(opt_i64(d)?.unwrap_or(0))
}

fn u64_any<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(crate::drivers::size(d)?.unwrap_or(0))
}

fn string_any<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Option::<NumOrText>::deserialize(d)? {
        None => String::new(),
        Some(NumOrText::Text(s)) => s,
        Some(NumOrText::Int(i)) => i.to_string(),
        Some(NumOrText::Uint(u)) => u.to_string(),
        Some(NumOrText::Float(f)) => f.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_decode_numbers_or_strings() {
        let page: ListPage = serde_json::from_str(
            r#"{"Next":"20002","Total":2,"InfoList":[
              {"FileId":20001,"FileName":"Movies","Type":1,"Size":0,"Etag":"","S3KeyFlag":"","UpdateAt":"2024-05-01T12:00:00+08:00"},
              {"FileID":"20000000002","FileName":"a.mp4","Type":"0","Size":"1048576","Etag":"b6d8","S3KeyFlag":"1-0","UpdateAt":1700000000}]}"#,
        )
        .unwrap();
        assert_eq!(page.next, "20002");
        assert_eq!(page.total, Some(2));
        let files = page.info_list.unwrap();
        assert_eq!((files[0].file_id, files[0].kind), (20001, 1));
        assert_eq!((files[1].file_id, files[1].kind, files[1].size), (20_000_000_002, 0, Some(1_048_576)));
        assert_eq!(files[1].update_at, "1700000000");
    }

    #[test]
    fn share_pages_have_no_total_and_next_may_be_a_number() {
        let page: ListPage = serde_json::from_str(r#"{"Next":-1,"InfoList":null}"#).unwrap();
        assert_eq!((page.next.as_str(), page.total), ("-1", None));
        assert!(page.info_list.is_none());
    }

    #[test]
    fn download_url_either_spelling() {
        let a: DownloadInfo = serde_json::from_str(r#"{"DownloadUrl":"x"}"#).unwrap();
        let b: DownloadInfo = serde_json::from_str(r#"{"DownloadURL":"y"}"#).unwrap();
        assert_eq!((a.download_url.as_str(), b.download_url.as_str()), ("x", "y"));
    }

    #[test]
    fn upload_tickets_as_the_reference_shows_them() {
        let t: UploadTicket = serde_json::from_str(
            r#"{"AccessKeyId":null,"SecretAccessKey":null,"SessionToken":null,"Expiration":null,"Bucket":"123-bucket-01",
               "Key":"1814435971-0/b6d8","FileId":20003,"Reuse":false,"EndPoint":"https://s3.example-123.test",
               "StorageNode":"m76","UploadId":"2~up-123-abc","SliceSize":"16777216","UploadFileStatus":0}"#,
        )
        .unwrap();
        assert_eq!((t.reuse, t.file_id, t.slice_size), (false, 20003, Some(16_777_216)));
        assert_eq!(
            (t.bucket.as_str(), t.storage_node.as_str(), t.upload_id.as_str()),
            ("123-bucket-01", "m76", "2~up-123-abc")
        );
        let t: UploadTicket = serde_json::from_str(r#"{"Reuse":true,"FileId":0,"Key":"k","UploadId":""}"#).unwrap();
        assert!(t.reuse && t.file_id == 0 && t.slice_size.is_none());
        let urls: PresignedUrls = serde_json::from_str(r#"{"presignedUrls":{"1":"u1","2":"u2"}}"#).unwrap();
        assert_eq!(urls.urls["2"], "u2");
        let done: Completed =
            serde_json::from_str(r#"{"file_info":{"FileId":"20004","FileName":"n","Size":3,"Etag":"e","Type":0}}"#)
                .unwrap();
        assert_eq!(done.file_info.unwrap().file_id, 20004);
    }

    #[test]
    fn envelope_shapes() {
        let e: Envelope = serde_json::from_str(r#"{"code":"401","message":"token is expired","data":null}"#).unwrap();
        assert_eq!((e.code, e.message.as_deref()), (Some(401), Some("token is expired")));
        let e: Envelope = serde_json::from_str(r#"{"status":0,"info":"签名错误"}"#).unwrap();
        assert_eq!((e.code, e.info.as_deref()), (None, Some("签名错误")));
    }
}
