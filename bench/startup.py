"""How long ``rba assess`` makes the user wait around its window, against bcc's floor.

    .venv/bin/python bench/startup.py [--runs 7] [--window 1]

Per round, in alternation so that machine noise hits both alike:

- floor: a fresh interpreter loads a one-tracepoint program with bcc
  (``BPF(text="TRACEPOINT_PROBE(sched, sched_process_exec) { return 0; }")``, which
  compiles, loads and attaches it), timed from spawn to its "loaded" line;
- rba: a fresh ``rba assess --duration WINDOWs --output FILE --format json``, timed from
  spawn to its "window open" line (open), from the window's end (open + WINDOW) to the
  report file appearing (close; written atomically, by rename), and to the process's
  exit (exit).

Prints the medians and the ratios to the floor's median (issue 19: open <= 3x, close
<= 2x). Needs root and bcc.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

FLOOR = (
    "import sys\n"
    "from bcc import BPF\n"
    'BPF(text=b"TRACEPOINT_PROBE(sched, sched_process_exec) { return 0; }")\n'
    'sys.stderr.write("loaded\\n")\n'
)


@dataclass
class Round:
    floor: float
    open: float
    close: float
    exit: float


def time_floor() -> float:
    """Seconds from spawn to a one-tracepoint program loaded and attached."""
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", FLOOR], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    loaded = time.perf_counter() - began
    proc.wait()
    if line.strip() != "loaded":
        raise SystemExit(f"the floor program failed: {line}{proc.stderr.read()}")
    return loaded


def time_assess(window: float, output: Path) -> tuple[float, float, float]:
    """(spawn to window open, window end to report written, window end to exit)."""
    output.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "behavior", "assess", "--duration", f"{window:g}s"]
    argv += ["--output", str(output), "--format", "json"]
    began = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True)
    written: list[float] = []
    watcher = threading.Thread(target=_watch, args=(output, proc, began, written))
    watcher.start()
    assert proc.stderr is not None
    opened = None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if opened is None and "window open" in line:
            opened = time.perf_counter() - began
    proc.wait()
    exited = time.perf_counter() - began
    watcher.join()
    if proc.returncode != 0 or opened is None or not written:
        raise SystemExit(f"rba assess failed ({proc.returncode}): {''.join(lines)}")
    end = opened + window
    return opened, written[0] - end, exited - end


def _watch(path: Path, proc: subprocess.Popen[str], began: float, out: list[float]) -> None:
    while proc.poll() is None and not path.exists():
        time.sleep(0.001)
    if path.exists():
        out.append(time.perf_counter() - began)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--window", type=float, default=1.0, help="seconds")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (bcc)")
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "report.json"
        time_floor()  # warm the page cache for both
        time_assess(args.window, output)
        for _ in range(args.runs):
            floor = time_floor()
            rounds.append(Round(floor, *time_assess(args.window, output)))
    report(rounds, args.window)
    return 0


def report(rounds: list[Round], window: float) -> None:
    floor = statistics.median(r.floor for r in rounds)
    print(f"{len(rounds)} rounds, {window:g} s windows; floor = bcc loads one tracepoint")
    print(f"{'measure':<34}{'median s':>9}{'min s':>8}{'max s':>8}{'vs floor':>10}")
    rows = (
        ("floor: spawn to loaded", "floor"),
        ("rba: spawn to window open", "open"),
        ("rba: window end to report written", "close"),
        ("rba: window end to exit", "exit"),
    )
    for label, name in rows:
        values = [getattr(r, name) for r in rounds]
        median = statistics.median(values)
        print(
            f"{label:<34}{median:>9.3f}{min(values):>8.3f}{max(values):>8.3f}"
            f"{median / floor:>9.2f}x"
        )
    paired = statistics.median(r.open / r.floor for r in rounds)
    print(f"open / floor, median of per-round ratios: {paired:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
