//! End-to-end tests: real `panmount` processes and FUSE mounts against the simulator, one
//! module per area (the CLI, each driver's mount, hostile input, secrets, the service pieces,
//! warm restarts, the traffic budget), plus the core driven without FUSE (`core`).
//!
//! One test binary instead of one per file: CI links each test binary separately, and on two
//! cores the links cost more than the tests.
#![cfg(feature = "sim")]

#[path = "../common/mod.rs"]
mod common;

mod budget;
mod cli;
mod core;
mod demo;
mod disk_cache;
mod health;
mod hostile;
mod mount_link;
mod mount_pan123;
mod mount_pikpak;
mod notify;
mod secrets;
mod service;
mod warm_restart;
mod write;
