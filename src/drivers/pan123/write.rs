//! 123pan's [`Writable`]: folders, rename and move, trash (pan123-protocol.md §2.6); uploads
//! live in [`super::upload`].
//!
//! - mkdir is `upload_request` with `type: 1`. Without `NotReuse` the service answers an
//!   existing folder of that name with `Reuse: true` instead of making a new one: that is
//!   `EEXIST` here (the user asked for a new folder), and nothing was created. The new
//!   folder's id comes from the answer (`Info`, else `FileId`; the shape is unconfirmed) or, when
//!   neither is there, from a listing of the parent.
//! - rename in place: `file/rename`; a move: `file/mod_pid`, then a rename when the name
//!   changes too (the core made the target name free first). The service refuses a move onto
//!   a taken name; the old name may be taken in the destination, so then the file is renamed
//!   where it is first, and moved after.
//! - trash: `file/trash` with `operation: true` and the file as listed (the service matches it
//!   by `FileId`). There is no permanent delete here.
//!
//! Ids go out as JSON numbers, as the official web sends them (§2.6).

use async_trait::async_trait;
use md5::{Digest, Md5};
use serde_json::json;

use super::api::{FileInfos, UploadTicket};
use super::{FileRef, Pan123, entry_of, time};
use crate::drivers::{ContentHasher, Entry, HashKind, Progress, Staged, Writable};
use crate::error::{Error, Result};

pub(super) const UPLOAD_REQUEST_PATH: &str = "/b/api/file/upload_request";
const RENAME_PATH: &str = "/b/api/file/rename";
const MOVE_PATH: &str = "/b/api/file/mod_pid";
const TRASH_PATH: &str = "/b/api/file/trash";
const INFO_PATH: &str = "/b/api/file/info";

/// 123pan's content hash: the MD5 of the file, lowercase hex (its `Etag`).
pub struct Md5Hasher(Md5);

impl ContentHasher for Md5Hasher {
    fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(self: Box<Self>) -> String {
        self.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A numeric id (`FileId`) of an entry.
pub(super) fn file_id(entry: &Entry) -> Result<i64> {
    entry.id.parse().map_err(|_| Error::internal(format!("123pan: not a file id: {}", entry.id)))
}

impl Pan123 {
    async fn move_to(&self, id: i64, to: &Entry) -> Result<()> {
        let body = json!({ "fileIdList": [{ "FileId": id }], "parentFileId": file_id(to)?, "event": "fileMove" });
        self.client.act::<serde_json::Value, _>(MOVE_PATH, &body).await.map(drop)
    }

    async fn rename_in_place(&self, id: i64, name: &str) -> Result<()> {
        let body = json!({ "driveId": 0, "fileId": id, "fileName": name, "event": "fileRename" });
        self.client.act::<serde_json::Value, _>(RENAME_PATH, &body).await.map(drop)
    }

    /// The file `id` as the service describes it now (`file/info`).
    pub(super) async fn info(&self, id: i64) -> Result<Entry> {
        let infos: FileInfos = self.client.post_paced(INFO_PATH, &json!({ "fileIdList": [{ "FileId": id }] })).await?;
        infos
            .info_list
            .iter()
            .find(|f| f.file_id == id)
            .map(entry_of)
            .ok_or_else(|| Error::InvalidResponse(format!("123pan file/info does not list file {id}")))
    }

    /// The entry called `name` in `parent`, as listed now.
    pub(super) async fn find(&self, parent: &Entry, name: &str) -> Result<Option<Entry>> {
        Ok(crate::drivers::Driver::list(self, parent).await?.into_iter().find(|e| e.name == name))
    }
}

#[async_trait]
impl Writable for Pan123 {
    async fn mkdir(&self, parent: &Entry, name: &str) -> Result<Entry> {
        let body = json!({
            "driveId": 0, "etag": "", "fileName": name, "parentFileId": file_id(parent)?, "size": 0, "type": 1,
        });
        let made: UploadTicket = self.client.act(UPLOAD_REQUEST_PATH, &body).await?;
        if made.reuse {
            return Err(Error::Exists);
        }
        if let Some(folder) = made.info.as_ref().filter(|f| f.file_id != 0) {
            return Ok(entry_of(folder));
        }
        if made.file_id != 0 {
            let mut folder = Entry::root_folder(&made.file_id.to_string());
            folder.name = name.to_string();
            return Ok(folder);
        }
        self.find(parent, name)
            .await?
            .filter(|e| e.is_dir)
            .ok_or_else(|| Error::InvalidResponse(format!("123pan made the folder {name:?} but does not list it")))
    }

    async fn rename(&self, entry: &Entry, from: &Entry, to: &Entry, name: &str) -> Result<Entry> {
        let id = file_id(entry)?;
        let mut now = entry.clone();
        now.name = name.to_string();
        if from.id == to.id {
            if entry.name != name {
                self.rename_in_place(id, name).await?;
            }
            return Ok(now);
        }
        match self.move_to(id, to).await {
            Ok(()) if entry.name == name => Ok(now),
            Ok(()) => {
                if let Err(e) = self.rename_in_place(id, name).await {
                    // Not undone: say where the file is, since the caller's error names the wanted name.
                    tracing::warn!(id, left_as = %entry.name, "moved, but not renamed: {e}");
                    return Err(e);
                }
                Ok(now)
            }
            // The service refuses a name taken in the destination (the core freed only the new
            // one): rename where it is, then move; put the name back if the move still fails.
            Err(refused) if entry.name != name => {
                self.rename_in_place(id, name).await.map_err(|_| refused)?;
                if let Err(e) = self.move_to(id, to).await {
                    if let Err(undo) = self.rename_in_place(id, &entry.name).await {
                        tracing::warn!(id, left_as = name, "renamed, but not moved: {undo}");
                    }
                    return Err(e);
                }
                Ok(now)
            }
            Err(e) => Err(e),
        }
    }

    async fn trash(&self, entry: &Entry) -> Result<()> {
        let id = file_id(entry)?;
        // OpenList sends its whole File struct; the service matches by FileId.
        let (etag, s3_key_flag) = match FileRef::of(entry) {
            Ok(f) => (f.etag, f.s3_key_flag),
            Err(_) => Default::default(),
        };
        let mtime = entry.mtime.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let listed = json!({
            "FileId": id, "FileName": entry.name, "Type": u8::from(entry.is_dir), "Size": entry.size.unwrap_or(0),
            "Etag": etag, "S3KeyFlag": s3_key_flag, "UpdateAt": time::format_update_at(mtime), "DownloadUrl": "",
        });
        let body = json!({ "driveId": 0, "operation": true, "fileTrashInfoList": [listed], "event": "intoRecycle" });
        let _: serde_json::Value = self.client.act(TRASH_PATH, &body).await?;
        Ok(())
    }

    fn hasher(&self) -> Box<dyn ContentHasher> {
        Box::new(Md5Hasher(Md5::new()))
    }

    fn hash_kind(&self) -> HashKind {
        HashKind::Md5
    }

    async fn upload(&self, parent: &Entry, name: &str, staged: &Staged, progress: &Progress) -> Result<Entry> {
        self.upload_file(parent, name, staged, progress).await
    }

    async fn upload_by_hash(&self, parent: &Entry, name: &str, size: u64, hash: &str) -> Result<Option<Entry>> {
        Pan123::upload_by_hash(self, parent, name, size, hash).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_as_the_service_lists_it() {
        let mut h: Box<dyn ContentHasher> = Box::new(Md5Hasher(Md5::new()));
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(Box::new(Md5Hasher(Md5::new())).finish(), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
