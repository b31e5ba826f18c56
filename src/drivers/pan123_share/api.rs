//! Wire types of 123pan shares (pan123-protocol.md §3) that differ from the personal API.
//! Listing pages and files are [`crate::drivers::pan123::api::ListPage`] (shares send no
//! `Total`); the download answer is [`crate::drivers::pan123::api::DownloadInfo`], whose
//! decoder takes the share's `DownloadURL` spelling too.

use serde::Serialize;

/// `POST /b/api/share/download/info` body (OpenList's spelling). No `Debug`: it holds the
/// share's password.
#[derive(Serialize)]
pub struct ShareDownloadRequest<'a> {
    #[serde(rename = "shareKey")]
    pub share_key: &'a str,
    #[serde(rename = "SharePwd")]
    pub share_pwd: &'a str,
    pub etag: &'a str,
    #[serde(rename = "fileId")]
    pub file_id: i64,
    #[serde(rename = "s3keyFlag")]
    pub s3_key_flag: &'a str,
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_spelling() {
        let body =
            ShareDownloadRequest { share_key: "k", share_pwd: "p", etag: "e", file_id: 5, s3_key_flag: "1-0", size: 9 };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"shareKey":"k","SharePwd":"p","etag":"e","fileId":5,"s3keyFlag":"1-0","size":9})
        );
    }
}
