//! Stress: 16 reader threads over 64 files (3 KiB to 24 MiB) with random seeks, whole-file
//! reads and open/close churn, and two `ls -R` loops, for 30 s through one mount with a
//! 64 MiB memory budget. No fault is injected, so every read must succeed with the remote
//! bytes; every thread must finish (no deadlock); the process's peak RSS must stay near the
//! budget; the mount must come down cleanly.

use crate::common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{KEY, Mount, Sim, fuse_tests_enabled, is_mounted, is_stale};
use panmount::sim::SizeMode;

const READERS: usize = 16;
const FILES: usize = 64;
const RUN: Duration = Duration::from_secs(30);
/// How long after the end of the run a thread may still be busy before it counts as stuck:
/// its last operation (at worst a whole 24 MiB read) plus a lot of room for a slow CI.
const GRACE: Duration = Duration::from_secs(90);
const MEMORY_LIMIT_MB: u64 = 64;
/// Peak RSS allowed above the block budget (which covers blocks in flight too). Measured
/// (debug build, 2 cores): an idle mount is 22 MiB resident (20 MiB of it the binary's
/// pages); after this run the peak was 141-147 MiB, 127 MiB of it anonymous: the 64 MiB of
/// blocks plus about 60 MiB of heap the allocator keeps after 16 readers' FUSE buffers and
/// read replies. A cache that ignored its budget would keep most of the files' 170 MiB
/// (a peak past 230 MiB), and a leak would grow with the run; 176 MiB catches both.
const OVERHEAD_MB: u64 = 112;

/// xorshift64*: small, seedable, good enough to pick files and offsets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn seed() -> u64 {
    let seed = std::env::var("PANMOUNT_STRESS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("stress seed {seed} (PANMOUNT_STRESS_SEED={seed} repeats it)");
    seed
}

/// File `i`'s size: mostly small and medium, a few large ones, some just off a block edge.
fn size_of(i: usize) -> u64 {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    match i % 8 {
        0 => 3 * KIB + i as u64,
        1 => 20 * KIB + i as u64,
        2 => 64 * KIB,
        3 => 200 * KIB + i as u64,
        4 => MIB + 1,
        5 => 3 * MIB + i as u64,
        6 => 5 * MIB - 1,
        _ if i % 32 == 7 => 24 * MIB,
        _ => 8 * MIB + i as u64,
    }
}

fn rel_of(i: usize) -> String {
    format!("Stress/d{}/f{i:02}.bin", i % 8)
}

/// Compare `len` bytes at `offset` of `mounted` with `expected`; any error is a failure.
fn check_range(mounted: &std::fs::File, expected: &std::fs::File, offset: u64, len: usize, what: &str) {
    let mut got = vec![0u8; len];
    let mut want = vec![0u8; len];
    let n = mounted.read_at(&mut got, offset).unwrap_or_else(|e| panic!("{what} at {offset}+{len}: {e}"));
    let m = expected.read_at(&mut want, offset).unwrap();
    assert_eq!(n, m, "{what} at {offset}: short read");
    assert!(got[..n] == want[..n], "{what}: wrong bytes at {offset}+{n}");
}

/// One reader: random files, each opened, then read whole, or at a few random offsets, or
/// just closed again.
fn reader(root: &Path, data: &Path, mut rng: Rng, until: Instant) -> u64 {
    let mut ops = 0;
    while Instant::now() < until {
        let i = rng.below(FILES as u64) as usize;
        let rel = rel_of(i);
        let size = size_of(i);
        let expected = std::fs::File::open(data.join(&rel)).unwrap();
        let mounted = std::fs::File::open(root.join(&rel)).unwrap_or_else(|e| panic!("open {rel}: {e}"));
        match rng.below(4) {
            0 => {
                let mut offset = 0;
                while offset < size {
                    let len = (1 << 20).min(size - offset) as usize;
                    check_range(&mounted, &expected, offset, len, &rel);
                    offset += len as u64;
                }
            }
            1 | 2 => {
                for _ in 0..1 + rng.below(8) {
                    let offset = rng.below(size);
                    let len = 1 + rng.below(256 << 10) as usize;
                    check_range(&mounted, &expected, offset, len, &rel);
                }
            }
            _ => assert_eq!(mounted.metadata().unwrap().len(), size, "{rel}"),
        }
        ops += 1;
    }
    ops
}

fn ls_loop(root: &Path, until: Instant) -> u64 {
    let mut runs = 0;
    while Instant::now() < until {
        let out = std::process::Command::new("ls").arg("-lR").arg(root).output().unwrap();
        assert!(out.status.success(), "ls -R: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("f63.bin"));
        runs += 1;
    }
    runs
}

/// Peak resident set (VmHWM) of `pid`, in MiB.
fn peak_rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

#[test]
fn sixteen_readers_sixty_four_files_and_ls_loops() {
    let _turn = crate::one_at_a_time();
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(true);
    for i in 0..FILES {
        let path = sim.data.path().join(rel_of(i));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        panmount::sim::sample::write_content(&path, &format!("/{}", rel_of(i)), size_of(i)).unwrap();
    }
    let mut seed = seed();
    let extra = format!("[cache]\nmemory_limit_mb = {MEMORY_LIMIT_MB}\ndir_cache_time = \"2s\"\n");
    let mut mount = Mount::start(&sim.config(SizeMode::Mixed, KEY, &extra));
    let root: PathBuf = mount.path("/links");

    let data: PathBuf = sim.data.path().into();
    let until = Instant::now() + RUN;

    let (done, finished) = mpsc::channel::<String>();
    let mut threads = Vec::new();
    for n in 0..READERS {
        let (root, data, done) = (root.clone(), data.clone(), done.clone());
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let rng = Rng(seed | 1);
        threads.push(std::thread::spawn(move || {
            let ops = reader(&root, &data, rng, until);
            done.send(format!("reader {n}: {ops} files")).unwrap();
        }));
    }
    for n in 0..2 {
        let (root, done) = (root.clone(), done.clone());
        threads.push(std::thread::spawn(move || {
            let runs = ls_loop(&root, until);
            done.send(format!("ls loop {n}: {runs} runs")).unwrap();
        }));
    }
    drop(done);
    let mut reports = Vec::new();
    while reports.len() < threads.len() {
        let left = (until + GRACE).saturating_duration_since(Instant::now());
        match finished.recv_timeout(left) {
            Ok(report) => reports.push(report),
            // A sender dropped without reporting: that thread panicked; join says why.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!(
                    "deadlock? {} of {} threads still busy {GRACE:?} after the end:\n{}",
                    threads.len() - reports.len(),
                    threads.len(),
                    mount.log()
                )
            }
        }
    }
    for t in threads {
        if let Err(panic) = t.join() {
            std::panic::resume_unwind(panic);
        }
    }
    let peak = peak_rss_mb(mount.pid());

    eprintln!("stress: {}; peak RSS {peak} MiB (budget {MEMORY_LIMIT_MB} MiB)", reports.join(", "));
    assert!(peak < MEMORY_LIMIT_MB + OVERHEAD_MB, "peak RSS {peak} MiB");
    let log = mount.log();
    assert!(!log.contains("read failed") && !log.contains("operation failed"), "{log}");

    assert_eq!(mount.stop_with(libc::SIGTERM).code(), Some(0));
    assert!(!is_mounted(mount.dir.path()) && !is_stale(mount.dir.path()), "the mount is gone");
}
