//! Sample data for the simulator, and the 123pan_link tree text that points at it.
//!
//! `generate` writes the same bytes and mtimes on every run (content from a SplitMix64 stream
//! seeded by the file's path), so tests can compare what they read through the mount with the
//! files on disk and a benchmark can be repeated. The tree is small (about 10 MiB) but exercises
//! what clients get wrong: unicode and space-containing names, characters that need escaping in
//! URLs (`#`, `%`, `(`), folders three levels deep, an empty file, sizes at and just past a
//! 1 MiB block boundary, a ~5 MiB "movie" and the small `.srt`/`.nfo` files media servers probe.
//!
//! `link_tree` renders a directory in the text format of pan123-protocol.md §4.2 (two spaces per
//! level, `name:` for folders, `size:mtime:URL` for files), optionally with some sizes left out
//! so that the client must find them itself.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

const MIB: u64 = 1024 * 1024;

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFile {
    /// Path under the data dir, `/`-separated with a leading `/`: `/Movies/movie.mp4`.
    pub rel_path: String,
    pub size: u64,
    /// Unix seconds.
    pub mtime: u64,
}

/// The sample tree: (path, size). Order does not matter; mtimes follow the index.
const SAMPLE: &[(&str, u64)] = &[
    ("/Movies/movie.mp4", 5 * MIB + 12_345),
    ("/Movies/movie.srt", 4_321),
    ("/Movies/movie.nfo", 789),
    ("/Movies/Extras/花絮.mkv", 700 * 1024 + 7),
    ("/Movies/Extras/Deleted Scenes/scene 01.mp4", 512 * 1024),
    ("/Movies/Extras/Deleted Scenes/scene 01.srt", 1_234),
    ("/Ünïcödé folder/exactly 1 MiB.bin", MIB),
    ("/Ünïcödé folder/1 MiB plus one.bin", MIB + 1),
    ("/Ünïcödé folder/测试 video.mp4", 333_333),
    ("/Music/Album/01 - Intro.flac", 1_500_000),
    ("/Music/Album/cover.jpg", 65_537),
    ("/Docs/empty.txt", 0),
    ("/Docs/readme.txt", 100),
    ("/Docs/notes #1 (100%).txt", 2_000),
    ("/top level file.txt", 42),
];

/// First sample mtime: 2023-11-14 22:13:20 UTC. Each file gets one more day than the previous.
const MTIME_BASE: u64 = 1_700_000_000;

/// SplitMix64: a tiny, well-known, seedable generator (same output on every platform).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// FNV-1a over the path, the seed of that file's content.
fn seed(rel_path: &str) -> u64 {
    rel_path.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3))
}

/// The content of a sample file (exposed so tests can check bytes without reading the disk).
pub fn content(rel_path: &str, size: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed(rel_path));
    let mut out = Vec::with_capacity(size as usize + 8);
    while (out.len() as u64) < size {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(size as usize);
    out
}

/// Write the content of a sample file at `rel_path` (see [`content`]) to `path`, a MiB at a
/// time: a soak test's 256 MiB file need not fit in memory.
pub fn write_content(path: &Path, rel_path: &str, size: u64) -> io::Result<()> {
    let mut rng = SplitMix64(seed(rel_path));
    let mut file = fs::File::create(path)?;
    let mut buf = Vec::with_capacity(MIB as usize);
    let mut left = size;
    while left > 0 {
        buf.clear();
        while (buf.len() as u64) < left.min(MIB) {
            buf.extend_from_slice(&rng.next().to_le_bytes());
        }
        buf.truncate(left.min(MIB) as usize);
        file.write_all(&buf)?;
        left -= buf.len() as u64;
    }
    Ok(())
}

/// Write the sample tree into `dir` (created if needed; existing sample files are overwritten).
pub fn generate(dir: &Path) -> io::Result<Vec<SampleFile>> {
    let mut files = Vec::with_capacity(SAMPLE.len());
    for (i, (rel_path, size)) in SAMPLE.iter().enumerate() {
        let path = rel_path.split('/').filter(|s| !s.is_empty()).fold(dir.to_path_buf(), |p, s| p.join(s));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mtime = MTIME_BASE + i as u64 * 86_400;
        let mut f = fs::File::create(&path)?;
        f.write_all(&content(rel_path, *size))?;
        f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))?;
        files.push(SampleFile { rel_path: (*rel_path).to_owned(), size: *size, mtime });
    }
    Ok(files)
}

/// Which file lines of [`link_tree`] carry `size:mtime:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeMode {
    /// Every file line is `size:mtime:URL`.
    Full,
    /// Every file line is the bare URL (the client sees size 0 and mtime 0).
    None,
    /// Alternating, in tree order: the 1st, 3rd, ... file lines have `size:mtime:`, the others
    /// are bare URLs.
    Mixed,
}

/// The 123pan_link tree text (pan123-protocol.md §4.2) of everything under `files_root`.
///
/// Folders come before files at each level, each group sorted by name (bytewise). A file line's
/// URL is `url_for(rel_path)` with `rel_path` like `/Movies/movie.mp4`; its last segment,
/// percent-decoded, must be the file's name (that is how the client names it).
pub fn link_tree(files_root: &Path, url_for: impl Fn(&str) -> String, sizes: SizeMode) -> io::Result<String> {
    let mut out = String::new();
    let mut file_index = 0usize;
    walk(files_root, "", 0, &url_for, sizes, &mut file_index, &mut out)?;
    Ok(out)
}

fn walk(
    dir: &Path,
    rel: &str,
    level: usize,
    url_for: &dyn Fn(&str) -> String,
    sizes: SizeMode,
    file_index: &mut usize,
    out: &mut String,
) -> io::Result<()> {
    let mut folders = Vec::new();
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| io::Error::new(io::ErrorKind::InvalidData, format!("file name is not UTF-8: {n:?}")))?;
        // Follows symlinks, like the CDN does when it serves them.
        let meta = fs::metadata(entry.path())?;
        if meta.is_dir() {
            folders.push(name);
        } else if meta.is_file() {
            files.push((name, meta));
        }
    }
    folders.sort();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let indent = "  ".repeat(level);
    for name in folders {
        out.push_str(&format!("{indent}{name}:\n"));
        walk(&dir.join(&name), &format!("{rel}/{name}"), level + 1, url_for, sizes, file_index, out)?;
    }
    for (name, meta) in files {
        let url = url_for(&format!("{rel}/{name}"));
        let with_size = match sizes {
            SizeMode::Full => true,
            SizeMode::None => false,
            SizeMode::Mixed => *file_index % 2 == 0,
        };
        *file_index += 1;
        if with_size {
            let mtime = meta.modified()?.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            out.push_str(&format!("{indent}{}:{mtime}:{url}\n", meta.len()));
        } else {
            out.push_str(&format!("{indent}{url}\n"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_deterministic_and_path_dependent() {
        assert_eq!(content("/a", 100), content("/a", 100));
        assert_ne!(content("/a", 100), content("/b", 100));
        assert_eq!(&content("/a", 100)[..10], &content("/a", 10)[..]);
        assert!(content("/a", 0).is_empty());
    }

    #[test]
    fn written_content_is_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for size in [0, 7, MIB + 3] {
            write_content(&path, "/x/f", size).unwrap();
            assert_eq!(fs::read(&path).unwrap(), content("/x/f", size), "{size}");
        }
    }

    #[test]
    fn sample_has_the_promised_shapes() {
        let total: u64 = SAMPLE.iter().map(|(_, s)| s).sum();
        assert!((8 * MIB..=12 * MIB).contains(&total), "total {total}");
        assert!(SAMPLE.iter().any(|(_, s)| *s == 0));
        assert!(SAMPLE.iter().any(|(_, s)| *s == MIB));
        assert!(SAMPLE.iter().any(|(_, s)| *s == MIB + 1));
        assert!(SAMPLE.iter().any(|(p, _)| p.matches('/').count() == 4), "3 folder levels");
    }
}
