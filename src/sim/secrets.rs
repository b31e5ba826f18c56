//! Every secret the simulator issued or received: passwords and share codes it was sent,
//! access, refresh and captcha tokens it minted, link signatures (`auth_key`, `sim_sig`) and
//! the 123pan_link private key.
//!
//! Why: "no secret reaches a log" can only be tested against the complete list of secrets,
//! and only the far end knows them all (a client may derive some, e.g. `auth_key`). A test
//! runs panmount at trace level and greps its output for each value (`tests/e2e/secrets.rs`).

use std::collections::BTreeSet;
use std::sync::Mutex;

/// Past this many values new ones are not kept (a long benchmark mints many links).
const MAX_KEPT: usize = 100_000;

#[derive(Debug, Default)]
pub struct Secrets {
    values: Mutex<BTreeSet<String>>,
}

impl Secrets {
    /// Remember `value` (empty values are not secrets).
    pub fn record(&self, value: &str) {
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        if !value.is_empty() && values.len() < MAX_KEPT {
            values.insert(value.to_owned());
        }
    }

    /// Remember the value of the query parameter `name` of `url` (a link's signature).
    pub fn record_param(&self, url: &str, name: &str) {
        let query = url.split_once('?').map_or("", |(_, q)| q);
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if k == name {
                self.record(&v);
            }
        }
    }

    /// Every value recorded so far, sorted.
    pub fn list(&self) -> Vec<String> {
        self.values.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}
