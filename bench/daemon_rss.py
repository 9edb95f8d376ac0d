"""The daemon's resident memory: what it is made of, and that it stays flat.

    .venv/bin/python bench/daemon_rss.py [--minutes 60] [--interval 30] [--split-only]

1. Split. A fresh interpreter imports what the daemon imports, step by step, and
   loads the eBPF program; the growth of its RSS at each step is that step's share
   (numpy, bcc with LLVM and clang, rba's modules, the loaded program). Then the
   running daemon's own RSS, summed per mapping from /proc/PID/smaps (LLVM and clang
   libraries, numpy's, the BPF ring buffers, the heap and other anonymous memory).
2. Soak. A real daemon (tests/daemon/daemon_proc.py: the systemd unit's capabilities)
   runs one window of --minutes under a steady load: a client that connects to a local
   server, sends an HTTP request and reads the reply, and execs /bin/true, about 20
   times a second. The daemon's RSS is sampled every --interval seconds. Printed: the
   samples, and the growth over the second half of the window (a leak grows linearly).

``--source-only`` soaks the probe layer alone instead: this process opens the eBPF
session (content capture on, with polling) and reads it under the same load for
--minutes, sampling its own RSS, so that what the probes keep is told from what the
window's evaluation keeps (per distinct process and connection, by design).

Needs root and bcc.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STEPS = r"""
import ctypes, json, sys
def rss():
    with open("/proc/self/status") as f:
        rows = [l.split() for l in f if l.startswith(("VmRSS", "Rss"))]
    return {name.rstrip(":"): int(kb) / 1024 for name, kb, *_ in rows}
out = [("interpreter", rss())]
import numpy
out.append(("numpy", rss()))
import bcc
out.append(("bcc (libbcc, LLVM, clang libraries)", rss()))
import behavior.daemon.service, behavior.window.assess, behavior.facts.live, probes.backend
out.append(("rba modules the daemon imports", rss()))
from probes.ebpf import EbpfSource
source = EbpfSource()
out.append(("eBPF program compiled and loaded", rss()))
print(json.dumps(out))
"""

LOAD = r"""
import socket, subprocess, sys, threading, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(64)
def serve():
    while True:
        conn, _ = server.accept()
        conn.recv(200)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        conn.close()
threading.Thread(target=serve, daemon=True).start()
while True:
    c = socket.create_connection(server.getsockname())
    c.sendall(b"GET / HTTP/1.0\r\nHost: soak\r\n\r\n")
    c.recv(200)
    c.close()
    subprocess.run(["/bin/true"])
    time.sleep(0.05)
"""


def rss_of(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon, RssFile and RssShmem of ``pid`` in MB."""
    with open(f"/proc/{pid}/status") as f:
        fields = [line.split() for line in f if line.startswith(("VmRSS", "Rss"))]
    return {name.rstrip(":"): int(kb) / 1024 for name, kb, *_ in fields}


def smaps_split(pid: int) -> dict[str, float]:
    """RSS of ``pid`` in MB per kind of mapping."""
    split: dict[str, float] = collections.Counter()
    kind = "other"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split()[0]
            if "-" in first and not first.endswith(":"):
                kind = _kind(line.split()[5] if len(line.split()) > 5 else "")
            elif first == "Rss:":
                split[kind] += int(line.split()[1]) / 1024
    return dict(split)


def _kind(path: str) -> str:
    if any(lib in path for lib in ("libLLVM", "libclang", "libbcc")):
        return "bcc, LLVM, clang libraries"
    if "numpy" in path or "libopenblas" in path or "libgfortran" in path:
        return "numpy libraries"
    if "bpf" in path:
        return "BPF maps (ring buffers)"
    if path in ("", "[heap]"):
        return "heap and anonymous memory"
    if "python" in path:
        return "python interpreter"
    return "other files and stacks"


def split_by_steps() -> None:
    import json

    done = subprocess.run(
        [sys.executable, "-c", STEPS], cwd=REPO, capture_output=True, text=True, check=True
    )
    steps = json.loads(done.stdout.splitlines()[-1])
    print("RSS by import step (a fresh interpreter, MB):")
    print(f"  {'step':<40}{'VmRSS':>8}{'+':>8}{'anon +':>8}{'file +':>8}")
    previous: dict[str, float] = {}
    for name, rss in steps:
        grew = {k: rss[k] - previous.get(k, 0.0) for k in rss}
        print(
            f"  {name:<40}{rss['VmRSS']:>8.1f}{grew['VmRSS']:>8.1f}"
            f"{grew['RssAnon']:>8.1f}{grew['RssFile']:>8.1f}"
        )
        previous = rss


def soak(minutes: float, interval: float) -> None:
    from tests.daemon.daemon_proc import DaemonProcess

    template = f'[[template]]\nname = "soak"\nduration = "{int(minutes * 60)}s"\n'
    with tempfile.TemporaryDirectory() as tmp:
        daemon = DaemonProcess(Path(tmp), template)
        load = subprocess.Popen([sys.executable, "-c", LOAD], stdout=subprocess.DEVNULL)
        try:
            daemon.start()
            run_id = daemon.request("run", template="soak")
            began = time.monotonic()
            samples = []
            end = began + minutes * 60
            while time.monotonic() < end:
                samples.append((time.monotonic() - began, rss_of(daemon.pid)))
                time.sleep(interval)
            split = smaps_split(daemon.pid)
            finished = daemon.wait_finished(run_id, timeout=120)
        finally:
            load.kill()
            load.wait()
            daemon.close()
    print(f"daemon RSS by mapping at the end of the window (MB, run {finished.get('state')}):")
    for kind, mb in sorted(split.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<40}{mb:>8.1f}")
    print(f"  {'total':<40}{sum(split.values()):>8.1f}")
    print(f"daemon RSS over a {minutes:g}-minute window under load (MB):")
    _print_samples(samples, minutes)


def soak_source(minutes: float, interval: float) -> None:
    from probes.backend import open_session
    from probes.events import StringTable

    session = open_session("ebpf")
    load = subprocess.Popen([sys.executable, "-c", LOAD], stdout=subprocess.DEVNULL)
    samples = []
    events = 0
    try:
        session.start(StringTable())
        began = time.monotonic()
        next_sample = began
        while time.monotonic() < began + minutes * 60:
            events += len(session.read(0.2))
            if time.monotonic() >= next_sample:
                samples.append((time.monotonic() - began, rss_of(os.getpid())))
                next_sample += interval
    finally:
        session.stop()
        load.kill()
        load.wait()
    print(f"probe layer alone ({events} events read), RSS of this process (MB):")
    _print_samples(samples, minutes)


def _print_samples(samples: list[tuple[float, dict[str, float]]], minutes: float) -> None:
    print(f"  {'t s':>7}{'VmRSS':>8}{'anon':>8}{'file':>8}")
    for t, rss in samples:
        print(f"  {t:>7.0f}{rss['VmRSS']:>8.1f}{rss['RssAnon']:>8.1f}{rss['RssFile']:>8.1f}")
    half = [rss["VmRSS"] for t, rss in samples if t >= samples[-1][0] / 2]
    if len(half) >= 2:
        print(
            f"second half of {minutes:g} min: first {half[0]:.1f}, last {half[-1]:.1f}, max "
            f"{max(half):.1f}, median {statistics.median(half):.1f} MB; "
            f"growth {half[-1] - half[0]:+.1f} MB"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds")
    parser.add_argument("--split-only", action="store_true")
    parser.add_argument("--source-only", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (bcc)")
    if args.source_only:
        soak_source(args.minutes, args.interval)
        return 0
    split_by_steps()
    if not args.split_only:
        soak(args.minutes, args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
