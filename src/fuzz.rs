//! The fuzz targets of panmount, as property tests that run in `cargo test`.
//!
//! Every parser that reads what panmount does not control is fed arbitrary input here and
//! must answer with a value or an error that names what was wrong, never a panic, a hang or
//! unbounded memory. cargo-fuzz needs a nightly toolchain, so these are proptest properties
//! instead, each with a moderate number of cases so that `cargo test` stays quick:
//!
//! | input | property tests |
//! |---|---|
//! | provider names -> names on disk | `fs::names::tests` |
//! | the 123pan_link tree text | `drivers::pan123_link::tree::tests::fuzz` |
//! | the config file | `config::tests::fuzz` |
//! | PikPak JSON (lists, files, tokens, tasks, shares) | `drivers::pikpak::tests::fuzz` |
//! | 123pan JSON (envelopes, pages, files, user info, links) | `drivers::pan123::fuzz` |
//! | `Content-Range` | `http::range::tests` |
//!
//! To fuzz longer, raise the number of cases of every property at once, e.g.
//! `PROPTEST_CASES=200000 cargo test --lib fuzz` (the tests' names all contain `fuzz` or are
//! listed above; `cargo test --lib` runs them all). A failure prints the smallest input
//! proptest found; add it to the test as a plain example.

/// `default` cases, or `PROPTEST_CASES` when set.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
