//! Core structs to fuser structs, and errors to errnos (via `Error::errno`, the one mapping).

use std::time::Duration;

use fuser::{Errno, FileAttr, FileType, INodeNo};

use crate::error::Error;
use crate::fs::Attr;

/// Block size reported to `stat`: large, so that `cp` and friends read in big requests.
const BLKSIZE: u32 = 1 << 20;

pub fn file_attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: attr.mtime,
        mtime: attr.mtime,
        ctime: attr.mtime,
        crtime: attr.mtime,
        kind: if attr.is_dir { FileType::Directory } else { FileType::RegularFile },
        perm: attr.perm,
        nlink: if attr.is_dir { 2 } else { 1 },
        uid: attr.uid,
        gid: attr.gid,
        rdev: 0,
        blksize: BLKSIZE,
        flags: 0,
    }
}

/// The attributes of a negative entry: inode 0 tells the kernel to cache "no such name".
pub fn negative_attr() -> FileAttr {
    let mut attr =
        file_attr(&Attr { ino: 0, size: 0, is_dir: false, mtime: std::time::UNIX_EPOCH, perm: 0, uid: 0, gid: 0 });
    attr.ino = INodeNo(0);
    attr
}

pub fn kind(attr: &Attr) -> FileType {
    if attr.is_dir { FileType::Directory } else { FileType::RegularFile }
}

/// Log a failed operation at the level it deserves and give the kernel its errno.
pub fn errno(op: &str, ino: u64, err: &Error) -> Errno {
    if err.is_expected() {
        tracing::debug!(op, ino, error = %err);
    } else if err.is_logged_once() {
        tracing::debug!(op, ino, error = %err);
    } else {
        tracing::warn!(op, ino, error = %err, "operation failed");
    }
    Errno::from_i32(err.errno())
}

/// Never hand the kernel a zero TTL: it would ask again for every single `stat`.
pub fn ttl(ttl: Duration) -> Duration {
    ttl.max(Duration::from_secs(1))
}
