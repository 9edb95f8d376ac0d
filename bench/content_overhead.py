"""What first-payload capture (content identification) costs the traced workload.

Three modes, interleaved round by round so that machine noise hits them alike:

- ``off``: no probes loaded;
- ``ebpf``: the eBPF source without content capture (``EbpfSource(content=False)``);
- ``ebpf+content``: the eBPF source as shipped (first payloads captured and labelled).

Two workloads, each in its own process (the probe reader thread stays in this one):

- ``connect``: N loopback connections, each sending an HTTP request line and reading
  the reply (every one is captured and labelled);
- ``bulk``: one loopback TCP connection carrying SIZE bytes in 64 KiB sendall() calls
  and recv_into() reads (only its first payloads are captured).

Prints the median wall time per mode and the ratio to ``ebpf`` (content's own cost) and
to ``off``. Usage (root): .venv/bin/python bench/content_overhead.py [--rounds 5]
[--connects 2000] [--bulk-mib 1024]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probes.ebpf import EbpfSource
from probes.events import Kind, StringTable

CONNECT = r"""
import socket, sys, threading, time
n = int(sys.argv[1])
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(512)
def serve():
    while True:
        conn, _ = server.accept()
        conn.recv(200)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        conn.close()
threading.Thread(target=serve, daemon=True).start()
address = server.getsockname()
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(n):
    c = socket.create_connection(address)
    c.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
    c.recv(200)
    c.close()
print(time.perf_counter() - t0, time.process_time() - c0)
"""

BULK = r"""
import socket, sys, threading, time
size = int(sys.argv[1])
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
got = []
def sink():
    conn, _ = server.accept()
    buf = bytearray(1 << 16)
    total = 0
    while (n := conn.recv_into(buf)):
        total += n
    got.append(total)
t = threading.Thread(target=sink)
t.start()
block = b"GET /bulk HTTP/1.1\r\n\r\n".ljust(1 << 16, b"x")
c = socket.create_connection(server.getsockname())
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(size // len(block)):
    c.sendall(block)
c.close()
t.join()
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
assert got == [size // len(block) * len(block)], got
print(elapsed, cpu)
"""

MODES = ("off", "ebpf", "ebpf+content")


def _run(code: str, arg: int) -> tuple[tuple[float, float], int]:
    """((wall, CPU) seconds the workload measured, its pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(arg)], stdout=subprocess.PIPE, text=True
    )
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"workload failed with exit code {proc.returncode}")
    wall, cpu = (float(x) for x in out.split())
    return (wall, cpu), proc.pid


def _measure(mode: str, code: str, arg: int) -> tuple[tuple[float, float], int]:
    """((wall, CPU) seconds, PROTO_LABEL events of the workload) of one run."""
    if mode == "off":
        return _run(code, arg)[0], 0
    source = EbpfSource(content=mode == "ebpf+content")
    source.start(StringTable())
    labels = 0
    try:
        seconds, pid = _run(code, arg)
        time.sleep(0.1)
    finally:
        source.stop()
    while len(batch := source.read(0.0)):
        labels += int(((batch["kind"] == Kind.PROTO_LABEL) & (batch["pid"] == pid)).sum())
    return seconds, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connects", type=int, default=2000)
    parser.add_argument("--bulk-mib", type=int, default=1024)
    args = parser.parse_args()
    # Load each program once before timing (bcc compiles on first use).
    for content in (False, True):
        warm = EbpfSource(content=content)
        warm.start(StringTable())
        warm.stop()
    workloads = {
        f"connect x{args.connects}": (CONNECT, args.connects),
        f"bulk {args.bulk_mib} MiB": (BULK, args.bulk_mib << 20),
    }
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    labels: dict[tuple[str, str], int] = {}
    for _ in range(args.rounds):
        for name, (code, arg) in workloads.items():
            for mode in MODES:
                seconds, labelled = _measure(mode, code, arg)
                runs.setdefault((name, mode), []).append(seconds)
                labels[(name, mode)] = min(labels.get((name, mode), labelled), labelled)
    print(
        f"rounds={args.rounds}. wall/cpu: median seconds of the workload process; 'vs X': "
        "median over rounds of the ratio to mode X in the same round (paired, so load "
        "drifts cancel); labels: the workload's own PROTO_LABEL events, fewest over rounds"
    )
    head = f"{'workload':<18}{'mode':<14}{'wall s':>8}{'cpu s':>8}"
    print(f"{head}{'wall/ebpf':>10}{'cpu/ebpf':>10}{'wall/off':>10}{'cpu/off':>9}{'labels':>8}")
    for name in workloads:
        for mode in MODES:
            mine = runs[(name, mode)]
            cells = [statistics.median(r[i] for r in mine) for i in (0, 1)]
            for base in ("ebpf", "off"):
                cells += [_paired(mine, runs[(name, base)], i) for i in (0, 1)]
            print(
                f"{name:<18}{mode:<14}{cells[0]:>8.3f}{cells[1]:>8.3f}{cells[2]:>10.3f}"
                f"{cells[3]:>10.3f}{cells[4]:>10.3f}{cells[5]:>9.3f}{labels[(name, mode)]:>8}"
            )


def _paired(mine: list[tuple[float, float]], base: list[tuple[float, float]], i: int) -> float:
    return statistics.median(a[i] / b[i] for a, b in zip(mine, base, strict=True))


if __name__ == "__main__":
    main()
