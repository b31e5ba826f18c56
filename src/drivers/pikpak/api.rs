//! PikPak wire types (pikpak-protocol.md §2, §4.5, §5, §7, §8.1–§8.7), serde only, no logic.
//!
//! Decoding is tolerant where the reference says real data varies: string-ints also accepted as
//! JSON numbers (§2.3), and a size that is not one is unknown (`crate::drivers::size`); every
//! field defaulted, unknown fields ignored. Structs that hold tokens or signed download links
//! do not derive `Debug`, so neither can reach a log through `{:?}`.

use serde::Deserialize;

/// §2.4, the error envelope.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorEnvelope {
    pub error: String,
    pub error_code: i64,
    pub error_description: String,
    /// The share gateway's other shape: `{"detail":"device_id is empty"}`.
    pub detail: String,
}

/// §4.5.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct CaptchaInit {
    pub captcha_token: String,
    pub expires_in: u64,
    pub url: String,
}

/// §5.1 / §5.2 success.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct Token {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub sub: String,
}

/// §7.1.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct FileList {
    pub files: Vec<File>,
    pub next_page_token: String,
}

/// §7.3, the fields we read.
#[derive(Default, Deserialize, Clone)]
#[serde(default)]
pub struct File {
    pub kind: String,
    pub id: String,
    pub parent_id: String,
    pub name: String,
    #[serde(deserialize_with = "crate::drivers::size")]
    pub size: Option<u64>,
    pub hash: String,
    pub phase: String,
    pub trashed: bool,
    pub created_time: String,
    pub modified_time: String,
    pub web_content_link: String,
    pub links: Links,
    pub medias: Vec<Media>,
}

#[derive(Default, Deserialize, Clone)]
#[serde(default)]
pub struct Links {
    #[serde(rename = "application/octet-stream")]
    pub octet_stream: Option<LinkObj>,
}

/// A link object (`links[...]`, `medias[].link`). `expire` is RFC 3339, or epoch seconds or
/// milliseconds as a string or number (§7.3: seen in the wild).
#[derive(Default, Deserialize, Clone)]
#[serde(default)]
pub struct LinkObj {
    pub url: String,
    pub expire: serde_json::Value,
}

#[derive(Default, Deserialize, Clone)]
#[serde(default)]
pub struct Media {
    pub media_id: String,
    pub media_name: String,
    pub is_origin: bool,
    pub category: String,
    pub link: LinkObj,
}

/// §8.5.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct About {
    pub quota: QuotaObj,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct QuotaObj {
    #[serde(deserialize_with = "crate::drivers::size")]
    pub limit: Option<u64>,
    #[serde(deserialize_with = "crate::drivers::size")]
    pub usage: Option<u64>,
}

/// §8.6, a task.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Task {
    pub id: String,
    pub name: String,
    pub file_id: String,
    pub file_name: String,
    #[serde(deserialize_with = "crate::drivers::size")]
    pub file_size: Option<u64>,
    pub message: String,
    pub phase: String,
    pub progress: serde_json::Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TaskList {
    pub tasks: Vec<Task>,
    pub next_page_token: String,
}

/// §8.6, the reply to an offline-download create.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewTask {
    pub task: Option<Task>,
}

/// §8.1 and §8.7, the reply to a create (folder or upload init).
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct NewFile {
    pub upload_type: String,
    pub file: Option<File>,
    pub resumable: Option<Resumable>,
    pub task: Option<Task>,
}

/// §8.7, where the bytes of an upload go.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct Resumable {
    pub provider: String,
    pub params: UploadParams,
}

/// §8.7, temporary object-store credentials. No `Debug`: it holds a secret and a token.
#[derive(Default, Deserialize, Clone)]
#[serde(default)]
pub struct UploadParams {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub bucket: String,
    pub endpoint: String,
    /// RFC 3339.
    pub expiration: String,
    pub key: String,
    pub security_token: String,
}

/// §8.3, §8.4: every batch call answers with a task to poll.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BatchReply {
    pub task_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_ints_and_tolerance() {
        let f: File =
            serde_json::from_str(r#"{"kind":"drive#file","id":"a","size":"1048576","links":{},"medias":[]}"#).unwrap();
        assert_eq!(f.size, Some(1_048_576));
        let f: File = serde_json::from_str(r#"{"size":12}"#).unwrap();
        assert_eq!(f.size, Some(12));
        let f: File = serde_json::from_str(r#"{"size":""}"#).unwrap();
        assert_eq!(f.size, None);
        let q: About = serde_json::from_str(r#"{"quota":{"limit":"6442450944","usage":"1048576"}}"#).unwrap();
        assert_eq!((q.quota.limit, q.quota.usage), (Some(6_442_450_944), Some(1_048_576)));
        let e: ErrorEnvelope = serde_json::from_str(r#"{"error":"invalid_grant","error_code":4126}"#).unwrap();
        assert_eq!((e.error.as_str(), e.error_code), ("invalid_grant", 4126));
    }
}
