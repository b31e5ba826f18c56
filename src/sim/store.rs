//! What the simulated object stores (PikPak's OSS, 123pan's presigned S3) share: a staging
//! directory for bodies and parts that are not files of the drive yet, the throughput throttle
//! of the `store_bytes_per_sec` knobs, hard-link-or-copy, and the `name(1)` rule both services
//! follow when a name is taken.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use futures_util::StreamExt;
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

/// A directory made on first use, next to the data dir (so a finished object is renamed into
/// place, not copied) or else in the temp dir; removed on drop.
pub(crate) struct Staging {
    beside: PathBuf,
    label: &'static str,
    dir: OnceLock<PathBuf>,
}

impl Staging {
    pub(crate) fn new(data_dir: &Path, label: &'static str) -> Self {
        Staging { beside: data_dir.to_path_buf(), label, dir: OnceLock::new() }
    }

    /// The path of `name` in the staging directory (the directory exists).
    pub(crate) fn file(&self, name: &str) -> std::io::Result<PathBuf> {
        let dir = self.dir.get_or_init(|| {
            let unique = format!("{}-{}-{:x}", self.label, std::process::id(), rand::random::<u64>());
            let beside = self.beside.parent().map(|p| p.join(format!(".{unique}")));
            beside.filter(|dir| std::fs::create_dir(dir).is_ok()).unwrap_or_else(|| std::env::temp_dir().join(unique))
        });
        std::fs::create_dir_all(dir)?;
        Ok(dir.join(name))
    }
}

impl Staging {
    /// The path of `name` in the staging directory, if that directory was made yet.
    pub(crate) fn existing(&self, name: &str) -> Option<PathBuf> {
        self.dir.get().map(|d| d.join(name))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Sleep until `size` bytes received since `started` fit `rate` bytes per second (None or 0:
/// no limit).
pub(crate) async fn throttle(rate: Option<u64>, started: Instant, size: u64) {
    if let Some(rate) = rate.filter(|r| *r > 0) {
        let due = started + Duration::from_secs_f64(size as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
    }
}

/// Stream `body` into the staging file `name`: (path, MD5, size). Throttled by `rate` (asked
/// at every chunk, so a knob change applies at once); every byte counts in `counted`.
pub(crate) async fn receive(
    staging: &Staging,
    body: Body,
    name: &str,
    rate: impl Fn() -> Option<u64>,
    counted: &AtomicU64,
) -> Result<(PathBuf, Vec<u8>, u64), String> {
    let path = staging.file(name).map_err(|e| format!("staging: {e}"))?;
    let mut file = tokio::fs::File::create(&path).await.map_err(|e| format!("staging: {e}"))?;
    let mut md5 = Md5::new();
    let mut size = 0u64;
    let started = Instant::now();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(format!("body: {e}"));
            }
        };
        size += chunk.len() as u64;
        counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        md5.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| format!("staging: {e}"))?;
        throttle(rate(), started, size).await;
    }
    file.flush().await.map_err(|e| format!("staging: {e}"))?;
    Ok((path, md5.finalize().to_vec(), size))
}

/// Read (and count in `counted`) at least `limit` bytes of `body` (at least one chunk), or
/// all of it.
pub(crate) async fn read_some(body: Body, limit: u64, counted: &AtomicU64) {
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    while let Some(Ok(chunk)) = stream.next().await {
        read += chunk.len() as u64;
        counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if read >= limit.max(1) {
            break;
        }
    }
}

/// A `Content-MD5` header, when sent, must be the body's (OSS and S3 answer `InvalidDigest`).
pub(crate) fn content_md5_matches(headers: &axum::http::HeaderMap, md5: &[u8]) -> bool {
    use base64::Engine;
    let Some(given) = headers.get("content-md5").and_then(|v| v.to_str().ok()) else { return true };
    given.trim() == base64::engine::general_purpose::STANDARD.encode(md5)
}

/// The text inside the first `<name>...</name>` of `text`.
pub(crate) fn xml_tag<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = text.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + text[start..].find(&format!("</{name}>"))?;
    Some(&text[start..end])
}

/// The parts a `<CompleteMultipartUpload>` body lists: (number, ETag without its quotes, which
/// may come escaped as `&quot;` or, from Go's encoder, `&#34;`), at least one, in ascending order; else the error code (`MalformedXML`, `InvalidPartOrder`).
pub(crate) fn completed_parts(text: &str) -> Result<Vec<(u32, String)>, &'static str> {
    let mut listed = Vec::new();
    for part in text.split("<Part>").skip(1) {
        let n = xml_tag(part, "PartNumber").and_then(|n| n.trim().parse::<u32>().ok());
        let etag = xml_tag(part, "ETag")
            .map(|e| e.replace("&quot;", "").replace("&#34;", "").trim().trim_matches('"').to_owned());
        listed.push((n.ok_or("MalformedXML")?, etag.ok_or("MalformedXML")?));
    }
    if listed.is_empty() {
        return Err("MalformedXML");
    }
    if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err("InvalidPartOrder");
    }
    Ok(listed)
}

/// A hard link when the file system allows, else a copy.
pub(crate) fn copy_bytes(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::hard_link(from, to).or_else(|_| std::fs::copy(from, to).map(|_| ()))
}

/// `name`, or the first of `name(1)`, `name(2)`, ... (before the extension: `a(1).txt`) that
/// `taken` says is free.
pub(crate) fn free_name(name: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(name) {
        return name.to_owned();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    };
    (1..).map(|i| format!("{stem}({i}){ext}")).find(|n| !taken(n)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_names_count_up_before_the_extension() {
        let taken = ["a.txt", "a(1).txt", "dir", ".hidden"];
        let is_taken = |n: &str| taken.contains(&n);
        assert_eq!(free_name("b.txt", is_taken), "b.txt");
        assert_eq!(free_name("a.txt", is_taken), "a(2).txt");
        assert_eq!(free_name("dir", is_taken), "dir(1)");
        assert_eq!(free_name(".hidden", is_taken), ".hidden(1)");
    }
}
