//! The core's [`Invalidate`] over fuser's `Notifier`: how background revalidation tells the
//! kernel to forget names and attributes it cached. The kernel answers ENOENT for what it does
//! not hold (a folder nobody opened), which is the common case and not worth a log line above
//! debug.

use std::ffi::OsStr;

use fuser::{INodeNo, Notifier};

use crate::fs::Invalidate;

pub struct KernelNotifier(pub Notifier);

impl Invalidate for KernelNotifier {
    fn entry(&self, parent: u64, name: &str) {
        if let Err(err) = self.0.inval_entry(INodeNo(parent), OsStr::new(name)) {
            tracing::debug!(parent, name, error = %err, "kernel entry invalidation");
        }
    }

    fn inode(&self, ino: u64) {
        // Offset 0, length 0: the attributes and every cached page.
        if let Err(err) = self.0.inval_inode(INodeNo(ino), 0, 0) {
            tracing::debug!(ino, error = %err, "kernel inode invalidation");
        }
    }
}
