//! `impl fuser::Filesystem`: copy the arguments, spawn the core's async method on tokio, reply
//! from the task. No logic lives here, and no callback blocks the FUSE loop, so one slow read
//! never holds up an `ls`.

use std::ffi::OsStr;
use std::sync::Arc;

use fuser::{
    Errno, FileHandle, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, Request,
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

impl fuser::Filesystem for Adapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for flag in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_AUTO_INVAL_DATA,
            InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP,
        ] {
            if config.add_capabilities(flag).is_err() {
                tracing::debug!(?flag, "kernel does not offer this capability");
            }
        }
        let _ = config.set_max_background(MAX_BACKGROUND);
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
        self.rt.spawn(async move {
            match fs.open(ino.0, write).await {
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
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.fs.release(fh.0);
        reply.ok();
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

    /// Nothing to write back: the mount is read-only. (Unanswered, fuser logs a warning per
    /// `close`.)
    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    /// No extended attributes. ENOSYS makes the kernel stop asking for the rest of the mount
    /// (`ls` asks for `security.selinux` on every file otherwise).
    fn getxattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // Permission bits are checked by the kernel (default_permissions); only writes differ.
        if mask.contains(fuser::AccessFlags::W_OK) {
            reply.error(Errno::EROFS);
        } else {
            reply.ok();
        }
    }
}
