//! The request handlers: one entry point that reads bucket, key and sub-resource from the path
//! and query, and a function per S3 operation.

use std::collections::VecDeque;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{
    Multipart, Object, PREFIX, S3Counters, S3Sim, Segment, escape, hex, iso_time, list, remove_segments, xml, xml_error,
};
use crate::sim::range::{RangeSpec, http_date, parse_range};
use crate::sim::store;

/// Bytes per chunk of a GET body.
const CHUNK: u64 = 256 << 10;

pub(super) async fn handle(State(st): State<Arc<S3Sim>>, req: Request) -> Response {
    S3Counters::bump(&st.counters.requests);
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().strip_prefix(PREFIX).unwrap_or("");
    let path = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let (bucket, key) = (decode(bucket), decode(key));
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let q = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let headers = &parts.headers;
    let method = &parts.method;
    if headers.get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes().starts_with(b"aws-chunked")) {
        return xml_error(StatusCode::NOT_IMPLEMENTED, "NotImplemented", "aws-chunked bodies are not decoded here");
    }
    if bucket.is_empty() {
        return match *method {
            Method::GET => list_buckets(&st),
            _ => xml_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "ListBuckets only"),
        };
    }
    if key.is_empty() {
        return match *method {
            Method::HEAD if st.lock().buckets.contains_key(&bucket) => empty(StatusCode::OK),
            Method::HEAD => empty(StatusCode::NOT_FOUND),
            Method::PUT => {
                st.lock().buckets.entry(bucket).or_default();
                empty(StatusCode::OK)
            }
            Method::DELETE => delete_bucket(&st, &bucket),
            Method::GET if q("uploads").is_none() => {
                S3Counters::bump(&st.counters.lists);
                list::objects(&st, &bucket, &query)
            }
            _ => xml_error(StatusCode::NOT_IMPLEMENTED, "NotImplemented", "not simulated"),
        };
    }
    match (method.clone(), q("uploadId"), q("partNumber")) {
        (Method::PUT, Some(upload_id), Some(n)) => {
            S3Counters::bump(&st.counters.part_puts);
            match n.parse::<u32>() {
                Ok(n) if (1..=10_000).contains(&n) => put_part(&st, &bucket, &key, upload_id, n, headers, body).await,
                _ => xml_error(StatusCode::BAD_REQUEST, "InvalidArgument", "partNumber"),
            }
        }
        (Method::PUT, None, None) if headers.contains_key("x-amz-copy-source") => {
            S3Counters::bump(&st.counters.copies);
            copy(&st, &bucket, &key, headers)
        }
        (Method::PUT, None, None) => {
            S3Counters::bump(&st.counters.object_puts);
            put_object(&st, &bucket, &key, headers, body).await
        }
        (Method::POST, None, None) if q("uploads").is_some() => initiate(&st, &bucket, &key, headers),
        (Method::POST, Some(upload_id), None) => {
            S3Counters::bump(&st.counters.completes);
            complete(&st, &bucket, &key, upload_id, body).await
        }
        (Method::DELETE, Some(upload_id), None) => abort(&st, upload_id),
        (Method::DELETE, None, None) => {
            S3Counters::bump(&st.counters.deletes);
            let removed = st.lock().buckets.get_mut(&bucket).and_then(|b| b.remove(&key));
            remove_segments(removed.iter().flat_map(|o| &o.segments));
            empty(StatusCode::NO_CONTENT)
        }
        (Method::GET | Method::HEAD, None, None) => {
            get_object(&st, &bucket, &key, headers, *method == Method::HEAD).await
        }
        _ => xml_error(StatusCode::NOT_IMPLEMENTED, "NotImplemented", "not simulated"),
    }
}

fn list_buckets(st: &S3Sim) -> Response {
    let items: String = st
        .lock()
        .buckets
        .keys()
        .map(|b| format!("<Bucket><Name>{}</Name><CreationDate>{}</CreationDate></Bucket>", escape(b), iso_time(0)))
        .collect();
    xml(
        StatusCode::OK,
        format!(
            "<ListAllMyBucketsResult><Owner><ID>sim</ID></Owner><Buckets>{items}</Buckets></ListAllMyBucketsResult>"
        ),
    )
}

fn delete_bucket(st: &S3Sim, bucket: &str) -> Response {
    let mut inner = st.lock();
    match inner.buckets.get(bucket) {
        None => xml_error(StatusCode::NOT_FOUND, "NoSuchBucket", bucket),
        Some(objects) if !objects.is_empty() => xml_error(StatusCode::CONFLICT, "BucketNotEmpty", bucket),
        Some(_) => {
            inner.buckets.remove(bucket);
            empty(StatusCode::NO_CONTENT)
        }
    }
}

/// `Content-Type` and `x-amz-meta-*`, kept with the object and sent back on HEAD and GET.
fn metadata(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str() == "content-type" || name.as_str().starts_with("x-amz-meta-"))
        .filter_map(|(name, v)| Some((name.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

fn new_name() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Receive a PUT body into a new segment, throttled and counted: (segment, MD5), or the
/// error answer (a body cut short, a `Content-MD5` that does not match).
async fn receive(st: &S3Sim, headers: &HeaderMap, body: Body) -> Result<(Segment, Vec<u8>), Response> {
    let rate = || st.knobs().store_bytes_per_sec;
    let (path, md5, size) = store::receive(&st.staging, body, &new_name(), rate, &st.counters.body_bytes)
        .await
        .map_err(|e| xml_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e))?;
    if !store::content_md5_matches(headers, &md5) {
        let _ = std::fs::remove_file(&path);
        return Err(xml_error(StatusCode::BAD_REQUEST, "BadDigest", "Content-MD5"));
    }
    Ok((Segment { path, size }, md5))
}

/// Put `object` at `bucket`/`key` (replacing what was there), or give its segments back.
fn store_object(st: &S3Sim, bucket: &str, key: &str, object: Object) -> Result<(), Response> {
    let mut inner = st.lock();
    let Some(objects) = inner.buckets.get_mut(bucket) else {
        remove_segments(&object.segments);
        return Err(xml_error(StatusCode::NOT_FOUND, "NoSuchBucket", bucket));
    };
    if let Some(old) = objects.insert(key.to_owned(), object) {
        remove_segments(&old.segments);
    }
    Ok(())
}

fn with_etag(status: StatusCode, etag: &str) -> Response {
    let mut res = empty(status);
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

async fn put_object(st: &S3Sim, bucket: &str, key: &str, headers: &HeaderMap, body: Body) -> Response {
    let (segment, md5) = match receive(st, headers, body).await {
        Ok(r) => r,
        Err(res) => return res,
    };
    let etag = hex(&md5);
    let object = Object {
        size: segment.size,
        segments: vec![segment],
        etag: etag.clone(),
        modified: now(),
        meta: metadata(headers),
    };
    match store_object(st, bucket, key, object) {
        Ok(()) => with_etag(StatusCode::OK, &etag),
        Err(res) => res,
    }
}

/// CopyObject: the source's segments hard-linked (or copied) under new names; metadata from
/// the request with `x-amz-metadata-directive: REPLACE`, else the source's.
fn copy(st: &S3Sim, bucket: &str, key: &str, headers: &HeaderMap) -> Response {
    let source = headers.get("x-amz-copy-source").and_then(|v| v.to_str().ok()).unwrap_or("");
    let source = source.split('?').next().unwrap_or("");
    let source = percent_encoding::percent_decode_str(source.trim_start_matches('/')).decode_utf8_lossy();
    let Some((src_bucket, src_key)) = source.split_once('/') else {
        return xml_error(StatusCode::BAD_REQUEST, "InvalidArgument", "x-amz-copy-source");
    };
    let (segments, size, etag, meta) = {
        let inner = st.lock();
        let Some(o) = inner.buckets.get(src_bucket).and_then(|b| b.get(src_key)) else {
            return xml_error(StatusCode::NOT_FOUND, "NoSuchKey", src_key);
        };
        (o.segments.clone(), o.size, o.etag.clone(), o.meta.clone())
    };
    let mut copied = Vec::new();
    for s in &segments {
        let linked = st.staging.file(&new_name()).and_then(|to| store::copy_bytes(&s.path, &to).map(|()| to));
        match linked {
            Ok(path) => copied.push(Segment { path, size: s.size }),
            Err(e) => {
                remove_segments(&copied);
                return xml_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e.to_string());
            }
        }
    }
    let replace =
        headers.get("x-amz-metadata-directive").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"REPLACE"));
    let meta = if replace { metadata(headers) } else { meta };
    let modified = now();
    if let Err(res) =
        store_object(st, bucket, key, Object { segments: copied, size, etag: etag.clone(), modified, meta })
    {
        return res;
    }
    xml(
        StatusCode::OK,
        format!(
            "<CopyObjectResult><LastModified>{}</LastModified><ETag>\"{etag}\"</ETag></CopyObjectResult>",
            iso_time(modified)
        ),
    )
}

async fn get_object(st: &S3Sim, bucket: &str, key: &str, headers: &HeaderMap, head: bool) -> Response {
    let found = st
        .lock()
        .buckets
        .get(bucket)
        .and_then(|b| b.get(key))
        .map(|o| (o.segments.clone(), o.size, o.etag.clone(), o.modified, o.meta.clone()));
    let Some((segments, size, etag, modified, meta)) = found else {
        return if head { empty(StatusCode::NOT_FOUND) } else { xml_error(StatusCode::NOT_FOUND, "NoSuchKey", key) };
    };
    let range = parse_range(headers.get(header::RANGE).and_then(|v| v.to_str().ok()), size);
    let mut res = empty(StatusCode::OK);
    let (start, len) = match range {
        RangeSpec::Full => (0, size),
        RangeSpec::Partial { start, end } => {
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            let value = format!("bytes {start}-{end}/{size}");
            res.headers_mut().insert(header::CONTENT_RANGE, HeaderValue::from_str(&value).expect("ascii"));
            (start, end - start + 1)
        }
        RangeSpec::Unsatisfiable => return xml_error(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange", key),
    };
    let h = res.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::LAST_MODIFIED, HeaderValue::from_str(&http_date(modified)).expect("ascii"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        h.insert(header::ETAG, v);
    }
    for (name, value) in meta {
        if let (Ok(n), Ok(v)) = (header::HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            h.insert(n, v);
        }
    }
    if !head && len > 0 {
        *res.body_mut() = read_range(&segments, start, len);
    }
    res
}

/// The bytes `start..start + len` of an object made of `segments`, read file after file.
fn read_range(segments: &[Segment], start: u64, len: u64) -> Body {
    let mut pieces = VecDeque::new();
    let (mut offset, mut left) = (0u64, len);
    for s in segments {
        let end = offset + s.size;
        if left > 0 && start < end && start + len > offset {
            let from = start.saturating_sub(offset);
            let n = (s.size - from).min(left);
            pieces.push_back((s.path.clone(), from, n));
            left -= n;
        }
        offset = end;
    }
    let reader = SegmentReader { pieces, file: None };
    Body::from_stream(futures_util::stream::unfold(Some(reader), |r| async move {
        let mut r = r?;
        match r.next().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(r))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    }))
}

struct SegmentReader {
    /// (file, offset in it, bytes to read) still to open.
    pieces: VecDeque<(PathBuf, u64, u64)>,
    /// The file being read and the bytes left to read from it.
    file: Option<(tokio::fs::File, u64)>,
}

impl SegmentReader {
    async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            if let Some((file, left)) = &mut self.file {
                if *left > 0 {
                    let n = CHUNK.min(*left);
                    let mut buf = vec![0u8; n as usize];
                    file.read_exact(&mut buf).await?;
                    *left -= n;
                    return Ok(Some(Bytes::from(buf)));
                }
            }
            let Some((path, from, n)) = self.pieces.pop_front() else { return Ok(None) };
            let mut file = tokio::fs::File::open(path).await?;
            file.seek(SeekFrom::Start(from)).await?;
            self.file = Some((file, n));
        }
    }
}

fn initiate(st: &S3Sim, bucket: &str, key: &str, headers: &HeaderMap) -> Response {
    let upload_id = format!("{:032X}", rand::random::<u128>());
    let mut inner = st.lock();
    if !inner.buckets.contains_key(bucket) {
        return xml_error(StatusCode::NOT_FOUND, "NoSuchBucket", bucket);
    }
    let upload =
        Multipart { bucket: bucket.into(), key: key.into(), meta: metadata(headers), parts: Default::default() };
    inner.uploads.insert(upload_id.clone(), upload);
    xml(
        StatusCode::OK,
        format!(
            "<InitiateMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>",
            escape(bucket),
            escape(key)
        ),
    )
}

fn upload_matches(st: &S3Sim, upload_id: &str, bucket: &str, key: &str) -> bool {
    st.lock().uploads.get(upload_id).is_some_and(|u| u.bucket == bucket && u.key == key)
}

async fn put_part(
    st: &S3Sim,
    bucket: &str,
    key: &str,
    upload_id: &str,
    n: u32,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    if !upload_matches(st, upload_id, bucket, key) {
        return xml_error(StatusCode::NOT_FOUND, "NoSuchUpload", upload_id);
    }
    let (segment, md5) = match receive(st, headers, body).await {
        Ok(r) => r,
        Err(res) => return res,
    };
    let etag = hex(&md5);
    let mut inner = st.lock();
    let Some(upload) = inner.uploads.get_mut(upload_id) else {
        remove_segments([&segment]);
        return xml_error(StatusCode::NOT_FOUND, "NoSuchUpload", upload_id);
    };
    if let Some((old, _)) = upload.parts.insert(n, (segment, md5)) {
        remove_segments([&old]);
    }
    with_etag(StatusCode::OK, &etag)
}

/// `<CompleteMultipartUpload>`: every listed part present with its ETag, in ascending order.
/// The object is the listed parts' segments in that order; parts not listed are deleted.
async fn complete(st: &S3Sim, bucket: &str, key: &str, upload_id: &str, body: Body) -> Response {
    let Ok(text) = axum::body::to_bytes(body, 4 << 20).await else {
        return xml_error(StatusCode::BAD_REQUEST, "MalformedXML", "body");
    };
    let text = String::from_utf8_lossy(&text);
    let listed = match store::completed_parts(&text) {
        Ok(listed) => listed,
        Err(code) => return xml_error(StatusCode::BAD_REQUEST, code, "CompleteMultipartUpload"),
    };
    let mut upload = {
        let mut inner = st.lock();
        match inner.uploads.remove(upload_id) {
            Some(u) if u.bucket == bucket && u.key == key => u,
            Some(u) => {
                inner.uploads.insert(upload_id.to_owned(), u);
                return xml_error(StatusCode::NOT_FOUND, "NoSuchUpload", upload_id);
            }
            None => return xml_error(StatusCode::NOT_FOUND, "NoSuchUpload", upload_id),
        }
    };
    if listed.iter().any(|(n, etag)| upload.parts.get(n).is_none_or(|(_, md5)| !hex(md5).eq_ignore_ascii_case(etag))) {
        st.lock().uploads.insert(upload_id.to_owned(), upload);
        return xml_error(StatusCode::BAD_REQUEST, "InvalidPart", "a listed part is missing or has another ETag");
    }
    let mut digests = Md5::new();
    let mut segments = Vec::new();
    for (n, _) in &listed {
        let (segment, md5) = upload.parts.remove(n).expect("checked");
        digests.update(&md5);
        segments.push(segment);
    }
    remove_segments(upload.parts.values().map(|(s, _)| s));
    let etag = format!("{}-{}", hex(&digests.finalize()), listed.len());
    let size = segments.iter().map(|s| s.size).sum();
    let object = Object { segments, size, etag: etag.clone(), modified: now(), meta: upload.meta };
    if let Err(res) = store_object(st, bucket, key, object) {
        return res;
    }
    xml(
        StatusCode::OK,
        format!(
            "<CompleteMultipartUploadResult><Location>{PREFIX}/{b}/{k}</Location><Bucket>{b}</Bucket><Key>{k}</Key><ETag>\"{etag}\"</ETag></CompleteMultipartUploadResult>",
            b = escape(bucket),
            k = escape(key)
        ),
    )
}

fn abort(st: &S3Sim, upload_id: &str) -> Response {
    let Some(upload) = st.lock().uploads.remove(upload_id) else {
        return xml_error(StatusCode::NOT_FOUND, "NoSuchUpload", upload_id);
    };
    remove_segments(upload.parts.values().map(|(s, _)| s));
    empty(StatusCode::NO_CONTENT)
}

fn empty(status: StatusCode) -> Response {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = status;
    res
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
