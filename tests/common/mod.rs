//! Shared harness of the end-to-end tests: a simulator on loopback with the sample tree, config
//! files for it, and real `panmount mount` processes on temporary mount points.
//!
//! FUSE tests never skip silently: without `/dev/fuse` they fail. Only an explicit
//! `PANMOUNT_SKIP_FUSE_TESTS=1` skips them (and says so).
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use panmount::sim::{self, CdnAuth, SampleFile, SimConfig, SimHandle, SizeMode};

pub const UID: u64 = 1_814_435_971;
pub const KEY: &str = "test-private-key";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_panmount")
}

/// True when FUSE tests should run; prints why when they are skipped.
pub fn fuse_tests_enabled() -> bool {
    if std::env::var("PANMOUNT_SKIP_FUSE_TESTS").as_deref() == Ok("1") {
        eprintln!("PANMOUNT_SKIP_FUSE_TESTS=1: skipping a FUSE test");
        return false;
    }
    true
}

/// A simulator serving the sample tree, on its own runtime so tests may block on the mount.
pub struct Sim {
    pub rt: tokio::runtime::Runtime,
    pub handle: Option<SimHandle>,
    pub data: tempfile::TempDir,
    pub files: Vec<SampleFile>,
}

impl Sim {
    pub fn start(signed: bool) -> Sim {
        Self::start_with(signed, |_| {})
    }

    /// A simulator whose data dir gets the sample tree and then whatever `prepare` adds
    /// (before the simulated PikPak scans it).
    pub fn start_with(signed: bool, prepare: impl FnOnce(&Path)) -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let data = tempfile::tempdir().unwrap();
        let files = sim::generate(data.path()).unwrap();
        prepare(data.path());
        let cdn_auth = signed.then(|| CdnAuth { private_key: KEY.into(), uid: UID });
        let handle = rt
            .block_on(sim::start(SimConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                data_dir: data.path().into(),
                cdn_auth,
            }))
            .unwrap();
        Sim { rt, handle: Some(handle), data, files }
    }

    pub fn handle(&self) -> &SimHandle {
        self.handle.as_ref().unwrap()
    }

    pub fn knobs(&self) -> &panmount::sim::Knobs {
        &self.handle().knobs
    }

    pub fn stats(&self) -> panmount::sim::StatsSnapshot {
        self.handle().stats.snapshot()
    }

    /// The 123pan_link tree text for the sample.
    pub fn tree(&self, sizes: SizeMode) -> String {
        let h = self.handle();
        sim::link_tree(self.data.path(), |rel| h.cdn_url(rel), sizes).unwrap()
    }

    /// A config with one 123pan_link storage at `/links`, signed with `key`, plus `extra`
    /// TOML appended (e.g. a `[cache]` table).
    pub fn config(&self, sizes: SizeMode, key: &str, extra: &str) -> String {
        format!(
            "{extra}\n[[storage]]\npath = \"/links\"\ndriver = \"123pan_link\"\nprivate_key = {}\nuid = {UID}\norigin_urls = {}\n",
            toml::Value::String(key.into()),
            toml::Value::String(self.tree(sizes)),
        )
    }

    pub fn file_bytes(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.data.path().join(rel.trim_start_matches('/'))).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown());
        }
    }
}

/// Write `text` as a config file in a fresh temp dir. A config with a storage that takes writes
/// (`pikpak`, `123pan`) must say where uploads are staged; one that says neither `state_dir` nor
/// `[cache] dir` gets `state_dir` = a `state` folder beside the file, as a user would set.
pub fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("panmount.toml");
    let writable = text.contains("driver = \"pikpak\"") || text.contains("driver = \"123pan\"");
    let staged = text.contains("state_dir") || text.lines().any(|l| l.trim_start().starts_with("dir ="));
    let text = if writable && !staged {
        format!("state_dir = \"{}\"\n{text}", dir.path().join("state").display())
    } else {
        text.to_string()
    };
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// A running `panmount mount`.
pub struct Mount {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    _config: (tempfile::TempDir, PathBuf),
    stderr_path: PathBuf,
}

impl Mount {
    pub fn start(config_text: &str) -> Mount {
        let config = write_config(config_text);
        let dir = tempfile::tempdir().unwrap();
        Self::start_at(config, dir)
    }

    pub fn start_at(config: (tempfile::TempDir, PathBuf), dir: tempfile::TempDir) -> Mount {
        Self::start_with_env(config, dir, &[])
    }

    pub fn start_with_env(config: (tempfile::TempDir, PathBuf), dir: tempfile::TempDir, env: &[(&str, &str)]) -> Mount {
        Self::start_with_args(config, dir, env, &["-v"])
    }

    /// `panmount ARGS mount CONFIG --mountpoint DIR` with `env` added; `args` are the global
    /// options (`-v` for the other constructors).
    pub fn start_with_args(
        config: (tempfile::TempDir, PathBuf),
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Mount {
        Self::start_full(config, dir, env, args, &[])
    }

    /// [`Self::start_with_args`], with `mount_args` after the mount point (`--read-only`).
    pub fn start_full(
        config: (tempfile::TempDir, PathBuf),
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
        args: &[&str],
        mount_args: &[&str],
    ) -> Mount {
        let stderr_path = config.0.path().join("stderr.log");
        let child = Command::new(bin())
            .envs(env.iter().copied())
            .args(args)
            .arg("mount")
            .arg(&config.1)
            .arg("--mountpoint")
            .arg(dir.path())
            .args(mount_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let mut mount = Mount { child: Some(child), dir, _config: config, stderr_path };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted(mount.dir.path()) || is_stale(mount.dir.path()) {
            if let Some(status) = mount.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("panmount exited with {status} before mounting:\n{}", mount.log());
            }
            assert!(Instant::now() < deadline, "not mounted after 20 s:\n{}", mount.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        mount
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel.trim_start_matches('/'))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Send `signal` and wait for the process to exit.
    pub fn stop_with(&mut self, signal: i32) -> ExitStatus {
        let mut child = self.child.take().expect("already stopped");
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "panmount did not exit after signal {signal}:\n{}\n{}",
                self.log(),
                threads_of(child.id())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(mut self) -> ExitStatus {
        self.stop_with(libc::SIGTERM)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if is_mounted(self.dir.path()) || is_stale(self.dir.path()) {
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

/// Whether a panmount FUSE mount sits at `dir` (per /proc/self/mountinfo: fstype `fuse` or
/// `fuse.panmount`, source `panmount...`).
pub fn is_mounted(dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else { return false };
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let Some((_, tail)) = l.split_once(" - ") else { return false };
        let t: Vec<&str> = tail.split(' ').collect();
        f.get(4).map(|p| p.replace("\\040", " ")) == Some(dir.to_string_lossy().into_owned())
            && t[0].starts_with("fuse")
            && t.get(1).is_some_and(|s| s.starts_with("panmount"))
    })
}

/// A FUSE mount whose server is gone answers ENOTCONN (to `read_dir`: `stat` may be answered
/// from the kernel's attribute cache).
pub fn is_stale(dir: &Path) -> bool {
    std::fs::read_dir(dir).err().and_then(|e| e.raw_os_error()) == Some(libc::ENOTCONN)
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// Read a whole file through the mount, in a way that surfaces EIO as an error.
pub fn read_all(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut out)?;
    Ok(out)
}

/// Run the binary with `args`; (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, Vec<u8>, String) {
    let out = Command::new(bin()).args(args).stdin(Stdio::null()).output().unwrap();
    (out.status.code().unwrap_or(-1), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Every file and folder under `root`: relative path -> Some(size) for files, None for folders.
pub fn walk(root: &Path) -> std::collections::BTreeMap<String, Option<u64>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let rel = entry.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
                out.insert(rel, None);
            } else {
                out.insert(rel, Some(meta.len()));
            }
        }
    }
    out
}

/// The driver conformance suite, through a real mount: the tree under `mounted` (names, deep
/// paths, unicode, sizes) equals the tree under `expected`, every file's bytes are equal, and
/// `ranged_reads` random `pread`s are byte-exact.
pub fn conformance(mounted: &Path, expected: &Path, ranged_reads: usize) {
    let tree = walk(expected);
    assert_eq!(walk(mounted), tree, "tree and sizes through the mount");
    let files: Vec<(&String, u64)> = tree.iter().filter_map(|(p, s)| s.map(|s| (p, s))).collect();
    for (rel, size) in &files {
        let got = read_all(&mounted.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(got.len() as u64, *size, "{rel}");
        assert_eq!(sha256(&got), sha256(&std::fs::read(expected.join(rel)).unwrap()), "{rel}");
    }
    // Files are opened for direct IO by default; mmap must still work (media tools use it).
    if let Some((rel, _)) = files.iter().filter(|(_, s)| *s > 0).max_by_key(|(_, s)| *s) {
        let mapped = mmap_read(&mounted.join(rel));
        assert_eq!(sha256(&mapped), sha256(&std::fs::read(expected.join(rel)).unwrap()), "{rel} through mmap");
    }
    random_preads(mounted, expected, ranged_reads);
}

/// A whole file read through a shared read-only mapping.
pub fn mmap_read(path: &Path) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    // SAFETY: a read-only mapping of a file we hold open, copied out and unmapped before return.
    unsafe {
        let ptr = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0);
        assert_ne!(ptr, libc::MAP_FAILED, "mmap {}: {}", path.display(), std::io::Error::last_os_error());
        let copy = std::slice::from_raw_parts(ptr as *const u8, len).to_vec();
        libc::munmap(ptr, len);
        copy
    }
}

/// `n` `pread`s at seeded random offsets and lengths (up to 300 KiB) over the non-empty files
/// under `expected`, through `mounted`, each byte-exact.
pub fn random_preads(mounted: &Path, expected: &Path, n: usize) {
    use std::os::unix::fs::FileExt;
    let tree = walk(expected);
    let files: Vec<(&String, u64)> = tree.iter().filter_map(|(p, s)| s.map(|s| (p, s))).collect();
    let nonempty: Vec<_> = files.iter().filter(|(_, s)| *s > 0).collect();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..n {
        let (rel, size) = nonempty[(next() % nonempty.len() as u64) as usize];
        let offset = next() % size;
        let len = 1 + next() % (300 * 1024);
        let file = std::fs::File::open(mounted.join(rel)).unwrap();
        let mut buf = vec![0u8; len as usize];
        let n = file.read_at(&mut buf, offset).unwrap();
        let end = (offset + len).min(*size) as usize;
        assert!(n > 0 && n <= end - offset as usize, "{rel} at {offset}: {n} bytes");
        let want = std::fs::read(expected.join(rel)).unwrap();
        assert_eq!(&buf[..n], &want[offset as usize..offset as usize + n], "{rel} at {offset}+{n}");
    }
}

/// One counter of `storage` in the running mount's `panmount stats` report (`link_mints`,
/// `range_requests`, ...).
pub fn mount_stat(mount: &Mount, storage: &str, name: &str) -> u64 {
    let (code, out, err) = run(&["stats", mount.dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8(out).unwrap();
    let line = out.lines().find(|l| l.starts_with(&format!("storage={storage} "))).unwrap_or_else(|| panic!("{out}"));
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name}: {line}"))
        .parse()
        .unwrap()
}

/// Assert that `result` failed with EIO.
pub fn assert_eio<T>(result: std::io::Result<T>, what: &str) {
    match result {
        Err(err) => assert_eq!(err.raw_os_error(), Some(libc::EIO), "{what}: {err}"),
        Ok(_) => panic!("{what}: expected EIO, the read succeeded"),
    }
}

/// What each thread of `pid` is doing (its kernel wait channel, and gdb's backtraces where gdb
/// is installed): printed when a mount does not exit, so a hang leaves evidence behind.
pub fn threads_of(pid: u32) -> String {
    let mut out = String::from("threads (name: kernel wait channel):\n");
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let read = |f: &str| std::fs::read_to_string(task.path().join(f)).unwrap_or_default();
            out.push_str(&format!("  {}: {}\n", read("comm").trim(), read("wchan").trim()));
        }
    }
    let gdb = Command::new("gdb")
        .args(["-p", &pid.to_string(), "-batch", "-ex", "thread apply all bt 30"])
        .stdin(Stdio::null())
        .output();
    if let Ok(gdb) = gdb {
        out.push_str(&String::from_utf8_lossy(&gdb.stdout));
    }
    out
}
