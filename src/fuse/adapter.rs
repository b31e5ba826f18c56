//! `impl fuser::Filesystem`: copy the arguments, spawn the core's async method on tokio, reply
//! from the task. No logic lives here, and no callback blocks the FUSE loop, so one slow read
//! never holds up an `ls`.

use std::ffi::OsStr;
use std::sync::Arc;

use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use fuser::{
    BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use super::convert::{errno, file_attr, kind, negative_attr, ttl};
use crate::error::Error;
use crate::fs::{Fs, Lookup};

pub struct Adapter {
    pub fs: Arc<Fs>,
    pub rt: tokio::runtime::Handle,
    /// Every file opened with `FOPEN_DIRECT_IO` (`[cache] direct_io`).
    pub direct_io: bool,
}

/// Largest number of outstanding background (readahead) requests; fuser's default is 16.
/// mountpoint-s3 uses 64: enough to keep several parallel ranged downloads busy.
const MAX_BACKGROUND: u16 = 64;
/// Largest write the kernel sends at once (its default is 128 KiB): fewer, larger writes into
/// staging.
const MAX_WRITE: u32 = 1 << 20;

impl fuser::Filesystem for Adapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for flag in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_AUTO_INVAL_DATA,
            InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP,
            // `O_TRUNC` comes with the `open`: without it the kernel opens the file as it is
            // and truncates after, so `cp` over an existing file fetched its old bytes first.
            InitFlags::FUSE_ATOMIC_O_TRUNC,
        ] {
            if config.add_capabilities(flag).is_err() {
                tracing::debug!(?flag, "kernel does not offer this capability");
            }
        }
        let _ = config.set_max_background(MAX_BACKGROUND);
        let _ = config.set_max_write(MAX_WRITE);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        // Every name the core holds is UTF-8: a name that is not cannot be one of them (a
        // lossy conversion would match "a\u{FFFD}b" for b"a\xffb").
        let Some(name) = name.to_str().map(str::to_owned) else {
            return reply.error(errno("lookup", parent.0, &Error::NotFound));
        };
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.lookup(parent.0, &name).await {
                Ok(Lookup::Found { attr, ttl: t }) => reply.entry(&ttl(t), &file_attr(&attr), Generation(0)),
                Ok(Lookup::Missing { ttl: t }) => reply.entry(&ttl(t), &negative_attr(), Generation(0)),
                Err(err) => reply.error(errno("lookup", parent.0, &err)),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.getattr(ino.0).await {
                Ok((attr, t)) => reply.attr(&ttl(t), &file_attr(&attr)),
                Err(err) => reply.error(errno("getattr", ino.0, &err)),
            }
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (fs, direct_io) = (self.fs.clone(), self.direct_io);
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0;
        let truncate = flags.0 & libc::O_TRUNC != 0;
        self.rt.spawn(async move {
            match fs.open(ino.0, write, truncate).await {
                Ok(opened) => {
                    let mut flags = FopenFlags::empty();
                    if opened.keep_cache {
                        flags |= FopenFlags::FOPEN_KEEP_CACHE;
                    }
                    if opened.direct_io || direct_io {
                        flags |= FopenFlags::FOPEN_DIRECT_IO;
                    }
                    reply.opened(FileHandle(opened.fh), flags)
                }
                Err(err) => reply.error(errno("open", ino.0, &err)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.read(fh.0, offset, size).await {
                Ok(bytes) => reply.data(&bytes),
                Err(err) => reply.error(errno("read", ino.0, &err)),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.release(fh.0).await {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno("release", ino.0, &err)),
            }
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.opendir(ino.0).await {
                // The kernel caches the listing (FOPEN_CACHE_DIR) and keeps its copy while
                // it is unchanged, so a warm `ls -l` of a big folder never reaches us.
                Ok(dir) => {
                    let keep = if dir.unchanged { FopenFlags::FOPEN_KEEP_CACHE } else { FopenFlags::empty() };
                    reply.opened(FileHandle(dir.fh), FopenFlags::FOPEN_CACHE_DIR | keep)
                }
                Err(err) => reply.error(errno("opendir", ino.0, &err)),
            }
        });
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            let filled = fs
                .readdir(fh.0, offset, false, |item| {
                    reply.add(INodeNo(item.attr.ino), item.offset, kind(&item.attr), item.name)
                })
                .await;
            match filled {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno("readdir", ino.0, &err)),
            }
        });
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            let filled = fs
                .readdir(fh.0, offset, true, |item| {
                    let attr = file_attr(&item.attr);
                    reply.add(INodeNo(item.attr.ino), item.offset, item.name, &ttl(item.ttl), &attr, Generation(0))
                })
                .await;
            match filled {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno("readdirplus", ino.0, &err)),
            }
        });
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            let s = fs.statfs().await;
            const BSIZE: u64 = 4096;
            let (blocks, free) = (s.total / BSIZE, (s.total - s.used) / BSIZE);
            reply.statfs(blocks, free, free, s.files, 0, BSIZE as u32, 255, BSIZE as u32);
        });
    }

    /// Each `close`: a writer's bytes are made durable and journaled before it returns.
    fn flush(&self, _req: &Request, ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.close(fh.0).await {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno("close", ino.0, &err)),
            }
        });
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.fsync(fh.0).await {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno("fsync", ino.0, &err)),
            }
        });
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.copy_range(fh_in.0, offset_in, fh_out.0, offset_out, len).await {
                Ok(n) => reply.written(n),
                Err(err) => reply.error(errno("copy_file_range", ino_in.0, &err)),
            }
        });
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let (fs, data) = (self.fs.clone(), Bytes::copy_from_slice(data));
        self.rt.spawn(async move {
            match fs.write(fh.0, offset, data).await {
                Ok(n) => reply.written(n),
                Err(err) => reply.error(errno("write", ino.0, &err)),
            }
        });
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let Some(name) = name.to_str().map(str::to_owned) else { return reply.error(Errno::EINVAL) };
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.create(parent.0, &name).await {
                Ok((attr, t, opened)) => {
                    reply.created(&ttl(t), &file_attr(&attr), Generation(0), FileHandle(opened.fh), FopenFlags::empty())
                }
                Err(err) => reply.error(errno("create", parent.0, &err)),
            }
        });
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, reply: ReplyEntry) {
        let Some(name) = name.to_str().map(str::to_owned) else { return reply.error(Errno::EINVAL) };
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.mkdir(parent.0, &name).await {
                Ok((attr, t)) => reply.entry(&ttl(t), &file_attr(&attr), Generation(0)),
                Err(err) => reply.error(errno("mkdir", parent.0, &err)),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(name) = name.to_str().map(str::to_owned) else { return reply.error(Errno::ENOENT) };
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.unlink(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno("unlink", parent.0, &err)),
            }
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(name) = name.to_str().map(str::to_owned) else { return reply.error(Errno::ENOENT) };
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.rmdir(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno("rmdir", parent.0, &err)),
            }
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (Some(name), Some(newname)) = (name.to_str().map(str::to_owned), newname.to_str().map(str::to_owned))
        else {
            return reply.error(Errno::EINVAL);
        };
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.rename(parent.0, &name, newparent.0, &newname, flags.bits()).await {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno("rename", parent.0, &err)),
            }
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mtime = mtime.map(|t| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => SystemTime::now(),
        });
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.setattr(ino.0, size, mtime, fh.map(|f| f.0)).await {
                Ok((attr, t)) => reply.attr(&ttl(t), &file_attr(&attr)),
                Err(err) => reply.error(errno("setattr", ino.0, &err)),
            }
        });
    }

    /// Providers keep regular files and folders only.
    fn symlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, _target: &Path, reply: ReplyEntry) {
        reply.error(Errno::EPERM);
    }

    fn link(&self, _req: &Request, _ino: INodeNo, _newparent: INodeNo, _newname: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::EPERM);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::from_i32(libc::ENOTSUP));
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::from_i32(libc::ENOTSUP));
    }

    /// No extended attributes. ENOSYS makes the kernel stop asking for the rest of the mount
    /// (`ls` asks for `security.selinux` on every file otherwise).
    fn getxattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // Permission bits are checked by the kernel (default_permissions); only writes differ.
        if mask.contains(fuser::AccessFlags::W_OK) && !self.fs.is_writable(ino.0) {
            reply.error(Errno::EROFS);
        } else {
            reply.ok();
        }
    }
}
