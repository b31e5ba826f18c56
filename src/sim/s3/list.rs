//! ListObjects, V1 (`marker`) and V2 (`list-type=2`, `continuation-token`, `start-after`):
//! keys under `prefix`, rolled up at the first `delimiter` after it into common prefixes, at
//! most `max-keys` (1000) entries a page, keys and prefixes counted together as S3 does.
//!
//! A page resumes after its last entry: V1's `NextMarker`, V2's continuation token (here the
//! same string; clients treat it as opaque). When that entry is a common prefix, every key
//! under it is skipped too.

use std::collections::BTreeMap;
use std::ops::Bound;

use axum::http::StatusCode;
use axum::response::Response;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{Object, S3Sim, escape, iso_time, xml, xml_error};

const MAX_KEYS: usize = 1000;

/// What `encoding-type=url` leaves as is in keys and prefixes (S3 keeps `/`).
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// One page of a listing.
pub(super) struct Page<'a> {
    pub keys: Vec<(&'a str, &'a Object)>,
    pub prefixes: Vec<String>,
    /// Where the next page starts, when this one is truncated.
    pub next: Option<String>,
}

/// The page of `objects` after `after` (see the module doc).
pub(super) fn page<'a>(
    objects: &'a BTreeMap<String, Object>,
    prefix: &str,
    delimiter: &str,
    after: Option<&str>,
    max: usize,
) -> Page<'a> {
    let rolled_after = after.filter(|m| !delimiter.is_empty() && m.starts_with(prefix) && m.ends_with(delimiter));
    let from = match after {
        Some(m) if m >= prefix => Bound::Excluded(m),
        _ => Bound::Included(prefix),
    };
    let mut page = Page { keys: Vec::new(), prefixes: Vec::new(), next: None };
    let mut last: Option<String> = None;
    for (key, object) in objects.range::<str, _>((from, Bound::Unbounded)) {
        if !key.starts_with(prefix) {
            break;
        }
        if rolled_after.is_some_and(|m| key.starts_with(m)) {
            continue;
        }
        let rolled = (!delimiter.is_empty())
            .then(|| key[prefix.len()..].find(delimiter).map(|i| &key[..prefix.len() + i + delimiter.len()]))
            .flatten();
        if rolled.is_some() && rolled == page.prefixes.last().map(String::as_str) {
            continue;
        }
        if page.keys.len() + page.prefixes.len() == max {
            page.next = last;
            break;
        }
        match rolled {
            Some(p) => {
                page.prefixes.push(p.to_owned());
                last = Some(p.to_owned());
            }
            None => {
                page.keys.push((key, object));
                last = Some(key.clone());
            }
        }
    }
    page
}

/// `GET /s3/<bucket>?...`: the listing as XML, V2 with `list-type=2`, else V1.
pub(super) fn objects(st: &S3Sim, bucket: &str, query: &[(String, String)]) -> Response {
    let q = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let v2 = q("list-type") == Some("2");
    let prefix = q("prefix").unwrap_or("");
    let delimiter = q("delimiter").unwrap_or("");
    let max = q("max-keys").and_then(|m| m.parse().ok()).unwrap_or(MAX_KEYS).clamp(1, MAX_KEYS);
    let after = if v2 { q("continuation-token").or(q("start-after")) } else { q("marker") };
    let encode = q("encoding-type") == Some("url");
    let text = |s: &str| if encode { utf8_percent_encode(s, KEY_ENCODE).to_string() } else { escape(s) };
    let inner = st.lock();
    let Some(objects) = inner.buckets.get(bucket) else {
        return xml_error(StatusCode::NOT_FOUND, "NoSuchBucket", bucket);
    };
    let page = page(objects, prefix, delimiter, after.filter(|a| !a.is_empty()), max);
    let mut out = format!(
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{}</Name><Prefix>{}</Prefix><MaxKeys>{max}</MaxKeys><IsTruncated>{}</IsTruncated>",
        escape(bucket),
        text(prefix),
        page.next.is_some()
    );
    if !delimiter.is_empty() {
        out += &format!("<Delimiter>{}</Delimiter>", text(delimiter));
    }
    if encode {
        out += "<EncodingType>url</EncodingType>";
    }
    match (&page.next, v2) {
        (Some(next), true) => out += &format!("<NextContinuationToken>{}</NextContinuationToken>", escape(next)),
        (Some(next), false) => out += &format!("<NextMarker>{}</NextMarker>", text(next)),
        (None, _) => {}
    }
    if v2 {
        out += &format!("<KeyCount>{}</KeyCount>", page.keys.len() + page.prefixes.len());
    } else {
        out += &format!("<Marker>{}</Marker>", text(after.unwrap_or("")));
    }
    for (key, o) in &page.keys {
        out += &format!(
            "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>\"{}\"</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            text(key),
            iso_time(o.modified),
            o.etag,
            o.size
        );
    }
    for p in &page.prefixes {
        out += &format!("<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>", text(p));
    }
    out += "</ListBucketResult>";
    xml(StatusCode::OK, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(keys: &[&str]) -> BTreeMap<String, Object> {
        let object = || Object { segments: vec![], size: 0, etag: String::new(), modified: 0, meta: vec![] };
        keys.iter().map(|k| (k.to_string(), object())).collect()
    }

    /// Every entry of every page, walking the pages as a client does.
    fn walk(objects: &BTreeMap<String, Object>, prefix: &str, delimiter: &str, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let p = page(objects, prefix, delimiter, after.as_deref(), max);
            out.extend(p.keys.iter().map(|(k, _)| k.to_string()));
            out.extend(p.prefixes.iter().map(|p| format!("{p}*")));
            match p.next {
                Some(next) => after = Some(next),
                None => return out,
            }
        }
    }

    #[test]
    fn pages_roll_prefixes_up_and_resume_past_them() {
        let t = tree(&["a/1", "a/2", "a/b/3", "b", "c/d/e", "c/x", "d"]);
        let all = ["a/*", "b", "c/*", "d"];
        for max in [1, 2, 3, 1000] {
            let mut got = walk(&t, "", "/", max);
            got.sort();
            assert_eq!(got, all, "max {max}");
        }
        assert_eq!(walk(&t, "a/", "/", 1), ["a/1", "a/2", "a/b/*"]);
        assert_eq!(walk(&t, "", "", 2), ["a/1", "a/2", "a/b/3", "b", "c/d/e", "c/x", "d"]);
        assert_eq!(walk(&t, "c", "/", 1000), ["c/*"]);
        assert!(walk(&t, "z", "/", 1000).is_empty());
    }
}
