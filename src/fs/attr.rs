//! What `stat` shows: the core's own attribute struct (the adapter turns it into fuser's).
//!
//! Ownership and permission bits come from `[fuse]` (uid, gid, umask), not from the provider:
//! cloud drives have no Unix owners, and a media server running as another user must be able
//! to read what the mount shows. The mount is read-only, so write bits only say what a local
//! admin would expect to see; the kernel refuses writes with EROFS anyway.

use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub umask: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    pub is_dir: bool,
    pub mtime: SystemTime,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub fn attr(&self, ino: u64, is_dir: bool, size: u64, mtime: SystemTime) -> Attr {
        let base = if is_dir { 0o777 } else { 0o666 };
        Attr { ino, size, is_dir, mtime, perm: (base & !self.umask & 0o7777) as u16, uid: self.uid, gid: self.gid }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umask_applies() {
        let o = Owner { uid: 7, gid: 8, umask: 0o022 };
        assert_eq!(o.attr(2, true, 0, SystemTime::UNIX_EPOCH).perm, 0o755);
        assert_eq!(o.attr(2, false, 0, SystemTime::UNIX_EPOCH).perm, 0o644);
        let o = Owner { umask: 0o077, ..o };
        assert_eq!(o.attr(2, false, 0, SystemTime::UNIX_EPOCH).perm, 0o600);
    }
}
