"""Capture overhead: what recording a trace costs over ``rba assess`` alone, under load.

    .venv/bin/python bench/trace_capture.py [--rate 5000] [--window 10] [--repeat 3]

Runs the real CLI (root, eBPF) for a window while a load generator opens and closes
``--rate`` loopback TCP connections a second. It compares three modes, interleaved:
- ``rba assess``;
- ``rba assess --record TRACE``;
- ``rba capture``.
It reports the CPU seconds each rba process used from the moment its window opened to
its exit, which leaves out bcc's compile at start. It also reports the events seen, and
the trace's size per event. Medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RBA = [sys.executable, "-m", "behavior"]
READY = re.compile(r"^rba: window open")
CLK_TCK = os.sysconf("SC_CLK_TCK")

LOAD = """
import socket, sys, time
port, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
done, start = 0, time.monotonic()
while (now := time.monotonic()) - start < seconds:
    due = start + done / rate
    if due > now:
        time.sleep(due - now)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00")
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        pass
    s.close()
    done += 1
print(done / (time.monotonic() - start))
"""


def serve(listener: socket.socket) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def one_run(mode: str, window: float, rate: float, port: int, tmp: str) -> dict[str, float]:
    trace = os.path.join(tmp, f"{mode}.rbt")
    report = os.path.join(tmp, f"{mode}.json")
    common = ["--duration", f"{window:g}s", "--probes", "ebpf"]
    argv = {
        "assess": [*RBA, "assess", *common, "--format", "json", "--output", report],
        "assess --record": [*RBA, "assess", *common, "--format", "json", "--output", report,
                            "--record", trace],
        "capture": [*RBA, "capture", *common, "--output", trace],
    }[mode]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if READY.match(line):
            break
    else:
        raise SystemExit(f"{mode}: window never opened")
    at_open = cpu_seconds(proc.pid)
    load = subprocess.run(
        [sys.executable, "-c", LOAD, str(port), str(rate), str(window - 1)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{mode}: exit {proc.returncode}")
    out = {
        "cpu": usage.ru_utime + usage.ru_stime - at_open,
        "rate": float(load.stdout),
        "trace_bytes": 0.0,
        "events": 0.0,
    }
    if os.path.exists(trace):
        info = subprocess.run(
            [*RBA, "trace", "info", trace, "--format", "json"],
            cwd=REPO, capture_output=True, text=True, check=True,
        )  # fmt: skip
        described = json.loads(info.stdout)
        out["trace_bytes"] = os.path.getsize(trace)
        out["events"] = described["events"]
        os.unlink(trace)
    if os.path.exists(report):
        out["events"] = json.loads(Path(report).read_text())["run"]["events"]
        os.unlink(report)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--window", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    port = listener.getsockname()[1]
    threading.Thread(target=serve, args=(listener,), daemon=True).start()
    modes = ["assess", "assess --record", "capture"]
    results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="rba-bench-capture-") as tmp:
        for _ in range(args.repeat):
            for mode in modes:
                results[mode].append(one_run(mode, args.window, args.rate, port, tmp))
                time.sleep(1)
    base = statistics.median(r["cpu"] for r in results["assess"])
    print(f"window {args.window:g}s, target {args.rate:g} connections/s, "
          f"medians of {args.repeat}")  # fmt: skip
    print(f"{'mode':18s} {'conn/s':>8s} {'events':>9s} {'CPU s':>7s} {'vs assess':>10s} "
          f"{'CPU us/event':>13s} {'trace MB':>9s} {'B/event':>8s}")  # fmt: skip
    for mode in modes:
        rs = results[mode]
        cpu = statistics.median(r["cpu"] for r in rs)
        per_event = statistics.median(1e6 * r["cpu"] / max(1.0, r["events"]) for r in rs)
        events = statistics.median(r["events"] for r in rs)
        size = statistics.median(r["trace_bytes"] for r in rs)
        per = f"{size / events:8.1f}" if size and events else f"{'-':>8s}"
        print(
            f"{mode:18s} {statistics.median(r['rate'] for r in rs):>8.0f} {events:>9.0f} "
            f"{cpu:>7.2f} {100 * (cpu - base) / base:>+9.1f}% {per_event:>13.1f} "
            f"{size / 1e6:>9.2f} {per}"
        )


if __name__ == "__main__":
    main()
