//! The one error type of panmount, and the one place it becomes an errno.
//!
//! Drivers, the HTTP layer, the caches and the read path all return [`Error`]. The FUSE adapter
//! calls [`Error::errno`] and nothing else decides what the kernel sees. The rule that matters to
//! users: anything that could mean "these bytes are not the remote bytes" is `EIO`, never a short
//! or padded answer.

use std::sync::Arc;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error, Clone)]
pub enum Error {
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("read-only file system")]
    ReadOnly,
    #[error("bad file handle")]
    BadHandle,
    #[error("file exists")]
    Exists,
    #[error("directory not empty")]
    NotEmpty,
    /// A rename between two storages: `mv` then copies and deletes.
    #[error("cross-storage rename")]
    CrossDevice,
    /// The provider's quota (or the local staging disk) cannot hold the file.
    #[error("no space left: {0}")]
    NoSpace(String),
    /// An operation no provider file can take (`symlink`, `link`, `mknod`).
    #[error("operation not permitted")]
    NotPermitted,
    #[error("operation not supported")]
    NotSupported,
    /// The storage could not be reached or refused us (login failed, account problem).
    /// Its folder answers EIO; the reason is logged once when the state changes.
    #[error("storage {path}: {reason}")]
    StorageDown { path: String, reason: String },
    /// The storage's session is gone and only the user can renew it (a spent refresh token and
    /// no password): the storage is marked down, as if its login had been refused.
    #[error("{0}")]
    LoginLost(String),
    /// The account's download quota is spent (123pan code 5113): reads fail until it resets.
    #[error("the account's download traffic is exhausted ({0})")]
    TrafficExhausted(String),
    /// The storage's download traffic is spent for this period: its `traffic_budget` is used
    /// up, or the provider said so (123pan 5113). Reads that need the network fail until the
    /// period resets; `crate::budget` logs it once per period.
    #[error("storage {path}: download traffic spent until {resets}")]
    TrafficSpent { path: String, resets: String },
    /// The CDN refused a download link (403/410, or an expired signature).
    #[error("download link refused with HTTP {status}")]
    LinkRefused { status: u16 },
    /// The service asked us to slow down.
    #[error("rate limited (HTTP {status})")]
    RateLimited { status: u16, retry_after: Option<Duration> },
    /// An HTTP status that may succeed when tried again (5xx).
    #[error("server error HTTP {status}")]
    ServerError { status: u16 },
    /// A response that does not prove it carries the bytes we asked for (status, Content-Range,
    /// length). These bytes never reach a reader.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// Connection-level failure (reset, timeout, DNS). The message is the transport's, with any
    /// URL removed, since a URL may carry a signature.
    #[error("network: {0}")]
    Network(String),
    /// The service answered with an error we understand but cannot fix by retrying.
    #[error("{0}")]
    Remote(String),
    #[error("{0}")]
    Internal(Arc<str>),
}

impl Error {
    /// The errno the kernel gets. This is the only mapping in the program.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFound => libc::ENOENT,
            Error::NotDir => libc::ENOTDIR,
            Error::IsDir => libc::EISDIR,
            Error::ReadOnly => libc::EROFS,
            Error::BadHandle => libc::EBADF,
            Error::Exists => libc::EEXIST,
            Error::NotEmpty => libc::ENOTEMPTY,
            Error::CrossDevice => libc::EXDEV,
            Error::NoSpace(_) => libc::ENOSPC,
            Error::NotPermitted => libc::EPERM,
            Error::NotSupported => libc::ENOTSUP,
            _ => libc::EIO,
        }
    }

    /// Whether a request that failed this way may succeed when sent again unchanged.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::RateLimited { .. } | Error::ServerError { .. } | Error::Network(_))
    }

    /// Expected outcomes (a missing `.nfo` probed by a media server) are logged at debug level;
    /// everything else is worth a warning.
    pub fn is_expected(&self) -> bool {
        matches!(
            self,
            Error::NotFound
                | Error::NotDir
                | Error::IsDir
                | Error::ReadOnly
                | Error::Exists
                | Error::NotEmpty
                | Error::CrossDevice
                | Error::NotPermitted
                | Error::NotSupported
        )
    }

    /// Errors whose cause is logged once where it is known (a storage going down, its traffic
    /// spent): logging each failed read again would flood the journal during a library scan.
    pub fn is_logged_once(&self) -> bool {
        matches!(self, Error::StorageDown { .. } | Error::TrafficSpent { .. } | Error::TrafficExhausted(_))
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(Arc::from(msg.into()))
    }
}

/// Lets the retry runner (`http::retry`) take `Error` and drivers' errors that carry one alike.
impl AsRef<Error> for Error {
    fn as_ref(&self) -> &Error {
        self
    }
}

impl From<reqwest::Error> for Error {
    fn from(err: reqwest::Error) -> Self {
        // reqwest's Display includes the URL, and our URLs carry signatures: strip it.
        let err = err.without_url();
        let mut msg = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        Error::Network(msg)
    }
}
