//! panmount: mount PikPak and 123pan drives, shares and signed direct links through FUSE.
//!
//! Layers, one direction of dependency (DESIGN.md): `cli`/`app` -> `fuse` (the only code that
//! knows fuser) -> `fs` (inodes, handles, caches, read path) -> `drivers` -> `http`.

pub mod config;
pub mod drivers;
pub mod error;
pub mod http;
#[cfg(feature = "sim")]
pub mod sim;
