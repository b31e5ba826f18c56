//! The filesystem core without FUSE, against the simulator's CDN, with a counting driver: what
//! the caches promise in remote calls (single-flight listings and links, negative names, no
//! block downloaded twice) and what a down storage does to its neighbours.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use panmount::drivers::{Driver, Entry, Link};
use panmount::error::{Error, Result};
use panmount::fs::{Fs, FsConfig, Lookup, Owner, Storage};
use panmount::http::HttpClient;
use panmount::read::window::WindowConfig;

/// A flat folder of the sample's files, linked unsigned to the simulator's CDN.
struct CountingDriver {
    base: String,
    files: Vec<(String, u64)>,
    sizes_known: bool,
    login_fails: AtomicBool,
    lists: AtomicUsize,
    links: AtomicUsize,
    logins: AtomicUsize,
}

#[async_trait]
impl Driver for CountingDriver {
    fn kind(&self) -> &'static str {
        "counting"
    }
    fn root(&self) -> Entry {
        entry("/", "", true, Some(0))
    }
    async fn login(&self) -> Result<()> {
        self.logins.fetch_add(1, Ordering::SeqCst);
        if self.login_fails.load(Ordering::SeqCst) {
            return Err(Error::Remote("login refused: invalid_account_or_password".into()));
        }
        Ok(())
    }
    async fn list(&self, dir: &Entry) -> Result<Vec<Entry>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(dir.id, "/");
        Ok(self
            .files
            .iter()
            .map(|(rel, size)| {
                let name = rel.rsplit('/').next().unwrap();
                entry(rel, name, false, self.sizes_known.then_some(*size))
            })
            .collect())
    }
    async fn link(&self, file: &Entry) -> Result<Link> {
        self.links.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let url = format!("{}/cdn{}", self.base, percent(&file.id));
        Ok(Link { url, headers: vec![], expires_at: Some(SystemTime::now() + Duration::from_secs(3600)) })
    }
}

fn percent(path: &str) -> String {
    path.split('/')
        .map(|s| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn entry(id: &str, name: &str, is_dir: bool, size: Option<u64>) -> Entry {
    Entry { id: id.into(), name: name.into(), is_dir, size, mtime: SystemTime::UNIX_EPOCH, version: "1".into() }
}

fn driver(sim: &common::Sim, sizes_known: bool) -> Arc<CountingDriver> {
    Arc::new(CountingDriver {
        base: sim.handle().base_url(),
        files: sim.files.iter().map(|f| (f.rel_path.clone(), f.size)).collect(),
        sizes_known,
        login_fails: AtomicBool::new(false),
        lists: AtomicUsize::new(0),
        links: AtomicUsize::new(0),
        logins: AtomicUsize::new(0),
    })
}

fn fs(storages: Vec<(&str, Arc<CountingDriver>)>, dir_ttl: Duration) -> Arc<Fs> {
    fs_with_memory(storages, dir_ttl, 64 << 20)
}

fn fs_with_memory(storages: Vec<(&str, Arc<CountingDriver>)>, dir_ttl: Duration, memory: usize) -> Arc<Fs> {
    let http = HttpClient::new(None).unwrap();
    let storages = storages.into_iter().map(|(p, d)| Storage::new(p.into(), d, http.clone())).collect();
    Arc::new(Fs::new(
        storages,
        FsConfig {
            owner: Owner { uid: 0, gid: 0, umask: 0o022 },
            dir_ttl,
            negative_ttl: Duration::from_secs(60),
            link_margin: Duration::from_secs(60),
            block_size: 1 << 20,
            memory_limit: memory,
            window: WindowConfig { initial: 1 << 20, max: 8 << 20, stream_after: 1 << 20, step: 8 << 20 },
            connections_per_file: 0,
            disk: None,
            store: None,
        },
    ))
}

#[test]
fn listings_links_and_negatives_cost_one_remote_call_each() {
    let sim = common::Sim::start(false);
    let d = driver(&sim, true);
    let fs = fs(vec![("/s", d.clone())], Duration::from_secs(300));
    sim.rt.block_on(async {
        fs.login_all().await;
        let root = fs.resolve("/s").await.unwrap();
        // 20 concurrent lookups of different names in a folder not yet listed: one listing.
        let lookups = (0..20).map(|i| {
            let fs = fs.clone();
            tokio::spawn(async move {
                fs.lookup(root, if i % 2 == 0 { "movie.mp4" } else { "movie.nfo" }).await.map(|_| ())
            })
        });
        for l in lookups {
            l.await.unwrap().unwrap();
        }
        assert_eq!(d.lists.load(Ordering::SeqCst), 1);
        // A probe for a missing subtitle: answered "missing", then from the negative cache.
        for _ in 0..5 {
            assert!(matches!(fs.lookup(root, "movie.en.srt").await.unwrap(), Lookup::Missing { .. }));
        }
        assert_eq!(d.lists.load(Ordering::SeqCst), 1);
        // SIGHUP's cache drop: the next lookup asks the driver again.
        fs.drop_dir_caches();
        assert!(matches!(fs.lookup(root, "movie.nfo").await.unwrap(), Lookup::Found { .. }));
        assert_eq!(d.lists.load(Ordering::SeqCst), 2);
        // 8 readers of one file: one link, and no block downloaded twice.
        let ino = fs.resolve("/s/movie.mp4").await.unwrap();
        let size = 5 * 1024 * 1024 + 12_345;
        let readers = (0..8).map(|_| {
            let fs = fs.clone();
            tokio::spawn(async move {
                let fh = fs.open(ino, false, false).await.unwrap().fh;
                let mut out = Vec::new();
                while (out.len() as u64) < size {
                    out.extend_from_slice(&fs.read(fh, out.len() as u64, 128 * 1024).await.unwrap());
                }
                let _ = fs.release(fh).await;
                out
            })
        });
        let expected = sim.file_bytes("/Movies/movie.mp4");
        for r in readers {
            assert!(r.await.unwrap() == expected);
        }
        assert_eq!(d.links.load(Ordering::SeqCst), 1, "one link for all readers");
        let sent = sim.stats().bytes_sent;
        assert_eq!(sent, size, "every byte downloaded exactly once");
    });
}

#[test]
fn unknown_sizes_are_probed_once_and_listings_expire() {
    let sim = common::Sim::start(false);
    let d = driver(&sim, false);
    let fs = fs(vec![("/s", d.clone())], Duration::from_millis(300));
    sim.rt.block_on(async {
        let root = fs.resolve("/s").await.unwrap();
        let fh = fs.opendir(root).await.unwrap().fh;
        let mut sizes = Vec::new();
        fs.readdir(fh, 0, true, |item| {
            sizes.push((item.name.to_string(), item.attr.size));
            false
        })
        .await
        .unwrap();
        for f in &sim.files {
            let name = f.rel_path.rsplit('/').next().unwrap();
            assert!(sizes.contains(&(name.to_string(), f.size)), "{name}: {sizes:?}");
        }
        let probes = sim.stats().requests;
        assert_eq!(probes, sim.files.len() as u64, "one probe per file");
        // After the listing expires, it is fetched again, but sizes of unchanged files are not.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let ino = fs.resolve("/s/movie.srt").await.unwrap();
        assert_eq!(fs.getattr(ino).await.unwrap().0.size, 4_321);
        assert_eq!(d.lists.load(Ordering::SeqCst), 2);
        assert_eq!(sim.stats().requests, probes);
    });
}

#[test]
fn a_down_storage_answers_eio_and_leaves_the_others_alone() {
    let sim = common::Sim::start(false);
    let (good, bad) = (driver(&sim, true), driver(&sim, true));
    bad.login_fails.store(true, Ordering::SeqCst);
    let fs = fs(vec![("/good", good.clone()), ("/bad", bad.clone())], Duration::from_secs(300));
    sim.rt.block_on(async {
        let results = fs.login_all().await;
        assert!(results[0].is_ok() && results[1].is_err());
        let bad_root = fs.resolve("/bad").await.unwrap();
        for _ in 0..3 {
            let err = fs.opendir(bad_root).await.unwrap_err();
            assert_eq!(err.errno(), libc::EIO);
            assert!(err.to_string().contains("invalid_account_or_password"), "{err}");
        }
        assert_eq!(bad.logins.load(Ordering::SeqCst), 1, "no login loop");
        let fh = fs.open(fs.resolve("/good/readme.txt").await.unwrap(), false, false).await.unwrap().fh;
        assert_eq!(&fs.read(fh, 0, 1000).await.unwrap()[..], &sim.file_bytes("/Docs/readme.txt")[..]);
        // The read-only promise: opening for writing is EROFS.
        let err = fs.open(fs.resolve("/good/readme.txt").await.unwrap(), true, false).await.err().unwrap();
        assert_eq!(err.errno(), libc::EROFS);
    });
}

#[test]
fn streaming_respects_the_memory_budget_and_keeps_head_and_tail_blocks() {
    let budget = 16 << 20;
    let (sim, fs, big) = with_big_file(40 << 20, budget);
    sim.rt.block_on(async {
        let ino = fs.resolve("/s/big.bin").await.unwrap();
        let fh = fs.open(ino, false, false).await.unwrap().fh;
        let mut offset = 0u64;
        while offset < big.len() as u64 {
            let got = fs.read(fh, offset, 1 << 20).await.unwrap();
            assert!(got[..] == big[offset as usize..offset as usize + got.len()], "bytes at {offset}");
            offset += got.len() as u64;
            let used: u64 = field(&fs.stats_report(), "used_bytes");
            assert!(used <= budget as u64, "cache over budget: {used}");
        }
        let before = sim.stats().bytes_sent;
        // A re-scan of the head and the tail: both blocks are still in memory.
        assert!(fs.read(fh, 0, 65536).await.unwrap()[..] == big[..65536]);
        let tail = big.len() as u64 - 65536;
        assert!(fs.read(fh, tail, 65536).await.unwrap()[..] == big[tail as usize..]);
        assert_eq!(sim.stats().bytes_sent, before, "head and tail came from the probe pool");
        // The middle of the file was evicted: reading it costs a download.
        assert!(fs.read(fh, 3 << 20, 4096).await.unwrap()[..] == big[3 << 20..(3 << 20) + 4096]);
        assert!(sim.stats().bytes_sent > before);
    });
}

/// A simulator serving `/big.bin` (`len` bytes of a pattern) and a core with `budget` bytes
/// of block memory reading it at `/s/big.bin`.
fn with_big_file(len: u32, budget: usize) -> (common::Sim, Arc<Fs>, Vec<u8>) {
    let sim = common::Sim::start(false);
    let big: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(sim.data.path().join("big.bin"), &big).unwrap();
    let d = driver(&sim, true);
    let mut files = d.files.clone();
    files.push(("/big.bin".into(), big.len() as u64));
    let d = Arc::new(CountingDriver { files, ..Arc::into_inner(d).unwrap() });
    let fs = fs_with_memory(vec![("/s", d)], Duration::from_secs(300), budget);
    (sim, fs, big)
}

fn field(report: &str, name: &str) -> u64 {
    report.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{name}="))).unwrap().parse().unwrap()
}

#[test]
fn many_streams_share_the_memory_budget() {
    let budget = 16 << 20;
    let (sim, fs, big) = with_big_file(48 << 20, budget);
    let big = Arc::new(big);
    sim.rt.block_on(async {
        let ino = fs.resolve("/s/big.bin").await.unwrap();
        // Six handles stream six regions of one file at once, each 6 MiB from its own start.
        let streams: Vec<_> = (0..6u64)
            .map(|k| {
                let (fs, big) = (fs.clone(), big.clone());
                tokio::spawn(async move {
                    let fh = fs.open(ino, false, false).await.unwrap().fh;
                    let (start, end) = (k * (8 << 20), k * (8 << 20) + (6 << 20));
                    let mut offset = start;
                    let mut peak = 0;
                    while offset < end {
                        let got = fs.read(fh, offset, 1 << 20).await.unwrap();
                        assert!(got[..] == big[offset as usize..offset as usize + got.len()], "bytes at {offset}");
                        offset += got.len() as u64;
                        let report = fs.stats_report();
                        peak = peak.max(field(&report, "used_bytes") + field(&report, "in_flight_bytes"));
                    }
                    let _ = fs.release(fh).await;
                    peak
                })
            })
            .collect();
        for s in streams {
            let peak = s.await.unwrap();
            assert!(peak <= budget as u64, "blocks, cached and in flight, over the budget: {peak}");
        }
    });
    // Read-ahead shared the budget instead of evicting what the others had not read yet: what
    // was downloaded beyond the 36 MiB read is each stream's last read-ahead (its share of
    // the window, rounded up to 1 MiB blocks), nothing fetched twice.
    let sent = sim.stats().bytes_sent;
    assert!(sent <= (36 + 6 * 3) << 20, "{sent} bytes downloaded for 36 MiB read\n{}", fs.stats_report());
}
