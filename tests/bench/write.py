#!/usr/bin/env python3
"""Write benchmark (issue 14): writing into the mount, panmount against rclone, on the `cdn` path.

Not part of CI. Builds run.py's `cdn` network path (network namespaces, 30 ms each way through
delayq: `NetPath`), runs the provider simulator behind it with every object store capped at
20 MB/s per request (`store_bytes_per_sec`, the CDN profile's per-connection cap), a fresh one
for each provider and run, and measures, per provider (`pikpak`; `123pan` when the simulator
answers `/_sim/pan123/knobs` with a `store_bytes_per_sec` knob) and per run:

- upload of a 1 GiB file written with `cp` into the mount, from `cp`'s start until the provider
  holds it (`panmount uploads` empty), against rclone mount `--vfs-cache-mode writes` of an `s3`
  remote on the simulator's S3 store (`/s3`; upload concurrency 4, chunk 5 MiB, the defaults;
  `--vfs-write-back 0s` so that rclone starts when the file is closed, as panmount does)
  and against the ceiling (8 parts in flight x 20 MB/s);
- `cp` of a 2 GiB file into the mount until `close` returns, against `dd conv=fsync` into the
  staging directory's disk (panmount's close returns once the file is staged, hashed, fsynced
  and journaled);
- instant upload of the 1 GiB file again under another name (the provider has its hash): the
  time until it is held, against reading the file from disk and hashing it (`md5sum` for
  123pan; for PikPak, whose GCID is SHA-1 based, `sha1sum` as a stand-in); body bytes sent;
- 1,000 files of 4 KiB with `cp -r`: API calls per file (`GET /_sim/api_calls`), wall time
  until all are held against rclone's, `cp`'s exit status and what `panmount uploads` shows;
- peak RSS (`VmHWM`) of a fresh mounter while four 1 GiB files are written and uploaded at once.

    sudo python3 tests/bench/write.py [--size-mib 1024] [--runs 2] [--skip-rclone]
                                      [--providers pikpak,123pan] [--bin target/release/panmount]

Writes write.json and write.md next to this file (or into --out). Root: network namespaces,
FUSE, drop_caches. Needs rclone >= 1.68 on PATH (unless --skip-rclone) and what run.py's `cdn`
profile needs (gcc, libnetfilter-queue-dev, iptables, ethtool, fuse3).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# run.py's network path, simulator, process helpers and teardown at exit (its atexit handler
# unmounts what is in _mounts and stops what is in _procs).
from run import (MB, MiB, NetPath, Sim, _mounts, _procs, drop_caches, log, proc_usage, random_file,  # noqa: E402
                 stop_proc, teardown, unmount)

HERE = Path(__file__).resolve().parent
PER_REQUEST = 20_000_000
PARTS_IN_FLIGHT = 8  # src/drivers/writable.rs
SMALL_FILES, SMALL_SIZE = 1000, 4096
RCLONE_FLAGS = ["--vfs-cache-mode", "writes", "--vfs-write-back", "0s",
                "--s3-upload-concurrency", "4", "--s3-chunk-size", "5M"]
TIMEOUT = 1800


class Provider:
    """One writable storage of the simulator: its knobs, counters and mount config."""

    def __init__(self, name, knobs_path, knobs, counters_path, body, hasher, api, storage):
        self.name, self.knobs_path, self.knobs, self.counters_path = name, knobs_path, knobs, counters_path
        # body: the counter of upload body bytes; api: its key in /_sim/api_calls.
        self.body, self.hasher, self.api, self.storage = body, hasher, api, storage


def providers(base: str) -> list[Provider]:
    return [
        Provider("pikpak", "/_sim/pikpak/knobs", {"store_bytes_per_sec": PER_REQUEST, "quota_limit": 1 << 40},
                 "/_sim/pikpak/counters", "store_body_bytes", "sha1sum", "pikpak",
                 f'driver = "pikpak"\napi_base = "{base}"\nuser_base = "{base}"\n'
                 f'username = "alice@example.com"\npassword = "secret"\n'),
        Provider("123pan", "/_sim/pan123/knobs", {"store_bytes_per_sec": PER_REQUEST},
                 "/_sim/pan123/counters", "part_bytes", "md5sum", "pan123",
                 f'driver = "123pan"\nusername = "13800138000"\npassword = "sim-password"\n'
                 f'api_base = "{base}"\nlogin_base = "{base}"\n'),
    ]


# ---------------------------------------------------------------- simulator access

def http(base: str, method: str, path: str, body: dict | None = None):
    """The JSON answer (bytes when not JSON), or None for an error status."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as r:
            text = r.read()
    except urllib.error.HTTPError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def counters(sim: Sim, p: Provider) -> dict:
    return {**http(sim.base, "GET", p.counters_path), "api_calls": http(sim.base, "GET", "/_sim/api_calls")[p.api]}


def delta(after: dict, before: dict) -> dict:
    return {k: v - before.get(k, 0) for k, v in after.items() if isinstance(v, int) and k != "min_list_gap_ms"}


def start_sim(binary: Path, work: Path, net: NetPath, wanted: list[str]) -> tuple[Sim, list[Provider]]:
    """A fresh simulator (empty data dir) with every object store at 20 MB/s per request, and
    the providers of `wanted` whose simulator takes uploads (a `store_bytes_per_sec` knob)."""
    data = work / "sim-data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    sim = Sim(binary, data, work, net)
    found = []
    for p in providers(sim.base):
        if p.name not in wanted:
            continue
        current = http(sim.base, "GET", p.knobs_path)
        if not isinstance(current, dict) or "store_bytes_per_sec" not in current:
            log(f"{p.name}: the simulator has no upload store ({p.knobs_path}); not measured")
            continue
        http(sim.base, "PUT", p.knobs_path, {**current, **p.knobs})
        found.append(p)
    http(sim.base, "PUT", "/_sim/s3/knobs", {"store_bytes_per_sec": PER_REQUEST})
    return sim, found


# ---------------------------------------------------------------- processes

def wait_mounted(mp: Path, proc: subprocess.Popen, what: str):
    for _ in range(300):
        if os.path.ismount(mp):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}) before mounting")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not mount {mp}")


def stop_mount(proc: subprocess.Popen, mp: Path):
    unmount(mp)
    stop_proc(proc)
    for lst, x in ((_procs, proc), (_mounts, mp)):
        if x in lst:
            lst.remove(x)


class Panmount:
    def __init__(self, binary: Path, work: Path, sim: Sim, provs: list[Provider]):
        self.binary, self.state = binary, work / "state"
        self.state.mkdir(exist_ok=True)
        self.config = work / "panmount.toml"
        text = f'state_dir = "{self.state}"\n'
        for p in provs:
            text += f'[[storage]]\npath = "/{p.name}"\n{p.storage}'
        self.config.write_text(text)
        self.config.chmod(0o600)
        self.mp = work / "mp-panmount"
        self.mp.mkdir(exist_ok=True)
        self.log = open(work / "panmount.log", "a")
        self.proc = subprocess.Popen([str(binary), "mount", str(self.config), "--mountpoint", str(self.mp)],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        _procs.append(self.proc)
        _mounts.append(self.mp)
        wait_mounted(self.mp, self.proc, "panmount")

    def uploads(self) -> str:
        return subprocess.run([str(self.binary), "uploads", str(self.config)], capture_output=True, text=True,
                              timeout=60).stdout

    def wait_uploads(self) -> str | None:
        """Poll `panmount uploads` until the queue is empty; the table if an upload failed."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            out = self.uploads()
            if "no pending uploads" in out:
                return None
            if any(line.startswith("failed") for line in out.splitlines()):
                return out
            time.sleep(0.1)
        return "timed out:\n" + self.uploads()

    def close(self):
        stop_mount(self.proc, self.mp)
        self.log.close()


class Rclone:
    BUCKET = "bench"

    def __init__(self, work: Path, sim: Sim):
        self.sim = sim
        self.env = {**os.environ, "RCLONE_CONFIG": str(work / "rclone.conf")}
        (work / "rclone.conf").write_text(
            "[s3sim]\ntype = s3\nprovider = Other\naccess_key_id = bench\nsecret_access_key = bench\n"
            f"endpoint = {sim.base}/s3\nforce_path_style = true\n")
        subprocess.run(["rclone", "mkdir", f"s3sim:{self.BUCKET}"], env=self.env, check=True, capture_output=True)
        self.mp = work / "mp-rclone"
        self.mp.mkdir(exist_ok=True)
        cache = work / "rclone-cache"
        shutil.rmtree(cache, ignore_errors=True)
        self.proc = subprocess.Popen(["rclone", "mount", f"s3sim:{self.BUCKET}", str(self.mp), *RCLONE_FLAGS,
                                      "--cache-dir", str(cache), "--log-file", str(work / "rclone.log"), "-v"],
                                     env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _procs.append(self.proc)
        _mounts.append(self.mp)
        wait_mounted(self.mp, self.proc, "rclone")

    def holds(self, key: str, size: int) -> bool:
        req = urllib.request.Request(f"{self.sim.base}/s3/{self.BUCKET}/{key}", method="HEAD")
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as r:
                return int(r.headers.get("Content-Length", -1)) == size
        except urllib.error.HTTPError:
            return False

    def count(self, prefix: str) -> int:
        text = http(self.sim.base, "GET", f"/s3/{self.BUCKET}?list-type=2&max-keys=1000&prefix={prefix}")
        return text.count(b"<Key>") if isinstance(text, bytes) else 0

    def wait(self, done) -> bool:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if done():
                return True
            time.sleep(0.1)
        return False

    def close(self):
        stop_mount(self.proc, self.mp)


# ---------------------------------------------------------------- measurements

def timed(cmd: list[str]) -> tuple[float, int]:
    t = time.monotonic()
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    return time.monotonic() - t, rc


def load() -> float:
    return round(os.getloadavg()[0], 2)


def panmount_upload(pm: Panmount, sim: Sim, p: Provider, src: Path, name: str) -> dict:
    """cp into the mount, then until the provider holds it."""
    drop_caches()
    c0, cpu0, load0 = counters(sim, p), proc_usage(pm.proc.pid)["cpu_s"], load()
    t = time.monotonic()
    close_s, rc = timed(["cp", str(src), str(pm.mp / p.name / name)])
    failed = pm.wait_uploads()
    total_s = time.monotonic() - t
    c = delta(counters(sim, p), c0)
    return {"close_s": round(close_s, 2), "total_s": round(total_s, 2), "cp_status": rc, "failed": failed,
            "mb_s": round(src.stat().st_size / total_s / MB, 1), "cpu_s": round(proc_usage(pm.proc.pid)["cpu_s"] - cpu0, 2),
            "counters": c, "load": [load0, load()]}


def hash_time(hasher: str, src: Path) -> float:
    drop_caches()
    return round(timed([hasher, str(src)])[0], 2)


def panmount_cp_throughput(pm: Panmount, sim: Sim, p: Provider, src: Path) -> dict:
    """cp until close against dd conv=fsync into the staging directory; then the upload."""
    subprocess.run(["cat", str(src)], stdout=subprocess.DEVNULL)  # the source comes from memory in both
    load0 = load()
    plain = pm.state / "dd-plain.bin"
    dd_s, _ = timed(["dd", f"if={src}", f"of={plain}", "bs=1M", "conv=fsync"])
    plain.unlink()
    cpu0, t = proc_usage(pm.proc.pid)["cpu_s"], time.monotonic()
    close_s, rc = timed(["cp", str(src), str(pm.mp / p.name / "big2.bin")])
    cpu_s = proc_usage(pm.proc.pid)["cpu_s"] - cpu0
    failed = pm.wait_uploads()
    size = src.stat().st_size
    return {"dd_s": round(dd_s, 2), "close_s": round(close_s, 2), "cp_status": rc, "cpu_s": round(cpu_s, 2),
            "dd_mb_s": round(size / dd_s / MB, 1), "cp_mb_s": round(size / close_s / MB, 1),
            "upload_after_close_s": round(time.monotonic() - t - close_s, 2), "failed": failed,
            "load": [load0, load()]}


def panmount_small(pm: Panmount, sim: Sim, p: Provider, src: Path) -> dict:
    c0, load0 = counters(sim, p), load()
    t = time.monotonic()
    cp_s, rc = timed(["cp", "-r", str(src), str(pm.mp / p.name / "small")])
    failed = pm.wait_uploads()
    total_s = time.monotonic() - t
    c = delta(counters(sim, p), c0)
    return {"cp_s": round(cp_s, 2), "total_s": round(total_s, 2), "cp_status": rc, "failed": failed,
            "api_calls_per_file": round(c["api_calls"] / SMALL_FILES, 2), "counters": c,
            "uploads_after": pm.uploads().strip(), "load": [load0, load()]}


def panmount_rss(binary: Path, work: Path, sim: Sim, provs: list[Provider], p: Provider, srcs: list[Path]) -> dict:
    """A fresh mounter; four files written at once, until all are held; its VmHWM."""
    pm = Panmount(binary, work, sim, provs)
    try:
        load0 = load()
        t = time.monotonic()
        cps = [subprocess.Popen(["cp", str(s), str(pm.mp / p.name / f"rss-{i}.bin")]) for i, s in enumerate(srcs)]
        rcs = [c.wait() for c in cps]
        close_s = time.monotonic() - t
        failed = pm.wait_uploads()
        total_s = time.monotonic() - t
        usage = proc_usage(pm.proc.pid)
        size = sum(s.stat().st_size for s in srcs)
        return {"rss_peak_mib": round(usage["rss_peak_mib"], 1), "close_s": round(close_s, 2),
                "total_s": round(total_s, 2), "mb_s": round(size / total_s / MB, 1), "cp_status": rcs,
                "failed": failed, "load": [load0, load()]}
    finally:
        pm.close()


def panmount_run(binary: Path, work: Path, sim: Sim, provs: list[Provider], p: Provider, src: dict) -> dict:
    out = {}
    pm = Panmount(binary, work, sim, provs)
    try:
        log(f"{p.name}: upload of {src['one'].stat().st_size >> 20} MiB")
        out["upload"] = panmount_upload(pm, sim, p, src["one"], "up.bin")
        log(f"{p.name}: instant upload")
        out["instant"] = panmount_upload(pm, sim, p, src["one"], "again.bin")
        out["instant"]["hash_s"] = hash_time(p.hasher, src["one"])
        out["instant"]["hasher"] = p.hasher
        log(f"{p.name}: cp of {src['two'].stat().st_size >> 20} MiB until close")
        out["cp"] = panmount_cp_throughput(pm, sim, p, src["two"])
        log(f"{p.name}: {SMALL_FILES} small files")
        out["small"] = panmount_small(pm, sim, p, src["small"])
    finally:
        pm.close()
    log(f"{p.name}: peak RSS, four uploads at once")
    out["rss"] = panmount_rss(binary, work, sim, provs, p, src["four"])
    return out


def rclone_run(work: Path, sim: Sim, src: dict) -> dict:
    rc = Rclone(work, sim)
    out = {}
    try:
        size = src["one"].stat().st_size
        log("rclone: upload")
        drop_caches()
        s0, load0 = http(sim.base, "GET", "/_sim/s3/counters"), load()
        t = time.monotonic()
        close_s, status = timed(["cp", str(src["one"]), str(rc.mp / "up.bin")])
        held = rc.wait(lambda: rc.holds("up.bin", size))
        total_s = time.monotonic() - t
        out["upload"] = {"close_s": round(close_s, 2), "total_s": round(total_s, 2), "cp_status": status,
                         "held": held, "mb_s": round(size / total_s / MB, 1),
                         "rss_peak_mib": round(proc_usage(rc.proc.pid)["rss_peak_mib"], 1),
                         "counters": delta(http(sim.base, "GET", "/_sim/s3/counters"), s0), "load": [load0, load()]}
        log("rclone: small files")
        s0, load0 = http(sim.base, "GET", "/_sim/s3/counters"), load()
        t = time.monotonic()
        cp_s, status = timed(["cp", "-r", str(src["small"]), str(rc.mp / "small")])
        held = rc.wait(lambda: rc.count("small/") >= SMALL_FILES)
        total_s = time.monotonic() - t
        c = delta(http(sim.base, "GET", "/_sim/s3/counters"), s0)
        out["small"] = {"cp_s": round(cp_s, 2), "total_s": round(total_s, 2), "cp_status": status, "held": held,
                        "requests_per_file": round(c["requests"] / SMALL_FILES, 2), "counters": c,
                        "load": [load0, load()]}
    finally:
        rc.close()
    return out


# ---------------------------------------------------------------- data and report

def make_sources(work: Path, size: int) -> dict:
    src = work / "src"
    (src / "small").mkdir(parents=True)
    log(f"data: {size >> 20} MiB, {2 * size >> 20} MiB, 4 x {size >> 20} MiB, {SMALL_FILES} x {SMALL_SIZE} B")
    random_file(src / "one.bin", size)
    random_file(src / "two.bin", 2 * size)
    four = [src / f"four-{i}.bin" for i in range(4)]
    for f in four:
        random_file(f, size)
    for i in range(SMALL_FILES):
        (src / "small" / f"f{i:04d}.bin").write_bytes(os.urandom(SMALL_SIZE))
    os.sync()
    return {"one": src / "one.bin", "two": src / "two.bin", "four": four, "small": src / "small"}


def field(path: str):
    """A getter of `path` ("upload.total_s") in one run's results."""
    def get(r):
        for k in path.split("."):
            r = r[k]
        return r
    return get


def values(runs: list, get) -> list:
    out = []
    for r in runs:
        try:
            out.append(get(r))
        except (KeyError, TypeError, ZeroDivisionError):
            out.append(None)
    return out


def both(runs: list, get) -> str:
    """Each run's value, `a / b / ...`."""
    return " / ".join("—" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v)) for v in values(runs, get))


def verdict(runs: list, get, ok) -> str:
    vals = [v for v in values(runs, get) if v is not None]
    if not vals:
        return "not measured"
    met = [ok(v) for v in vals]
    return "**yes**" if all(met) else ("**no**" if not any(met) else "**mixed**")


def report(result: dict, size: int) -> str:
    env, runs, skip_rclone = result["environment"], result["runs"], result["params"]["skip_rclone"]
    ceiling_s = size / (PARTS_IN_FLIGHT * PER_REQUEST)
    mib = f"{size >> 20} MiB"
    lines = [f"# Write benchmark ({env['date']})", "",
             f"`sudo python3 tests/bench/write.py --size-mib {size >> 20} --runs {len(runs)}"
             f"{' --skip-rclone' if skip_rclone else ''}`; panmount {env['panmount_rev']}, {env['rclone']}; "
             f"{env['cpus']} CPUs, 1-minute load {env['load_start']} at the start, {env['load_end']} at the end. "
             f"`cdn` path: {env['connect_ms']:.1f} ms TCP connect (30 ms each way), every object store at "
             f"20 MB/s per request. rclone: `{' '.join(result['params']['rclone_flags'])}`. Each cell: "
             f"run 1 / run 2 / ...; ratios are taken within a run.", ""]
    for name in result["providers"]:
        prov = next(p for p in providers("") if p.name == name)
        pm = [r[name] for r in runs]
        rc = [r.get("rclone") for r in runs]
        pairs = list(zip(pm, rc))
        P = lambda path: both(pm, field(path))  # noqa: E731
        R = lambda path: both(rc, field(path))  # noqa: E731
        up = field("upload.total_s")
        # (measurement, panmount, compared with, ratio of a (panmount, rclone) pair, target, ok of the ratio)
        rows = [
            (f"{mib} upload, cp start → held (s)",
             f"{P('upload.total_s')} ({P('upload.mb_s')} MB/s; cp until close {P('upload.close_s')} s)",
             f"ceiling {ceiling_s:.2f} s ({PARTS_IN_FLIGHT} x 20 MB/s)", lambda x: ceiling_s / up(x[0]),
             ">= 0.8x ceiling", lambda v: v >= 0.8),
            ("", "", f"rclone {R('upload.total_s')} s ({R('upload.mb_s')} MB/s; cp until close "
             f"{R('upload.close_s')} s)", lambda x: x[1]["upload"]["total_s"] / up(x[0]), ">= 1.5x rclone",
             lambda v: v >= 1.5) if not skip_rclone else None,
            (f"cp of {2 * size >> 20} MiB until close (MB/s)", P("cp.cp_mb_s"),
             f"`dd conv=fsync` to the staging disk {P('cp.dd_mb_s')}",
             lambda x: x[0]["cp"]["cp_mb_s"] / x[0]["cp"]["dd_mb_s"], ">= 0.8x dd", lambda v: v >= 0.8),
            (f"instant upload of {mib}, cp start → held (s)", P("instant.total_s"),
             f"`{prov.hasher}` of the file from disk {P('instant.hash_s')} s",
             lambda x: x[0]["instant"]["total_s"] / x[0]["instant"]["hash_s"], "<= 1.2x", lambda v: v <= 1.2),
            ("instant upload: body bytes sent", P(f"instant.counters.{prov.body}"), "", None, "0",
             lambda x: x[0]["instant"]["counters"][prov.body] == 0),
            (f"{SMALL_FILES:,} x 4 KiB: API calls per file", P("small.api_calls_per_file"),
             f"rclone: S3 requests per file {R('small.requests_per_file')}", None, "<= 2",
             lambda x: x[0]["small"]["api_calls_per_file"] <= 2),
            (f"{SMALL_FILES:,} x 4 KiB: cp start → all held (s)", f"{P('small.total_s')} (cp {P('small.cp_s')})",
             f"rclone {R('small.total_s')} (cp {R('small.cp_s')})",
             lambda x: x[1]["small"]["total_s"] / x[0]["small"]["total_s"], "(rclone's time / panmount's)",
             None) if not skip_rclone else None,
            (f"{SMALL_FILES:,} x 4 KiB: cp exit status; uploads failed", f"{P('small.cp_status')}; "
             + " / ".join("none" if r["small"]["failed"] is None else "SOME" for r in pm), "", None,
             "0; none (no 429 surfacing)", lambda x: x[0]["small"]["cp_status"] == 0 and x[0]["small"]["failed"] is None),
            (f"peak RSS, four {mib} uploads at once (MiB)",
             f"{P('rss.rss_peak_mib')} (all held in {P('rss.total_s')} s)",
             f"rclone, one upload: {R('upload.rss_peak_mib')}", None, "<= 256",
             lambda x: x[0]["rss"]["rss_peak_mib"] <= 256),
        ]
        lines += [f"## {name}", "", "| measurement | panmount | compared with | ratio | target | met |",
                  "|---|---|---|---|---|---|"]
        for row in filter(None, rows):
            label, mine, other, ratio, target, ok = row
            shown = both(pairs, ratio) if ratio else ""
            met = "" if ok is None else (verdict(pairs, ratio, ok) if ratio else verdict(pairs, ok, bool))
            lines.append(f"| {label} | {mine} | {other} | {shown} | {target} | {met} |")
        lines += ["", "1-minute load before / after each measurement: " + "; ".join(
            f"run {i + 1}: upload {r['upload']['load']}, cp {r['cp']['load']}, small {r['small']['load']}, "
            f"rss {r['rss']['load']}" for i, r in enumerate(pm)), ""]
    for name, why in result["not_measured"].items():
        lines += [f"## {name}", "", f"Not measured: {why}", ""]
    return "\n".join(lines) + "\n"


def main():
    global SMALL_FILES
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--providers", default="pikpak,123pan")
    ap.add_argument("--skip-rclone", action="store_true")
    ap.add_argument("--small-files", type=int, default=SMALL_FILES, help="(fewer for a quick check of the harness)")
    ap.add_argument("--bin", default=os.environ.get("PANMOUNT_BIN", "target/release/panmount"))
    ap.add_argument("--work", default="/var/tmp", help="a disk folder for sources, staging and the simulator's data")
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--logs", help="copy the mounters' and the simulator's logs here at the end")
    ap.add_argument("--report-only", metavar="JSON", help="write write.md again from a write.json, run nothing")
    a = ap.parse_args()
    if a.report_only:
        result = json.loads(Path(a.report_only).read_text())
        SMALL_FILES = result["params"]["small_files"]
        (Path(a.out) / "write.md").write_text(report(result, result["params"]["size_mib"] * MiB))
        return
    SMALL_FILES = a.small_files
    binary = Path(a.bin).resolve()
    size = a.size_mib * MiB
    wanted = a.providers.split(",")
    work = Path(tempfile.mkdtemp(prefix="panmount-write-", dir=a.work))
    try:
        env = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
               "kernel": platform.release(), "load_start": load(),
               "panmount_rev": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                              cwd=HERE).stdout.strip(),
               "rclone": "" if a.skip_rclone else subprocess.run(["rclone", "version"], capture_output=True,
                                                                 text=True).stdout.splitlines()[0]}
        net = NetPath(30.0, work)
        env["connect_ms"] = net.rtt_ms
        src = make_sources(work, size)
        runs, not_measured = [], {}
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        for n in range(a.runs):
            log(f"run {n + 1} of {a.runs}")
            run = {}
            # One fresh simulator per provider: the simulated providers share the data dir, and
            # one's files would be the other's (123pan's listing hashes every file it lists).
            for name in wanted + ([] if a.skip_rclone else ["rclone"]):
                sim, provs = start_sim(binary, work, net, [name])
                try:
                    if name == "rclone":
                        run["rclone"] = rclone_run(work, sim, src)
                    elif provs:
                        run[name] = panmount_run(binary, work, sim, provs, provs[0], src)
                    else:
                        not_measured[name] = ("the simulator has no upload store for it (its knobs have no "
                                              "`store_bytes_per_sec`)")
                finally:
                    sim.close()
            runs.append(run)
            env["load_end"] = load()
            result = {"environment": env, "providers": [p for p in wanted if p in run],
                      "not_measured": not_measured,
                      "params": {"size_mib": a.size_mib, "runs": len(runs), "skip_rclone": a.skip_rclone,
                                 "per_request_bytes_per_sec": PER_REQUEST, "parts_in_flight": PARTS_IN_FLIGHT,
                                 "rclone_flags": RCLONE_FLAGS, "small_files": SMALL_FILES, "small_size": SMALL_SIZE},
                      "runs": runs}
            (out / "write.json").write_text(json.dumps(result, indent=1) + "\n")
            (out / "write.md").write_text(report(result, size))
        print((out / "write.md").read_text())
    finally:
        teardown()  # nothing mounted or running in `work` before it is removed
        if a.logs:
            Path(a.logs).mkdir(parents=True, exist_ok=True)
            for f in work.glob("*.log"):
                shutil.copy(f, a.logs)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
