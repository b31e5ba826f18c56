//! 123pan direct-link URL signing ("URL鉴权", Alibaba-CDN type A), pan123-protocol.md §4.3.
//!
//! `auth_key = ts-rand-uid-md5(path-ts-rand-uid-key)`, where `ts` is the *expiry* time and
//! `path` is the percent-*decoded* URL path (as OpenList, via Go's `url.URL.Path`, and the
//! official JS sample do; hashing the encoded path gives a different, rejected signature for
//! any non-ASCII name).
//!
//! The signed URL is rebuilt the way OpenList's Go code rebuilds it (`url.Parse`, `Query().Add`,
//! `Encode()`, `String()`), so panmount sends byte-for-byte what OpenList sends and a URL that
//! works there works here:
//! - the query is re-serialised **sorted by key** (stable, so equal keys keep their order), with
//!   keys and values form-encoded (`QueryEscape`: space → `+`, everything but `A-Za-z0-9-_.~`
//!   → `%XX`); pairs Go cannot decode are dropped, as Go drops them; an existing `auth_key` is
//!   kept and a second one added;
//! - the path keeps its original encoding when that encoding is valid, otherwise the decoded
//!   path is re-encoded (`EscapedPath`), e.g. a raw space becomes `%20`;
//! - scheme is lower-cased; authority and fragment are kept as written.
//!
//! An empty private key means "not signed": the URL comes back unchanged, byte for byte, without
//! even being parsed.

use md5::{Digest, Md5};

/// Why a URL could not be signed (it is not a URL Go's `url.Parse` would accept).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot sign the URL: {0}")]
pub struct SignError(pub String);

/// Sign `url` so that it is valid until `expires_at_unix` (Unix seconds); `rand` is any
/// non-negative number (OpenList uses Go's `rand.Int()`).
pub fn sign(url: &str, private_key: &str, uid: u64, expires_at_unix: u64, rand: u64) -> Result<String, SignError> {
    if private_key.is_empty() {
        return Ok(url.to_string());
    }
    let u = SplitUrl::parse(url)?;
    let path = unescape(u.path, false).ok_or_else(|| SignError("invalid percent-escape in the path".into()))?;

    let mut sstring = path.clone();
    sstring.extend_from_slice(format!("-{expires_at_unix}-{rand}-{uid}-{private_key}").as_bytes());
    let md5 = hex(&Md5::digest(&sstring));
    let auth_key = format!("{expires_at_unix}-{rand}-{uid}-{md5}");

    let mut pairs = parse_query(u.query.unwrap_or(""));
    pairs.push((b"auth_key".to_vec(), auth_key.into_bytes()));
    pairs.sort_by(|a, b| a.0.cmp(&b.0)); // stable: equal keys keep their order, as in Go
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k, Mode::Query), escape(v, Mode::Query)))
        .collect::<Vec<_>>()
        .join("&");

    let path_out = if valid_encoded_path(u.path) { u.path.to_string() } else { escape(&path, Mode::Path) };
    let mut out = format!("{}://{}{}?{}", u.scheme.to_ascii_lowercase(), u.authority, path_out, query);
    if let Some(fragment) = u.fragment {
        out.push('#');
        out.push_str(fragment);
    }
    Ok(out)
}

/// An absolute `scheme://authority/path?query#fragment`, split as Go's `url.Parse` splits it.
struct SplitUrl<'a> {
    scheme: &'a str,
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

impl<'a> SplitUrl<'a> {
    fn parse(url: &'a str) -> Result<Self, SignError> {
        if url.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(SignError("invalid control character in the URL".into()));
        }
        let (rest, fragment) = match url.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (url, None),
        };
        let (scheme, rest) = rest
            .split_once(':')
            .filter(|(s, _)| {
                s.starts_with(|c: char| c.is_ascii_alphabetic())
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            })
            .ok_or_else(|| SignError("the URL has no scheme".into()))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let rest =
            rest.strip_prefix("//").ok_or_else(|| SignError("the URL is not of the form scheme://host/path".into()))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() {
            return Err(SignError("the URL has no host".into()));
        }
        Ok(SplitUrl { scheme, authority, path, query, fragment })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Go `encodePath`.
    Path,
    /// Go `encodeQueryComponent`.
    Query,
}

/// Go's `shouldEscape` for the two modes used here.
fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
        return false;
    }
    if matches!(c, b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@') {
        return match mode {
            Mode::Path => c == b'?',
            Mode::Query => true,
        };
    }
    true
}

/// Go's `escape`: `%XX` with upper-case hex; in a query a space becomes `+`.
fn escape(s: &[u8], mode: Mode) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s {
        if c == b' ' && mode == Mode::Query {
            out.push('+');
        } else if should_escape(c, mode) {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(c >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(c & 15)]));
        } else {
            out.push(char::from(c));
        }
    }
    out
}

/// Go's `validEncoded(s, encodePath)`: may the raw path be sent as written?
fn valid_encoded_path(s: &str) -> bool {
    s.bytes().all(|c| {
        matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'['
                | b']'
                | b'%'
        ) || !should_escape(c, Mode::Path)
    })
}

/// Go's `unescape`: `None` on an invalid `%` escape; in a query `+` is a space.
fn unescape(s: &str, query: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let hi = b.get(i + 1).copied().and_then(hex)?;
                let lo = b.get(i + 2).copied().and_then(hex)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Go's `parseQuery` as `URL.Query()` uses it: bad pairs are skipped, not fatal.
fn parse_query(q: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs = Vec::new();
    for part in q.split('&') {
        if part.is_empty() || part.contains(';') {
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        if let (Some(k), Some(v)) = (unescape(k, true), unescape(v, true)) {
            pairs.push((k, v));
        }
    }
    pairs
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md5_of(s: &str) -> String {
        hex(&Md5::digest(s.as_bytes()))
    }

    #[test]
    fn worked_example_1_official() {
        assert_eq!(md5_of("/13/files/1.txt-1689220731-123-13-289ds32418bxdba"), "3bdacc0e031fd67fe829152f37c8fbad");
        let signed = sign("http://vip.123pan.cn/13/files/1.txt", "289ds32418bxdba", 13, 1689220731, 123).unwrap();
        assert_eq!(
            signed,
            "http://vip.123pan.cn/13/files/1.txt?auth_key=1689220731-123-13-3bdacc0e031fd67fe829152f37c8fbad"
        );
    }

    #[test]
    fn worked_example_2_non_ascii_path_and_query() {
        let url = "https://vip.123pan.cn/1814435971/movies/%E6%B5%8B%E8%AF%95%20video.mp4?foo=bar";
        // The hash is over the decoded path; the encoded one gives a different value.
        assert_eq!(
            md5_of("/1814435971/movies/测试 video.mp4-1750001800-5577006791947779410-1814435971-s3cr3tKey"),
            "f73efa6cf51da5d9494afb54119823ef"
        );
        assert_eq!(
            md5_of(
                "/1814435971/movies/%E6%B5%8B%E8%AF%95%20video.mp4-1750001800-5577006791947779410-1814435971-s3cr3tKey"
            ),
            "08542bf1cfba468bcbca3e500531f0b8"
        );
        let now = 1750000000;
        let signed = sign(url, "s3cr3tKey", 1814435971, now + 30 * 60, 5577006791947779410).unwrap();
        assert_eq!(
            signed,
            "https://vip.123pan.cn/1814435971/movies/%E6%B5%8B%E8%AF%95%20video.mp4?auth_key=1750001800-5577006791947779410-1814435971-f73efa6cf51da5d9494afb54119823ef&foo=bar"
        );
    }

    #[test]
    fn worked_example_3_ascii_path() {
        let signed = sign(
            "https://vip.123pan.cn/1814435971/docs/a.pdf",
            "s3cr3tKey",
            1814435971,
            1750001800,
            8674665223082153551,
        )
        .unwrap();
        assert_eq!(
            signed,
            "https://vip.123pan.cn/1814435971/docs/a.pdf?auth_key=1750001800-8674665223082153551-1814435971-d8a819f2a81462b935d18fb90cf2478e"
        );
    }

    #[test]
    fn empty_key_returns_the_url_unchanged() {
        for url in ["https://h/a b?%zz#x", "not a url", "HTTP://H/x?b=1&a=2"] {
            assert_eq!(sign(url, "", 1, 2, 3).unwrap(), url);
        }
    }

    #[test]
    fn query_is_sorted_and_form_encoded_like_go() {
        let signed = sign("HTTPS://h/p?z=1&b=a+b%2Fc&b=2&x*=~&auth_key=old&&;bad=1&e", "k", 1, 2, 3).unwrap();
        let (base, query) = signed.split_once('?').unwrap();
        assert_eq!(base, "https://h/p");
        let md5 = md5_of("/p-2-3-1-k");
        assert_eq!(query, format!("auth_key=old&auth_key=2-3-1-{md5}&b=a+b%2Fc&b=2&e=&x%2A=~&z=1"));
    }

    #[test]
    fn path_encoding_is_kept_when_valid_and_fixed_when_not() {
        // Valid encoding (even unusual, like `%41` for `A`, or raw `!*'()`) is kept.
        let s = sign("https://h/%41/!*'()/x", "k", 0, 1, 1).unwrap();
        assert!(s.starts_with("https://h/%41/!*'()/x?auth_key=1-1-0-"), "{s}");
        assert!(s.ends_with(&md5_of("/A/!*'()/x-1-1-0-k")), "{s}");
        // Raw spaces and non-ASCII are encoded (upper-case hex); the hash uses the real path.
        let s = sign("https://h/a b/测", "k", 0, 1, 1).unwrap();
        assert!(s.starts_with("https://h/a%20b/%E6%B5%8B?auth_key="), "{s}");
        assert!(s.ends_with(&md5_of("/a b/测-1-1-0-k")), "{s}");
        // `+` in a path is a plus, not a space.
        let s = sign("https://h/a+b", "k", 0, 1, 1).unwrap();
        assert!(s.ends_with(&md5_of("/a+b-1-1-0-k")), "{s}");
        // Fragment and port are kept; an empty path hashes as "".
        let s = sign("https://h:8443?x=1#frag", "k", 0, 1, 1).unwrap();
        assert_eq!(s, format!("https://h:8443?auth_key=1-1-0-{}&x=1#frag", md5_of("-1-1-0-k")));
    }

    #[test]
    fn invalid_urls_are_errors() {
        assert!(sign("https://h/%zz", "k", 0, 1, 1).is_err());
        assert!(sign("no-scheme/x", "k", 0, 1, 1).is_err());
        assert!(sign("https:/h/x", "k", 0, 1, 1).is_err());
        assert!(sign("https:///x", "k", 0, 1, 1).is_err());
        assert!(sign("https://h/x\ny", "k", 0, 1, 1).is_err());
        let e = sign("https://h/%zz", "k", 0, 1, 1).unwrap_err();
        assert_eq!(e.to_string(), "cannot sign the URL: invalid percent-escape in the path");
    }
}
