//! Download-link choice and expiry (pikpak-protocol.md §10), and the time formats PikPak uses.
//!
//! Expiry: the CDN enforces the URL's `expire` query parameter (Unix seconds); the JSON
//! `link.expire` is 12 h earlier in real data (§10.2) and may be RFC 3339 or epoch seconds or
//! milliseconds (§7.3), so it is only a fallback. The core's link cache subtracts its margin
//! (`link_expiry_margin`, ≥ the 10 s rclone uses) from what we return.
//!
//! Transcode safety: a media link may serve a transcode whose size differs from the file's.
//! The read path checks every `Content-Range` total against the size shown, so such a link
//! would only ever produce EIO; worse, a transcode of the same size would be wrong bytes. So the
//! personal drive uses a media link only when the media says it is the original (`is_origin`)
//! and, when both URLs carry `fid`, the same `fid` as the octet-stream link (rclone's rule,
//! §10.1); otherwise `web_content_link`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::api::{File, LinkObj, Media};

/// Unix seconds of an RFC 3339 time (`2022-06-16T23:58:44.584+08:00`, `...Z`); `None` if not one.
pub fn rfc3339(s: &str) -> Option<i64> {
    crate::time::parse_datetime(s, None)
}

pub fn to_system_time(secs: i64) -> SystemTime {
    if secs >= 0 { UNIX_EPOCH + Duration::from_secs(secs as u64) } else { UNIX_EPOCH }
}

/// A query parameter of `url` (first occurrence, decoded).
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// When a link stops working: the URL's `expire` (or the 2022 format's `e`), else the JSON
/// `expire` field (RFC 3339, or epoch seconds / milliseconds as a number or a string).
pub fn link_expiry(url: &str, json_expire: &serde_json::Value) -> Option<SystemTime> {
    if let Some(secs) = query_param(url, "expire").or_else(|| query_param(url, "e")).and_then(|v| v.parse::<i64>().ok())
    {
        return Some(to_system_time(secs));
    }
    let epoch = |n: i64| to_system_time(if n > 100_000_000_000 { n / 1000 } else { n });
    match json_expire {
        serde_json::Value::Number(n) => n.as_i64().map(epoch),
        serde_json::Value::String(s) if !s.is_empty() => {
            rfc3339(s).map(to_system_time).or_else(|| s.trim().parse::<i64>().ok().map(epoch))
        }
        _ => None,
    }
}

/// The URL the personal driver downloads `file` from (§10.1 with the transcode rule above), and
/// the link object it came from.
pub fn choose_personal(file: &File, disable_media_link: bool) -> Option<(String, serde_json::Value)> {
    let octet = file.links.octet_stream.as_ref().filter(|l| !l.url.is_empty());
    let original = if !file.web_content_link.is_empty() {
        Some((file.web_content_link.clone(), octet.map(|l| l.expire.clone()).unwrap_or_default()))
    } else {
        octet.map(|l| (l.url.clone(), l.expire.clone()))
    };
    if !disable_media_link {
        if let Some(media) = file.medias.first().filter(|m| is_safe_origin(m, original.as_ref().map(|o| o.0.as_str())))
        {
            return Some((media.link.url.clone(), media.link.expire.clone()));
        }
    }
    original
}

/// A media link that serves the original bytes: flagged as the origin, and with the same `fid`
/// as the original link when both have one.
fn is_safe_origin(media: &Media, original: Option<&str>) -> bool {
    if media.link.url.is_empty() || !(media.is_origin || media.category == "category_origin") {
        return false;
    }
    match (original.and_then(|o| query_param(o, "fid")), query_param(&media.link.url, "fid")) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// The share driver's choice (§10.1, OpenList's order): `web_content_link`; else the first
/// transcode (`medias[1]`) when transcoding is preferred and present; else the original media
/// (`is_origin`, falling back to `medias[0]`).
pub fn choose_share(file: &File, use_transcoding: bool) -> Option<(String, serde_json::Value, bool)> {
    if !file.web_content_link.is_empty() {
        let expire = file.links.octet_stream.as_ref().map(|l| l.expire.clone()).unwrap_or_default();
        return Some((file.web_content_link.clone(), expire, false));
    }
    let usable: Vec<&Media> = file.medias.iter().filter(|m| !m.link.url.is_empty()).collect();
    if use_transcoding && file.medias.len() >= 2 && !file.medias[1].link.url.is_empty() {
        let m = &file.medias[1];
        return Some((m.link.url.clone(), m.link.expire.clone(), !m.is_origin));
    }
    let m = usable.iter().find(|m| m.is_origin).or(usable.first())?;
    Some((m.link.url.clone(), m.link.expire.clone(), false))
}

/// An empty link object's expire, for callers that have none.
pub fn no_expire() -> serde_json::Value {
    LinkObj::default().expire
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_examples_from_the_reference() {
        // §10.2: `2022-06-22T08:03:27+08:00` = Unix 1655856207.
        assert_eq!(rfc3339("2022-06-22T08:03:27+08:00"), Some(1_655_856_207));
        assert_eq!(rfc3339("2022-06-16T23:58:44.584+08:00"), Some(1_655_395_124));
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339("2024-02-29T12:00:00.5-01:30"), Some(1_709_213_400));
        assert_eq!(rfc3339(""), None);
        assert_eq!(rfc3339("2022-06-22"), None);
        assert_eq!(rfc3339("2022-13-22T08:03:27Z"), None);
    }

    #[test]
    fn expiry_prefers_the_url_parameter() {
        let url = "https://dl-a10b-0001.example/download/?fid=F1&expire=1767290000&g=0&sign=AB12";
        let json = serde_json::json!("2026-01-02T02:33:20.000+08:00");
        assert_eq!(link_expiry(url, &json), Some(to_system_time(1_767_290_000)));
        // §10.2: the 2022 format used `e=`.
        assert_eq!(link_expiry("https://x/?e=1655899407", &json), Some(to_system_time(1_655_899_407)));
        // Fallbacks: RFC 3339, epoch seconds, epoch milliseconds.
        assert_eq!(link_expiry("https://x/a", &json), Some(to_system_time(1_767_292_400)));
        assert_eq!(link_expiry("https://x/a", &serde_json::json!(1_700_000_000)), Some(to_system_time(1_700_000_000)));
        assert_eq!(
            link_expiry("https://x/a", &serde_json::json!("1700000000000")),
            Some(to_system_time(1_700_000_000))
        );
        assert_eq!(link_expiry("https://x/a", &serde_json::Value::Null), None);
    }

    fn file(json: serde_json::Value) -> File {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn personal_choice_never_takes_a_transcode() {
        let f = file(serde_json::json!({
            "web_content_link": "https://dl/a?fid=F1&expire=1",
            "medias": [{"is_origin": false, "category": "category_transcode", "link": {"url": "https://dl/t?fid=F2&expire=2"}}]
        }));
        assert_eq!(choose_personal(&f, false).unwrap().0, "https://dl/a?fid=F1&expire=1");
        let f = file(serde_json::json!({
            "web_content_link": "https://dl/a?fid=F1&expire=1",
            "medias": [{"is_origin": true, "link": {"url": "https://dl/m?fid=F1&expire=2"}}]
        }));
        assert_eq!(choose_personal(&f, false).unwrap().0, "https://dl/m?fid=F1&expire=2");
        assert_eq!(choose_personal(&f, true).unwrap().0, "https://dl/a?fid=F1&expire=1");
        // An "origin" whose fid differs is not trusted.
        let f = file(serde_json::json!({
            "web_content_link": "https://dl/a?fid=F1",
            "medias": [{"is_origin": true, "link": {"url": "https://dl/m?fid=F9"}}]
        }));
        assert_eq!(choose_personal(&f, false).unwrap().0, "https://dl/a?fid=F1");
        assert!(choose_personal(&file(serde_json::json!({})), false).is_none());
    }

    #[test]
    fn share_choice_follows_openlist_order() {
        let medias = serde_json::json!([
            {"is_origin": true, "link": {"url": "https://dl/o"}},
            {"is_origin": false, "link": {"url": "https://dl/t"}}
        ]);
        let f = file(serde_json::json!({"web_content_link": "https://dl/w", "medias": medias}));
        assert_eq!(choose_share(&f, true).unwrap().0, "https://dl/w");
        let f = file(serde_json::json!({"web_content_link": "", "medias": medias}));
        assert_eq!(choose_share(&f, true).unwrap(), ("https://dl/t".to_string(), serde_json::Value::Null, true));
        assert_eq!(choose_share(&f, false).unwrap().0, "https://dl/o");
        assert!(no_expire().is_null());
    }
}
