//! The fault matrix (tests/README.md): the simulated CDN's own behaviour (`sim_cdn`), the
//! simulated PikPak's write side (`sim_pikpak`), the simulator's S3-compatible store
//! (`sim_s3`), and what a reader of a mount gets under each CDN fault (`faults_cdn`) and API
//! fault (`faults_api`).
#![cfg(feature = "sim")]

#[path = "../common/mod.rs"]
mod common;

mod faults_api;
mod faults_cdn;
mod sim_cdn;
mod sim_pikpak;
mod sim_s3;
