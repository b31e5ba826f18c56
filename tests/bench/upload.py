#!/usr/bin/env python3
"""Upload figures of the write path (issue 13), on the benchmark's `cdn` network path.

Not part of CI. Builds the same real round trip as run.py's `cdn` profile (network namespaces,
30 ms each way through delayq; `NetPath` in run.py), runs the provider simulator behind it with
its object store capped at 20 MB/s per request (the CDN profile's per-connection cap), mounts
a `pikpak` storage of it, writes a file of `--size-mib` into the mount, and reports:

- the write into the mount (until `close` returns) against `dd` into the staging folder's disk;
- the upload after `close`, until `panmount uploads` shows the queue empty (MB/s), and the
  parts in flight (the driver's constant, read back from the simulator's part counter);
- the mounter's CPU seconds for the write and for the upload.

    sudo python3 tests/bench/upload.py [--size-mib 1024] [--bin target/release/panmount]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import NetPath, log  # noqa: E402  (run.py's network path and its teardown at exit)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def knobs(base: str, values: dict):
    req = urllib.request.Request(f"{base}/_sim/pikpak/knobs", data=json.dumps(values).encode(), method="PUT",
                                 headers={"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--bin", default="target/release/panmount")
    ap.add_argument("--delay-ms", type=float, default=30.0)
    ap.add_argument("--per-request-bytes-per-sec", type=int, default=20_000_000)
    a = ap.parse_args()
    binary = str(Path(a.bin).resolve())
    work = Path(tempfile.mkdtemp(prefix="panmount-upload-", dir="/var/tmp"))
    net = NetPath(a.delay_ms, work)
    (work / "data").mkdir()
    (work / "state").mkdir()
    (work / "mp").mkdir()
    port = 47400
    base = f"http://{NetPath.SIM}:{port}"
    sim = subprocess.Popen(["ip", "netns", "exec", NetPath.NS_S, binary, "sim", "--listen", f"{NetPath.SIM}:{port}",
                            "--data", str(work / "data")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/_sim/knobs", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        knobs(base, {"store_bytes_per_sec": a.per_request_bytes_per_sec, "quota_limit": 1 << 40})
        config = work / "c.toml"
        config.write_text(f'state_dir = "{work / "state"}"\n[[storage]]\npath = "/pikpak"\ndriver = "pikpak"\n'
                          f'api_base = "{base}"\nuser_base = "{base}"\nusername = "alice@example.com"\n'
                          f'password = "secret"\n')
        config.chmod(0o600)
        mount = subprocess.Popen([binary, "mount", str(config), "--mountpoint", str(work / "mp")],
                                 stderr=open(work / "mount.log", "w"))
        for _ in range(100):
            if os.path.ismount(work / "mp"):
                break
            time.sleep(0.1)
        src = work / "src.bin"
        with open(src, "wb") as f:
            for _ in range(a.size_mib):
                f.write(os.urandom(1 << 20))
        size = a.size_mib << 20
        t = time.monotonic()
        subprocess.run(["dd", f"if={src}", f"of={work / 'state' / 'plain.bin'}", "bs=1M", "conv=fsync"],
                       check=True, capture_output=True)
        dd_s = time.monotonic() - t
        (work / "state" / "plain.bin").unlink()
        c0, t = cpu_seconds(mount.pid), time.monotonic()
        subprocess.run(["dd", f"if={src}", f"of={work / 'mp' / 'pikpak' / 'big.bin'}", "bs=1M"], check=True,
                       capture_output=True)
        write_s, c1 = time.monotonic() - t, cpu_seconds(mount.pid)
        t = time.monotonic()
        while b"no pending uploads" not in subprocess.run([binary, "uploads", str(config)], capture_output=True).stdout:
            time.sleep(0.2)
        upload_s, c2 = time.monotonic() - t, cpu_seconds(mount.pid)
        counters = json.loads(urllib.request.urlopen(f"{base}/_sim/pikpak/counters", timeout=10).read())
        same = subprocess.run(["cmp", str(src), str(work / "mp" / "pikpak" / "big.bin")]).returncode == 0
        mib = size / (1 << 20)
        print(f"file: {a.size_mib} MiB; path: {a.delay_ms} ms each way, object store {a.per_request_bytes_per_sec / 1e6:.0f} MB/s per request")
        print(f"dd into the staging disk (fsync): {mib / dd_s:.0f} MiB/s")
        print(f"write into the mount until close: {mib / write_s:.0f} MiB/s ({mib / write_s / (mib / dd_s):.2f}x dd), mounter CPU {c1 - c0:.1f} s")
        print(f"upload after close: {upload_s:.1f} s = {mib / upload_s:.1f} MiB/s, mounter CPU {c2 - c1:.1f} s")
        print(f"parts: {counters.get('part_puts')} part PUTs, {counters.get('single_puts')} single PUTs, "
              f"{counters.get('store_body_bytes')} body bytes received; PARTS_IN_FLIGHT parts in flight (drivers/pikpak/upload.rs)")
        print(f"read back through the mount: {'identical' if same else 'DIFFERENT'}")
        mount.terminate()
        mount.wait(timeout=60)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        net.close()
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
