//! The FUSE side: the only code that knows fuser. `adapter` implements `fuser::Filesystem` by
//! spawning each request onto tokio and replying from the task; `convert` turns core results
//! into replies (and errors into errnos, logged at the right level); `mount` builds the session;
//! `notify` passes the core's kernel invalidations to fuser.

pub mod adapter;
pub mod convert;
pub mod mount;
pub mod notify;

pub use mount::{MountOptions, Mounted, mount};
