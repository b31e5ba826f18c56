//! The storage export as OpenList and alist write it (`internal/model/storage.go`): only the
//! fields the import reads, and the three shapes users have on disk.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// One storage of the export. OpenList has more fields (`order`, `cache_expiration`,
/// `webdav_policy`, `down_proxy_url`, ...); they configure OpenList's own server and have no
/// counterpart in a mount, so they are not read.
#[derive(Debug, Deserialize)]
pub struct Storage {
    pub mount_path: String,
    pub driver: String,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub remark: Option<String>,
    /// The driver's options. OpenList stores them as a JSON document inside a string; hand-made
    /// exports often have the object itself. Both are accepted.
    #[serde(default, deserialize_with = "addition")]
    pub addition: Map<String, Value>,
}

fn addition<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map),
        Value::String(text) if text.trim().is_empty() => Ok(Map::new()),
        Value::String(text) => match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(D::Error::custom("`addition` holds JSON that is not an object")),
            Err(e) => Err(D::Error::custom(format!("`addition` is not valid JSON: {e}"))),
        },
        _ => Err(D::Error::custom("`addition` is neither a JSON object nor a string holding one")),
    }
}

const SHAPES: &str = "expected the admin API's answer ({\"code\":200,\"data\":{\"content\":[...]}}), \
    an array of storages, or an object with a \"storages\" array (a backup)";

/// The storages of an export, each still unparsed so that one bad storage does not stop the
/// others. Accepts `GET /api/admin/storage/list`'s answer, a bare array (alist_batch), an object
/// with `storages` (OpenList's backup file), and `storage/get`'s answer (one storage as `data`).
pub fn storages(doc: Value) -> Result<Vec<Value>, String> {
    let mut obj = match doc {
        Value::Array(items) => return Ok(items),
        Value::Object(obj) => obj,
        other => return Err(format!("found {}; {SHAPES}", kind(&other))),
    };
    // The web UI's backup encrypts every field when given a password (`encrypted` then holds
    // a check value); nothing in it can be read without that password.
    if obj.get("encrypted").and_then(Value::as_str).is_some_and(|e| !e.is_empty()) {
        return Err("this backup is encrypted with a password; make a backup with an empty password, \
                    or save the admin API's storage list instead"
            .into());
    }
    if let Some(storages) = obj.remove("storages") {
        return array(storages, "\"storages\"");
    }
    if obj.contains_key("mount_path") {
        return Ok(vec![Value::Object(obj)]);
    }
    let Some(data) = obj.remove("data") else {
        return Err(format!("found an object without \"data\" or \"storages\"; {SHAPES}"));
    };
    if let Some(code) = obj.get("code").and_then(Value::as_i64).filter(|&c| c != 200) {
        let message = obj.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(format!("the API answered with an error (code {code}): {message}"));
    }
    match data {
        Value::Object(mut data) if data.contains_key("content") => {
            array(data.remove("content").unwrap_or_default(), "\"data.content\"")
        }
        Value::Object(data) if data.contains_key("mount_path") => Ok(vec![Value::Object(data)]),
        other => array(other, "\"data\""),
    }
}

fn array(value: Value, what: &str) -> Result<Vec<Value>, String> {
    match value {
        Value::Array(items) => Ok(items),
        // OpenList answers `"content": null` when there are no storages.
        Value::Null => Ok(Vec::new()),
        other => Err(format!("{what} is {}, not an array of storages", kind(&other))),
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
