//! panmount: mount PikPak and 123pan drives, shares and signed direct links through FUSE.
//!
//! Layers, one direction of dependency (DESIGN.md): `cli`/`app` -> `fuse` (the only code that
//! knows fuser) -> `fs` (inodes, handles) -> `cache` and `read` -> `drivers` -> `http`.
//! `notify` (library refresh hooks) is told by `fs` through a trait (`fs::FolderChanged`), as
//! `fuse` is for kernel invalidations: the core knows neither.

pub mod app;
pub mod budget;
pub mod cache;
pub mod cli;
pub mod config;
#[cfg(feature = "sim")]
pub mod demo;
pub mod drivers;
pub mod error;
pub mod fs;
pub mod fuse;
#[cfg(test)]
mod fuzz;
pub mod http;
pub mod logging;
pub mod names;
pub mod notify;
pub mod offline;
pub mod openlist;
pub mod read;
pub mod service;
#[cfg(feature = "sim")]
pub mod sim;
pub mod state;
pub mod stats;
pub mod storage;
pub mod time;
pub mod warm;
pub mod write;
