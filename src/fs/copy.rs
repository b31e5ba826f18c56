//! `copy_file_range` between two files of the mount: what `cp` (coreutils 9) and `mv` across
//! storages call. A whole file copied into a new, empty one is made by the provider when it
//! can: an instant upload by the hash the source's listing shows (a PikPak GCID into a PikPak
//! drive, from a share or from the drive itself; a 123pan MD5 into a 123pan drive, from a share
//! or another folder), so not one byte is downloaded or uploaded. Anything else is read here
//! through the read path and written through the write path, byte-exact, as `read` and `write`
//! would have been.
//!
//! PikPak's `batchCopy` and share restore are not used: both copy under the source's name into
//! a folder, as a task to poll, and need a rename after; the instant upload makes the file
//! under the name `cp` asked for in one call, and is the same call for every source.
//!
//! The kernel caps one call at 4 GiB - 4 KiB (its reply holds a u32), so `cp` of a larger file
//! makes several: the first (offset 0 in both files, a length reaching the end or that cap)
//! has the provider copy the whole file, and the next ones, at equal offsets, find that copy
//! and only report their length.
//!
//! A provider's copy has none of its bytes here. Should they be needed after all (a write into
//! the copy before it lands, a truncate, a read of it while pending), [`Fs::materialize`]
//! fetches them from the source first and checks them against the hash.

use std::sync::Arc;

use super::Fs;
use super::open::handles::Handle;
use crate::error::{Error, Result};
use crate::read::OpenFile;
use crate::write::{CopiedFrom, Upload};

/// The most one `copy_file_range` call can report (the kernel's own cap).
const KERNEL_MAX: u64 = u32::MAX as u64 & !4095;
/// Bytes one call copies when they go through here: the caller (`cp`) calls again for more,
/// and a signal is not held up for long.
const BYTES_PER_CALL: u64 = 64 << 20;
/// Bytes read and written at a time.
const CHUNK: u64 = 1 << 20;

impl Fs {
    /// Copy `len` bytes of `fh_in` at `off_in` into `fh_out` (open for writing) at `off_out`;
    /// the bytes copied (fewer at the end of the file, 0 past it).
    pub async fn copy_range(&self, fh_in: u64, off_in: u64, fh_out: u64, off_out: u64, len: u64) -> Result<u32> {
        let out = self.files.handle(fh_out)?;
        let Handle::Staged { upload, writer: true } = &*out else { return Err(Error::BadHandle) };
        let input = self.files.handle(fh_in)?;
        match &*input {
            Handle::File(reader) => {
                if let Some(n) = self.by_provider(&reader.file, off_in, upload, off_out, len).await? {
                    return Ok(n);
                }
            }
            Handle::Staged { .. } => {}
            Handle::Dir { .. } => return Err(Error::IsDir),
            Handle::Stats(_) => return Err(Error::BadHandle),
        }
        let want = len.min(BYTES_PER_CALL);
        let mut done = 0;
        while done < want {
            let bytes = self.read(fh_in, off_in + done, (want - done).min(CHUNK) as u32).await?;
            if bytes.is_empty() {
                break;
            }
            done += u64::from(self.write(fh_out, off_out + done, bytes).await?);
        }
        Ok(done as u32)
    }

    /// What the provider copies (or copied) of this call, in bytes; `None` when it cannot.
    async fn by_provider(
        &self,
        file: &OpenFile,
        off_in: u64,
        upload: &Arc<Upload>,
        off_out: u64,
        len: u64,
    ) -> Result<Option<u32>> {
        let size = file.size;
        let reply = |offset: u64| len.min(size.saturating_sub(offset)).min(KERNEL_MAX) as u32;
        let source = &self.storages[file.storage];
        if let Some(from) = upload.record().copied_from {
            // A later call of the same `cp`: the provider has copied it all already.
            let same = from.entry.id == file.entry.id && from.storage == source.path && off_in == off_out;
            return Ok(same.then(|| reply(off_in)));
        }
        let whole = off_in == 0 && off_out == 0 && size > 0 && (len >= size || len >= KERNEL_MAX);
        if !whole || upload.staging.size() != 0 {
            return Ok(None);
        }
        let Some(hash) = source.driver.content_hash(&file.entry) else { return Ok(None) };
        let from = CopiedFrom { hash, storage: source.path.clone(), entry: file.entry.clone() };
        let copied = self.namespace.writes()?.provider_copy(upload, from, size).await?;
        Ok(copied.then(|| reply(0)))
    }

    /// Stage the bytes of a provider's copy (from its source, checked against the hash), so
    /// they can be read or changed here. Nothing to do for any other pending file.
    pub(super) async fn materialize(&self, upload: &Arc<Upload>) -> Result<()> {
        if !upload.is_copy() {
            return Ok(());
        }
        let _one_at_a_time = upload.materializing.lock().await;
        let Some(from) = upload.record().copied_from else { return Ok(()) };
        let storage = self.storages.iter().position(|s| s.path == from.storage).ok_or(Error::NotFound)?;
        tracing::debug!(name = %from.entry.name, "fetching the bytes of a provider's copy");
        self.copy_remote(storage, &from.entry, upload).await?;
        let writable = self.storages[upload.storage].writer()?;
        let staged = tokio::task::block_in_place(|| upload.staging.hash_from_file(writable))?;
        if !staged.eq_ignore_ascii_case(&from.hash.value) {
            return Err(Error::Remote(format!(
                "{} changed since it was copied (hash {staged}, the copy's {})",
                from.entry.name, from.hash.value
            )));
        }
        self.namespace.writes()?.materialized(upload).await
    }
}
