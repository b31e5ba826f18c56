//! The fuzz targets of panmount, as property tests that run in `cargo test`.
//!
//! Every parser that reads what panmount does not control is fed arbitrary input here and
//! must answer with a value or an error that names what was wrong, never a panic, a hang or
//! unbounded memory. cargo-fuzz needs a nightly toolchain, so these are proptest properties
//! instead, each with a moderate number of cases so that `cargo test` stays quick:
//!
//! | input | property tests |
//! |---|---|
//! | provider names -> names on disk | `names::tests` |
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

use proptest::prelude::*;
use serde_json::Value;

/// Arbitrary JSON whose object keys are mostly `keys` (the fields a decoder reads), so that
/// fuzzing reaches the decoder's fields rather than stopping at the first type check. Strings
/// lean towards what providers put in fields: numbers as text, dates, URLs.
pub fn json(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        any::<String>(),
        "-?[0-9]{1,22}(\\.[0-9])?",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{3})?(Z|[+-][0-9]{2}:[0-9]{2})",
        "https?://[a-z.]{1,8}/[a-z]{0,5}(\\?(expire|e|fid)=-?[0-9]{1,21})?",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        let key = prop_oneof![4 => prop::sample::select(keys).prop_map(String::from), 1 => any::<String>()];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..10).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Arbitrary JSON with an object of `keys` at the top, the shape decoders expect.
pub fn json_object(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(keys).prop_map(String::from), json(keys)), 0..10)
        .prop_map(|kv| Value::Object(kv.into_iter().collect()))
}
