"""Replay throughput and trace size: the rba trace format against JSON lines.

    .venv/bin/python bench/trace_replay.py [--events 10000000] [--json-events 1000000]

Writes a synthetic trace of a realistic mix of kinds (bench/trace_workload.py) with the
real TraceWriter, then times ReplaySource draining it (open + CRC-checked index + every
event decoded into numpy batches, as ``rba replay`` does). The same events are encoded as
JSON lines (one object per event, strings inline) and decoded back into the same numpy
records, on a prefix of ``--json-events`` (JSON is too slow for 10M in a sane time).
Also prints bytes per event with and without compression. Medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.trace_workload import WALL_START_NS, generate
from probes.events import EVENT_DTYPE, StringTable, comm_text
from probes.replay import ReplaySource
from probes.trace import TraceWriter

PIECE = 1_000_000
SCALARS = [
    n
    for n in EVENT_DTYPE.names or ()
    if n not in ("saddr", "daddr", "comm") and not n.startswith("str_")
]


# What behavior.recording expects of a window's trace, so `rba replay` can read this one.
START = {
    "format": "rba-trace",
    "purpose": "capture",
    "run_id": "bench",
    "window": {"started_at_ns": WALL_START_NS, "duration_s": 3600.0},
    "sources": ["ebpf"],
    "options": {"probes": "ebpf", "poll_interval": 1.0, "rules": None, "redact_cmdline": False},
}


def write_trace(path: str, n: int, *, compress: bool) -> StringTable:
    strings = StringTable()
    w = TraceWriter(path, START, strings, compress=compress, flush_interval=3600)
    for i in range(0, n, PIECE):
        ev = generate(min(PIECE, n - i), seed=i, strings=strings)
        for j in range(0, len(ev), 4096):  # the size of a live read() batch
            w.add_events(ev[j : j + 4096])
    end = {"ended_at_ns": WALL_START_NS + 3600 * 10**9, "partial": False, "events": n,
           "stats": {"ebpf": {"events": n, "lost": 0, "gaps": []}}, "notices": []}  # fmt: skip
    w.close(end)
    return strings


def replay_rate(path: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    source = ReplaySource(path)
    source.start(StringTable())
    n = 0
    while not source.exhausted:
        n += len(source.read(0))
    return n / (time.perf_counter() - t0), n


class FedAt:
    """An observer that notes when replay has fed every event (progress reaches total)."""

    def __init__(self) -> None:
        self.at = 0.0

    def progress(self, done: float, total: float, detail: str) -> None:
        if done >= total and not self.at:
            self.at = time.perf_counter()

    def notice(self, message: str) -> None:
        pass


def assessment_rates(path: str) -> tuple[float, float]:
    """The whole of ``rba replay`` on ``path``: (events/s through aggregation, seconds
    of evaluation at the end, which depend on distinct keys, not on events)."""
    from behavior.recording.loading import load_recording
    from behavior.recording.replay import replay

    fed = FedAt()
    t0 = time.perf_counter()
    report = replay(load_recording(path), fed)
    done = time.perf_counter()
    return report.run.events / (fed.at - t0), done - fed.at


def to_json_lines(ev: np.ndarray, strings: StringTable) -> bytes:
    lines = []
    for rec in ev:
        obj = {name: rec[name].item() for name in SCALARS}
        obj["saddr"] = bytes(rec["saddr"]).hex()
        obj["daddr"] = bytes(rec["daddr"]).hex()
        obj["comm"] = comm_text(rec["comm"])
        for f in ("str_a", "str_b", "str_c"):
            obj[f] = strings.get(int(rec[f]))
        lines.append(json.dumps(obj, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def json_decode_rate(blob: bytes) -> float:
    t0 = time.perf_counter()
    strings = StringTable()
    rows = blob.splitlines()
    out = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for i, line in enumerate(rows):
        obj = json.loads(line)
        rec = out[i]
        for f in ("str_a", "str_b", "str_c"):
            rec[f] = strings.intern(obj.pop(f))
        rec["saddr"] = np.frombuffer(bytes.fromhex(obj.pop("saddr")), np.uint8)
        rec["daddr"] = np.frombuffer(bytes.fromhex(obj.pop("daddr")), np.uint8)
        rec["comm"] = obj.pop("comm").encode()
        for k, v in obj.items():
            rec[k] = v
    return len(rows) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--json-events", type=int, default=1_000_000)
    parser.add_argument("--e2e-events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rba-bench-") as tmp:
        rows = []
        for compress in (True, False):
            path = os.path.join(tmp, f"bench-{compress}.rbt")
            t0 = time.perf_counter()
            write_trace(path, args.events, compress=compress)
            write_s = time.perf_counter() - t0
            size = os.path.getsize(path)
            rates = [replay_rate(path)[0] for _ in range(args.repeat)]
            label = "rba trace, zlib chunks" if compress else "rba trace, uncompressed"
            rows.append(
                (
                    label,
                    args.events,
                    size / args.events,
                    statistics.median(rates),
                    args.events / write_s,
                )
            )
            os.unlink(path)
        path = os.path.join(tmp, "e2e.rbt")
        write_trace(path, args.e2e_events, compress=True)
        e2e_runs = [assessment_rates(path) for _ in range(args.repeat)]
        e2e = statistics.median(r[0] for r in e2e_runs)
        e2e_finish = statistics.median(r[1] for r in e2e_runs)
        os.unlink(path)
        strings = StringTable()
        ev = generate(args.json_events, seed=0, strings=strings)
        t0 = time.perf_counter()
        blob = to_json_lines(ev, strings)
        enc = args.json_events / (time.perf_counter() - t0)
        rates = [json_decode_rate(blob) for _ in range(args.repeat)]
        rows.append(
            (
                "JSON lines",
                args.json_events,
                len(blob) / args.json_events,
                statistics.median(rates),
                enc,
            )
        )
    print(
        f"{'format':26s} {'events':>10s} {'bytes/event':>12s} {'replay Mev/s':>13s} "
        f"{'write Mev/s':>12s} {'replay vs JSON':>15s}"
    )
    json_rate = rows[-1][3]
    for label, n, per, rate, wrate in rows:
        print(
            f"{label:26s} {n:>10d} {per:>12.1f} {rate / 1e6:>13.2f} {wrate / 1e6:>12.2f} "
            f"{rate / json_rate:>14.0f}x"
        )
    print(
        f"whole rba replay of {args.e2e_events} events (zlib trace): fed through the "
        f"aggregator at {e2e / 1e6:.2f} M events/s, then {e2e_finish:.1f}s of evaluation"
    )


if __name__ == "__main__":
    main()
