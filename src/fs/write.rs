//! Writes through the mount (INTERFACE.md, "Writing"): each call checks that the storage takes
//! writes (`EROFS` with no side effect otherwise), turns the shown names back into the
//! provider's (`crate::names::unescape`), and then either asks the driver at once (folders,
//! renames, moves, trash: the change is on the provider when the call returns) or goes through
//! the write path (`crate::write`: file contents, staged and uploaded after `close`).
//!
//! A name that holds a pending file and the provider's older file at once (a file opened with
//! `O_TRUNC`, not yet uploaded) is one file to the user: deleting or replacing it removes both.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::namespace::Folder;
use super::open::handles::Handle;
use super::{Attr, Fs, Lookup, Opened};
use crate::drivers::{Entry, Writable};
use crate::error::{Error, Result};
use crate::write::{Upload, Writes, upload_of};

/// Bytes copied at a time when an existing file is fetched into staging.
const COPY_CHUNK: u32 = 1 << 20;

/// `rename` flags (renameat2).
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;

impl Fs {
    fn writes(&self) -> Result<&Arc<Writes>> {
        self.namespace.writes()
    }

    /// The folder `parent` and its storage's write capability.
    fn writable_folder(&self, parent: u64) -> Result<(Folder, &dyn Writable)> {
        let folder = self.namespace.folder(parent)?;
        let writable = self.storages[folder.storage].writer()?;
        self.writes()?;
        Ok((folder, writable))
    }

    /// Create and open `name` in `parent` (an existing file of that name is replaced when the
    /// new one lands).
    pub async fn create(&self, parent: u64, name: &str) -> Result<(Attr, Duration, Opened)> {
        let (folder, _) = self.writable_folder(parent)?;
        let remote = remote_name(name)?;
        if let Some(existing) = self.namespace.child(&folder, name).await?
            && existing.is_dir
        {
            return Err(Error::IsDir);
        }
        let upload = self.writes()?.create(folder.storage, &folder.entry.id, &folder.path, &remote)?;
        self.namespace.show_pending(&folder, name, &upload);
        let (attr, ttl) = self.found(parent, name).await?;
        let fh = self.files.open_staged(upload, true);
        Ok((attr, ttl, Opened { fh, direct_io: false, keep_cache: false }))
    }

    /// Open `ino` for writing: its bytes are staged first (fetched through the read path, unless
    /// `truncate`), then written there.
    pub(super) async fn open_for_write(&self, ino: u64, truncate: bool) -> Result<Opened> {
        let upload = self.staged_copy(ino, truncate).await?;
        if truncate && upload.staging.size() > 0 {
            self.truncate(&upload, 0).await?;
        }
        let fh = self.files.open_staged(upload, true);
        Ok(Opened { fh, direct_io: false, keep_cache: false })
    }

    /// A pending upload of `ino` open for one more writer: the file's own when it has not
    /// started uploading, else a new staged copy of its current content.
    async fn staged_copy(&self, ino: u64, empty: bool) -> Result<Arc<Upload>> {
        let (folder, shown, entry) = self.namespace.located(ino)?;
        self.storages[folder.storage].writer()?;
        let writes = self.writes()?;
        if entry.is_dir {
            return Err(Error::IsDir);
        }
        let pending = upload_of(&entry.id).and_then(|id| writes.get(id));
        if let Some(upload) = &pending
            && let Some(reopened) = writes.reopen(upload)
        {
            return Ok(reopened);
        }
        let upload = writes.create(folder.storage, &folder.entry.id, &folder.path, &entry.name)?;
        if !empty {
            let copied = match &pending {
                Some(old) => self.copy_staged(old, &upload).await,
                None => self.copy_remote(folder.storage, &entry, &upload).await,
            };
            if let Err(err) = copied {
                writes.cancel(&upload);
                return Err(err);
            }
        }
        self.namespace.show_pending(&folder, &shown, &upload);
        Ok(upload)
    }

    pub(super) async fn copy_remote(&self, storage: usize, entry: &Entry, to: &Arc<Upload>) -> Result<()> {
        let size = match entry.size {
            Some(size) => size,
            None => return Err(Error::internal("size unknown")),
        };
        let fh = self.files.open_file(storage, &self.storages[storage], entry.clone(), size);
        let result = async {
            let mut offset = 0;
            while offset < size {
                let bytes = self.files.read(fh, offset, COPY_CHUNK).await?;
                if bytes.is_empty() {
                    return Err(Error::InvalidResponse("the file ended early".into()));
                }
                let n = bytes.len() as u64;
                self.writes()?.write(to, offset, bytes).await?;
                offset += n;
            }
            Ok(())
        }
        .await;
        self.files.release(fh);
        result
    }

    async fn copy_staged(&self, from: &Arc<Upload>, to: &Arc<Upload>) -> Result<()> {
        self.materialize(from).await?;
        let writes = self.writes()?;
        let size = from.staging.size();
        let mut offset = 0;
        while offset < size {
            let bytes = writes.read(from, offset, COPY_CHUNK).await?;
            let n = bytes.len() as u64;
            writes.write(to, offset, bytes).await?;
            offset += n;
        }
        Ok(())
    }

    /// Write through a handle open for writing.
    pub async fn write(&self, fh: u64, offset: u64, data: Bytes) -> Result<u32> {
        let handle = self.files.handle(fh)?;
        let Handle::Staged { upload, writer: true } = &*handle else { return Err(Error::BadHandle) };
        self.materialize(upload).await?;
        let n = data.len() as u32;
        match self.writes()?.write(upload, offset, data).await {
            Err(err @ Error::NoSpace(_)) => {
                // It cannot fit: nothing of it is uploaded (see `release`).
                upload.discard.store(true, std::sync::atomic::Ordering::SeqCst);
                Err(err)
            }
            other => other.map(|()| n),
        }
    }

    /// A `close` of a descriptor: what was written is durable and journaled when this returns.
    pub async fn close(&self, fh: u64) -> Result<()> {
        let handle = self.files.handle(fh)?;
        match &*handle {
            Handle::Staged { upload, writer: true } if !upload.discard.load(std::sync::atomic::Ordering::SeqCst) => {
                self.writes()?.commit(upload).await
            }
            _ => Ok(()),
        }
    }

    /// `fsync`: returns once what was written is on the provider.
    pub async fn fsync(&self, fh: u64) -> Result<()> {
        let handle = self.files.handle(fh)?;
        match &*handle {
            Handle::Staged { upload, .. } => self.writes()?.sync(upload).await,
            _ => Ok(()),
        }
    }

    /// The last close of an open file: a writer's upload starts once no handle writes to it.
    pub async fn release(&self, fh: u64) -> Result<()> {
        let Some(handle) = self.files.release(fh) else { return Ok(()) };
        let Handle::Staged { upload, writer: true } = &*handle else { return Ok(()) };
        let writes = self.writes()?;
        if upload.discard.load(std::sync::atomic::Ordering::SeqCst) {
            if upload.staging.remove_writer() {
                let record = upload.record();
                writes.cancel(upload);
                self.namespace.drop_pending(upload.storage, &record.parent_id, &record.name, &upload.id);
            }
            return Ok(());
        }
        writes.release(upload).await
    }

    pub async fn mkdir(&self, parent: u64, name: &str) -> Result<(Attr, Duration)> {
        let (folder, writable) = self.writable_folder(parent)?;
        let remote = remote_name(name)?;
        if self.namespace.child(&folder, name).await?.is_some() {
            return Err(Error::Exists);
        }
        let storage = &self.storages[folder.storage];
        let created = storage.checked(writable.mkdir(&folder.entry, &remote).await)?;
        tracing::info!(path = %join(&folder.path, name), "folder created");
        self.namespace.patch(folder.storage, &folder.entry.id, |entries| entries.push(created));
        self.found(parent, name).await
    }

    /// `rm`: the file goes to the provider's trash (a pending one is simply not uploaded).
    pub async fn unlink(&self, parent: u64, name: &str) -> Result<()> {
        let (folder, _) = self.writable_folder(parent)?;
        for _ in 0..3 {
            let (entry, upload) = self.child_now(&folder, name).await?.ok_or(Error::NotFound)?;
            if entry.is_dir {
                return Err(Error::IsDir);
            }
            if self.remove_file(&folder, &entry, upload).await? {
                return Ok(());
            }
        }
        Err(Error::internal(format!("{name} kept landing while it was removed")))
    }

    /// `rmdir`: an empty folder goes to the trash.
    pub async fn rmdir(&self, parent: u64, name: &str) -> Result<()> {
        let (folder, writable) = self.writable_folder(parent)?;
        let entry = self.namespace.child(&folder, name).await?.ok_or(Error::NotFound)?;
        if !entry.is_dir {
            return Err(Error::NotDir);
        }
        if self.namespace.has_children(folder.storage, &entry).await? {
            return Err(Error::NotEmpty);
        }
        self.storages[folder.storage].checked(writable.trash(&entry).await)?;
        tracing::info!(path = %join(&folder.path, name), "folder moved to the trash");
        self.namespace.patch(folder.storage, &folder.entry.id, |entries| entries.retain(|e| e.id != entry.id));
        self.namespace.forget_dir(folder.storage, &entry.id);
        Ok(())
    }

    /// Remove the file `entry` of `folder`: a pending upload stops, and the provider's file of
    /// that name goes to the trash.
    /// False when the pending file landed meanwhile: look it up again and remove that.
    async fn remove_file(&self, folder: &Folder, entry: &Entry, upload: Option<Arc<Upload>>) -> Result<bool> {
        let writable = self.storages[folder.storage].writer()?;
        if let Some(upload) = upload {
            if !self.writes()?.cancel(&upload) {
                return Ok(false);
            }
            self.namespace.hide_pending(folder.storage, &folder.entry.id, &entry.name, &upload.id);
        }
        if let Some(remote) = self.namespace.remote_child(folder, &entry.name).await?.filter(|e| !e.is_dir) {
            self.storages[folder.storage].checked(writable.trash(&remote).await)?;
            tracing::info!(path = %join(&folder.path, &entry.name), "file moved to the trash");
            self.namespace.patch(folder.storage, &folder.entry.id, |entries| entries.retain(|e| e.id != remote.id));
        }
        Ok(true)
    }

    /// rename(2) within one storage: the provider renames, moves, or both; an existing target
    /// is replaced (it goes to the trash). Across storages `EXDEV`, so `mv` copies.
    pub async fn rename(&self, parent: u64, name: &str, new_parent: u64, new_name: &str, flags: u32) -> Result<()> {
        if flags & RENAME_EXCHANGE != 0 {
            return Err(Error::NotSupported);
        }
        let from = self.namespace.folder(parent).map_err(cross_device)?;
        let to = self.namespace.folder(new_parent).map_err(cross_device)?;
        if from.storage != to.storage {
            return Err(Error::CrossDevice);
        }
        let (_, writable) = self.writable_folder(parent)?;
        let (entry, upload) = self.child_now(&from, name).await?.ok_or(Error::NotFound)?;
        let remote = remote_name(new_name)?;
        if from.entry.id == to.entry.id && entry.name == remote {
            return Ok(());
        }
        if let Some((target, target_upload)) = self.child_now(&to, new_name).await? {
            if flags & RENAME_NOREPLACE != 0 {
                return Err(Error::Exists);
            }
            match (entry.is_dir, target.is_dir) {
                (false, true) => return Err(Error::IsDir),
                (true, false) => return Err(Error::NotDir),
                (true, true) => self.rmdir(new_parent, new_name).await?,
                (false, false) => {
                    if !self.remove_file(&to, &target, target_upload).await? {
                        // The target landed just now: start over with the provider's file.
                        return Box::pin(self.rename(parent, name, new_parent, new_name, flags)).await;
                    }
                }
            }
        }
        let storage = &self.storages[from.storage];
        match upload {
            Some(upload) => {
                // Not on the provider yet: only the journal changes (unless it landed just now:
                // then it is renamed there, as any file).
                if let Err(Error::NotFound) = self.writes()?.rename(&upload, &to.entry.id, &to.path, &remote).await {
                    return Box::pin(self.rename(parent, name, new_parent, new_name, flags)).await;
                }
                self.namespace.hide_pending(from.storage, &from.entry.id, &entry.name, &upload.id);
                self.namespace.show_pending(&to, new_name, &upload);
                // The provider's older file the pending one was replacing is gone with its name.
                if let Some(old) = self.namespace.remote_child(&from, &entry.name).await?.filter(|e| !e.is_dir) {
                    storage.checked(writable.trash(&old).await)?;
                    self.namespace.patch(from.storage, &from.entry.id, |entries| entries.retain(|e| e.id != old.id));
                }
                tracing::debug!(from = %join(&from.path, name), to = %join(&to.path, new_name), phase = ?upload.phase(), "renamed a file not uploaded yet");
            }
            None => {
                let moved = storage.checked(writable.rename(&entry, &from.entry, &to.entry, &remote).await)?;
                tracing::info!(from = %join(&from.path, name), to = %join(&to.path, new_name), "renamed");
                self.namespace.patch(from.storage, &from.entry.id, |entries| entries.retain(|e| e.id != entry.id));
                self.namespace.patch(to.storage, &to.entry.id, |entries| {
                    entries.retain(|e| e.id != moved.id);
                    entries.push(moved);
                });
            }
        }
        self.namespace.moved(parent, name, new_parent, new_name);
        Ok(())
    }

    /// `truncate`, `utimens`, `chmod`, `chown`: sizes and times change, modes and owners are
    /// accepted and ignored (the providers keep none), so `cp -a` and `rsync -a` work.
    pub async fn setattr(
        &self,
        ino: u64,
        size: Option<u64>,
        mtime: Option<SystemTime>,
        fh: Option<u64>,
    ) -> Result<(Attr, Duration)> {
        let current = self.getattr(ino).await?;
        if size.is_none() && mtime.is_none() {
            return Ok(current);
        }
        let (folder, _, _) = self.namespace.located(ino)?;
        self.storages[folder.storage].writer()?;
        let writes = self.writes()?;
        if let Some(size) = size {
            let handle = fh.and_then(|fh| self.files.handle(fh).ok());
            match handle.as_deref() {
                Some(Handle::Staged { upload, writer: true }) => self.truncate(upload, size).await?,
                _ => {
                    let upload = self.staged_copy(ino, size == 0).await?;
                    let result = self.truncate(&upload, size).await;
                    writes.release(&upload).await?;
                    result?;
                }
            }
        }
        if let Some(mtime) = mtime {
            let (_, _, entry) = self.namespace.located(ino)?;
            let upload = upload_of(&entry.id).and_then(|id| writes.get(id));
            let pending = match &upload {
                Some(upload) => match writes.set_mtime(upload, mtime).await {
                    Err(Error::NotFound) => false,
                    other => other.map(|()| true)?,
                },
                None => false,
            };
            if !pending {
                let (_, _, entry) = self.landed_entry(ino).await?;
                {
                    let writes = writes.clone();
                    tokio::task::spawn_blocking(move || writes.times.set(&entry, mtime))
                        .await
                        .map_err(|e| Error::internal(e.to_string()))?;
                }
            }
        }
        self.getattr(ino).await
    }

    /// Where `ino` is and its entry, once any upload of it that is landing has landed.
    async fn landed_entry(&self, ino: u64) -> Result<(Folder, String, Entry)> {
        for _ in 0..500 {
            let (folder, shown, entry) = self.namespace.located(ino)?;
            let landing =
                upload_of(&entry.id).and_then(|id| self.writes().ok()?.get(id)).is_some_and(|u| u.is_settled());
            if !landing {
                return Ok((folder, shown, entry));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            self.getattr(ino).await?;
        }
        Err(Error::internal("an upload took too long to land"))
    }

    /// Read from a pending file's staging file.
    pub(super) async fn read_staged(&self, upload: &Arc<Upload>, offset: u64, size: u32) -> Result<Bytes> {
        self.materialize(upload).await?;
        self.writes()?.read(upload, offset, size).await
    }

    /// Set a pending file's size: a provider's copy cut to nothing needs none of its bytes.
    async fn truncate(&self, upload: &Arc<Upload>, size: u64) -> Result<()> {
        let writes = self.writes()?;
        if size == 0 && upload.is_copy() {
            writes.materialized(upload).await?;
        }
        self.materialize(upload).await?;
        writes.truncate(upload, size).await
    }

    /// What `name` in `folder` is now, and its upload when it is a pending file. A pending
    /// entry whose upload is gone has just landed (or was cancelled): the listing then shows
    /// what the provider holds, so it is looked up again.
    async fn child_now(&self, folder: &Folder, name: &str) -> Result<Option<(Entry, Option<Arc<Upload>>)>> {
        for _ in 0..500 {
            let Some(entry) = self.namespace.child(folder, name).await? else { return Ok(None) };
            let Some(id) = upload_of(&entry.id) else { return Ok(Some((entry, None))) };
            match self.writes()?.get(id) {
                Some(upload) if !upload.is_settled() => return Ok(Some((entry, Some(upload)))),
                // Landing right now: the provider's entry shows in a moment.
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        Err(Error::internal(format!("{name} kept changing while it was looked up")))
    }

    /// The attributes of `name` in `parent`, which was just made (a kernel lookup).
    async fn found(&self, parent: u64, name: &str) -> Result<(Attr, Duration)> {
        match self.namespace.lookup(parent, name).await? {
            Lookup::Found { attr, ttl } => Ok((attr, ttl)),
            Lookup::Missing { .. } => Err(Error::internal(format!("{name} missing right after it was made"))),
        }
    }
}

/// The provider's name for a name the user gave (the inverse of the listing's escaping).
fn remote_name(shown: &str) -> Result<String> {
    crate::names::unescape(shown).ok_or(Error::NotPermitted)
}

/// A rename from or to a folder no storage owns is a rename across file systems to `mv`.
fn cross_device(err: Error) -> Error {
    match err {
        Error::ReadOnly => Error::CrossDevice,
        other => other,
    }
}

fn join(folder: &str, name: &str) -> String {
    format!("{}/{name}", folder.trim_end_matches('/'))
}
