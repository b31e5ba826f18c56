//! One file on its way to a provider: its staging file, its journal record, and where its
//! upload stands. The queue (`super::queue`) and the write path (`super::Writes`) change it;
//! the fs core reads it to show the file while it is pending.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::watch;

use super::Record;
use super::staging::Staging;
use crate::drivers::Entry;

/// Where an upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Open for writing, or closed and waiting for the last writer.
    Writing,
    Queued,
    Uploading,
    Landed,
    /// Failed for good (the error): kept until the next start.
    Failed(String),
    Cancelled,
}

/// What [`Upload::settle_if_unchanged`] found.
pub(super) enum Settle {
    Done,
    /// Renamed or moved meanwhile: settle again.
    Changed,
    /// Deleted meanwhile: the landed copy goes to the trash.
    Cancelled,
}

/// One file on its way to a provider.
pub struct Upload {
    pub id: String,
    pub storage: usize,
    pub staging: Staging,
    pub(super) record: Mutex<Record>,
    pub(super) phase: watch::Sender<Phase>,
    pub(super) cancelled: AtomicBool,
    /// A write did not fit (`ENOSPC`): nothing of this file is uploaded.
    pub discard: AtomicBool,
    /// `fsync` calls waiting for this upload (a retry goes ahead for them even while a handle
    /// is open for writing).
    pub(super) syncing: std::sync::atomic::AtomicUsize,
    /// The uploaded file is where its record says, under its name: the record no longer
    /// changes (a rename now is a rename on the provider). Set under the record's lock.
    pub(super) settled: AtomicBool,
    /// A record of this upload is on disk (a `close` committed it, or a replay found it): a
    /// rename or a time set changes it at once.
    pub(super) journaled: AtomicBool,
    /// The staging version the provider has (0: none yet); `fsync` waits for it.
    pub(super) sent: AtomicU64,
    /// An upload that landed while a handle was still open for writing (an `fsync`, or a copy
    /// the provider made), and the folder it landed in: the file stays pending until the last
    /// writer closes, and then either this copy is shown or a newer upload replaces it (see
    /// `queue::work`).
    pub(super) interim: Mutex<Option<(Entry, String)>>,
    /// Held while the bytes of a provider's copy are fetched into staging (fs `materialize`).
    pub materializing: tokio::sync::Mutex<()>,
}

impl Upload {
    pub(super) fn new(id: String, storage: usize, staging: Staging, record: Record, phase: Phase) -> Upload {
        Upload {
            id,
            storage,
            staging,
            record: Mutex::new(record),
            phase: watch::Sender::new(phase),
            cancelled: AtomicBool::new(false),
            discard: AtomicBool::new(false),
            syncing: Default::default(),
            settled: AtomicBool::new(false),
            journaled: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            interim: Mutex::new(None),
            materializing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn record(&self) -> Record {
        self.record.lock().unwrap().clone()
    }

    pub fn phase(&self) -> Phase {
        self.phase.borrow().clone()
    }

    /// On the provider, where and as the user left it, about to be shown as the provider's
    /// entry: callers wait for that and act on the provider's entry instead.
    pub fn is_settled(&self) -> bool {
        self.settled.load(Ordering::SeqCst)
    }

    /// Mark the upload settled if its record still names `parent_id` and `name` and it was
    /// not deleted (under the record's lock, as [`super::Writes::cancel`] and renames are).
    pub(super) fn settle_if_unchanged(&self, parent_id: &str, name: &str) -> Settle {
        let record = self.record.lock().unwrap();
        if self.cancelled.load(Ordering::SeqCst) {
            Settle::Cancelled
        } else if record.parent_id == parent_id && record.name == name {
            self.settled.store(true, Ordering::SeqCst);
            Settle::Done
        } else {
            Settle::Changed
        }
    }

    /// A copy the provider made ([`super::Writes::provider_copy`]) whose bytes are not staged.
    pub fn is_copy(&self) -> bool {
        self.record.lock().unwrap().copied_from.is_some()
    }

    /// The entry the fs core shows for this file while it is pending: an id no provider uses
    /// ([`pending_id`]), the staged size, and the time set by `utimens` or else its creation.
    pub fn entry(&self) -> Entry {
        let record = self.record();
        let mtime = UNIX_EPOCH + record.mtime_ns.map_or(Duration::from_secs(record.created), Duration::from_nanos);
        Entry {
            id: pending_id(&self.id),
            name: record.name,
            is_dir: false,
            size: Some(self.staging.size()),
            mtime,
            version: pending_id(&self.id),
        }
    }
}

/// The id a pending file is shown under (`Entry::id`); providers' ids never start with `\0`.
pub fn pending_id(upload: &str) -> String {
    format!("\0pending:{upload}")
}

/// The upload id of a pending file's entry id.
pub fn upload_of(entry_id: &str) -> Option<&str> {
    entry_id.strip_prefix("\0pending:")
}
