//! Mounting: the fuser `Config`, stale mount cleanup, and the kernel read-ahead knob.
//!
//! - Read-only, `noatime`, `default_permissions` (the kernel checks the mode bits from
//!   `[fuse]`, so `umask` means what it says when `allow_other` lets a media server in).
//! - `FSName`/`Subtype` make `mount` and `df` show `panmount`.
//! - No `AutoUnmount`: with it, fuser 0.18's in-process unmount hangs; we unmount explicitly
//!   on SIGINT/SIGTERM instead, and clean a stale mount left by a crash before mounting.
//! - Files are opened for direct IO (`[cache] direct_io`, on by default), so the kernel's
//!   readahead never runs: it ramps 64 KiB, 128 KiB, ... on every file opened, which made an
//!   ffprobe library scan fetch 1.8x the bytes ffprobe read (1.4x even at 64 KiB), cut a
//!   random 256 KiB read into sequential round trips, and gave panmount's own read-ahead,
//!   which knows streams from scans, nothing to decide. Direct IO measured (tests/bench,
//!   quick run): scan amplification 1.15, sequential loopback 1.16 GB/s against 0.79 with the
//!   page cache. `FUSE_DIRECT_IO_ALLOW_MMAP` keeps mmap working.
//! - With direct IO off, the mount's `read_ahead_kb` is written after mounting (fuser can
//!   only lower it). Best effort: it needs root, and failure is only logged.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{BackgroundSession, Config, MountOption, SessionACL};

use super::adapter::Adapter;
use crate::fs::Fs;

pub struct MountOptions {
    pub allow_other: bool,
    /// 0 leaves the kernel's default.
    pub read_ahead_kb: u32,
    /// Open files with `FOPEN_DIRECT_IO`.
    pub direct_io: bool,
    pub fsname: String,
    /// No storage takes writes: the kernel refuses them itself.
    pub read_only: bool,
}

pub struct Mounted {
    session: Option<BackgroundSession>,
    pub mountpoint: PathBuf,
}

pub fn mount(
    fs: Arc<Fs>,
    rt: tokio::runtime::Handle,
    mountpoint: &Path,
    options: &MountOptions,
) -> io::Result<Mounted> {
    clean_stale_mount(mountpoint);
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::NoAtime,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::DefaultPermissions,
        MountOption::FSName(options.fsname.clone()),
        MountOption::Subtype("panmount".into()),
    ];
    if options.read_only {
        config.mount_options.push(MountOption::RO);
    }
    config.acl = if options.allow_other { SessionACL::All } else { SessionACL::Owner };
    // Callbacks only spawn tasks, so two loops reading /dev/fuse are plenty.
    config.n_threads = Some(2);
    let session = fuser::spawn_mount(Adapter { fs, rt, direct_io: options.direct_io }, mountpoint, &config)?;
    if options.read_ahead_kb > 0 && !options.direct_io {
        set_read_ahead(mountpoint, options.read_ahead_kb);
    }
    Ok(Mounted { session: Some(session), mountpoint: mountpoint.to_path_buf() })
}

impl Mounted {
    /// Whether the kernel ended the session (someone ran `fusermount3 -u` or `umount`).
    pub fn is_finished(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    /// The kernel invalidations the core sends when a background listing found a change.
    pub fn invalidator(&self) -> Arc<dyn crate::fs::Invalidate> {
        let session = self.session.as_ref().expect("mounted");
        Arc::new(super::notify::KernelNotifier(session.notifier()))
    }

    pub fn unmount(mut self) -> io::Result<()> {
        match self.session.take() {
            Some(session) if session.guard.is_finished() => session.join(),
            Some(session) => session.umount_and_join(),
            None => Ok(()),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.umount_and_join();
        }
    }
}

/// What to tell a user whose mount failed. A refusal comes as a bare "Permission denied" (the
/// kernel's, opening /dev/fuse) or as fusermount3's complaint about `allow_other`: say what to
/// do about each.
pub fn mount_error(err: &io::Error, mountpoint: &Path, allow_other: bool) -> String {
    let mut msg = format!("cannot mount at {}: {}", mountpoint.display(), err.to_string().trim_end());
    if err.kind() != io::ErrorKind::PermissionDenied {
        return msg;
    }
    if err.to_string().contains("user_allow_other") {
        msg.push_str(
            "; allow_other (--allow-other, [fuse] allow_other) needs a line `user_allow_other` in \
             /etc/fuse.conf, or mount as root",
        );
        return msg;
    }
    msg.push_str(
        "; this user may not open /dev/fuse: add it to the `fuse` group (then log in again), or \
         check the device's mode with `ls -l /dev/fuse` (usually crw-rw-rw-); also check that the \
         user may write to the mount point",
    );
    if allow_other {
        msg.push_str("; allow_other also needs a line `user_allow_other` in /etc/fuse.conf");
    }
    msg
}

/// A FUSE mount whose process died answers ENOTCONN ("Transport endpoint is not connected")
/// and cannot be mounted over: detach it first. `read_dir` is the probe because it always
/// reaches the (dead) server, where `stat` may be answered from the kernel's attribute cache.
fn clean_stale_mount(mountpoint: &Path) {
    let err = match std::fs::read_dir(mountpoint) {
        Ok(_) => return,
        Err(err) => err,
    };
    if err.raw_os_error() != Some(libc::ENOTCONN) {
        return;
    }
    tracing::warn!(mountpoint = %mountpoint.display(), "cleaning a stale mount left by a previous run");
    let Ok(path) = std::ffi::CString::new(mountpoint.as_os_str().as_bytes()) else { return };
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        // Not root: the setuid helper can do it.
        let _ = std::process::Command::new("fusermount3").arg("-uz").arg(mountpoint).status();
    }
}

/// Write the mount's bdi `read_ahead_kb` (found through its device number in mountinfo).
fn set_read_ahead(mountpoint: &Path, kb: u32) {
    let Some(dev) = mount_device(mountpoint) else {
        tracing::debug!("read_ahead_kb: mount not found in /proc/self/mountinfo");
        return;
    };
    let knob = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    match std::fs::write(&knob, kb.to_string()) {
        Ok(()) => tracing::debug!(%knob, kb, "raised kernel read-ahead"),
        Err(err) => tracing::info!(%knob, error = %err, "could not raise kernel read-ahead (needs root)"),
    }
}

fn mount_device(mountpoint: &Path) -> Option<String> {
    let canonical = mountpoint.canonicalize().ok()?;
    let wanted = canonical.to_str()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // Fields: id parent major:minor root mountpoint ... - fstype source options (the mount
    // point is octal-escaped). A direct mount(2) as root has fstype `fuse`; fusermount3 gives
    // `fuse.panmount`. The source is our FSName.
    info.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let point = fields.get(4)?.replace("\\040", " ");
        let (_, tail) = line.split_once(" - ")?;
        let mut tail = tail.split(' ');
        let (fstype, source) = (tail.next()?, tail.next()?);
        (point == wanted && fstype.starts_with("fuse") && source.starts_with("panmount")).then(|| fields[2].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_mount_says_what_to_do() {
        let point = Path::new("/mnt/pan");
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        let msg = mount_error(&denied, point, false);
        assert!(msg.starts_with("cannot mount at /mnt/pan: Permission denied"), "{msg}");
        assert!(msg.contains("`fuse` group") && msg.contains("ls -l /dev/fuse"), "{msg}");
        assert!(!msg.contains("user_allow_other"), "{msg}");
        assert!(mount_error(&denied, point, true).contains("user_allow_other` in /etc/fuse.conf"));

        // fusermount3's refusal of allow_other, as fuser reports it.
        let fusermount = io::Error::new(
            io::ErrorKind::PermissionDenied,
            "fusermount3: option allow_other only allowed if 'user_allow_other' is set in /etc/fuse.conf\n",
        );
        let msg = mount_error(&fusermount, point, true);
        assert!(msg.contains("needs a line `user_allow_other` in /etc/fuse.conf"), "{msg}");
        assert!(!msg.contains("`fuse` group"), "{msg}");

        // Other failures are passed on as they are.
        let busy = io::Error::from_raw_os_error(libc::EBUSY);
        assert_eq!(mount_error(&busy, point, false), format!("cannot mount at /mnt/pan: {busy}"));
    }
}
