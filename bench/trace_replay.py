"""Replay throughput and trace size: the rba trace format against JSON lines.

    .venv/bin/python bench/trace_replay.py [--events 10000000] [--json-events 1000000]
    .venv/bin/python bench/trace_replay.py --e2e-only --mix processes --e2e-events 2000000

Writes a synthetic trace of a realistic mix of kinds (bench/trace_workload.py) with the
real TraceWriter, then times ReplaySource draining it (open + CRC-checked index + every
event decoded into numpy batches, as ``rba replay`` does). The same events are encoded as
JSON lines (one object per event, strings inline) and decoded back into the same numpy
records, on a prefix of ``--json-events`` (JSON is too slow for 10M in a sane time).
Also prints bytes per event with and without compression. Medians of --repeat runs.

The whole of ``rba replay`` (fold, facts, rules, and rendering the report as JSON and
text) runs on an ``--e2e-events`` trace of the workload ``--mix`` (realistic, connections
or processes: bench/trace_workload.py), timed in wall and in CPU seconds of the process
(its inflating threads included), since a loaded machine distorts CPU time least.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.trace_workload import MIXES, WALL_START_NS, generate
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


def write_trace(path: str, n: int, *, compress: bool, mix: str = "realistic") -> StringTable:
    strings = StringTable()
    w = TraceWriter(path, START, strings, compress=compress, flush_interval=3600)
    for i in range(0, n, PIECE):
        ev = generate(min(PIECE, n - i), seed=i, strings=strings, mix=mix)
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
    """An observer that notes when replay has fed every event (progress reaches total):
    the wall and CPU clocks then."""

    def __init__(self) -> None:
        self.at = 0.0
        self.cpu_at = 0.0

    def progress(self, done: float, total: float, detail: str) -> None:
        if done >= total and not self.at:
            self.at, self.cpu_at = time.perf_counter(), time.process_time()

    def notice(self, message: str) -> None:
        pass


@dataclass(frozen=True)
class EndToEnd:
    """One whole replay: events, and the wall and CPU seconds of its three phases."""

    events: int
    findings: int
    fold_s: float
    fold_cpu_s: float
    evaluate_s: float
    evaluate_cpu_s: float
    render_s: float
    render_cpu_s: float

    @property
    def total_cpu_s(self) -> float:
        return self.fold_cpu_s + self.evaluate_cpu_s + self.render_cpu_s


def end_to_end(path: str) -> EndToEnd:
    """The whole of ``rba replay`` on ``path``, rendering included."""
    from behavior.formats import Format, render
    from behavior.recording.loading import load_recording
    from behavior.recording.replay import replay

    fed = FedAt()
    t0, c0 = time.perf_counter(), time.process_time()
    report = replay(load_recording(path), fed)
    t1, c1 = time.perf_counter(), time.process_time()
    render(Format.JSON, report)
    render(Format.TEXT, report)
    t2, c2 = time.perf_counter(), time.process_time()
    return EndToEnd(
        events=report.run.events,
        findings=len(report.findings),
        fold_s=fed.at - t0,
        fold_cpu_s=fed.cpu_at - c0,
        evaluate_s=t1 - fed.at,
        evaluate_cpu_s=c1 - fed.cpu_at,
        render_s=t2 - t1,
        render_cpu_s=c2 - c1,
    )


def print_end_to_end(runs: list[EndToEnd], mix: str) -> None:
    """The medians of ``runs``, as events/s of CPU and of wall time."""

    def med(name: str) -> float:
        return statistics.median(getattr(r, name) for r in runs)

    events = runs[0].events
    print(
        f"whole rba replay, {mix} mix, {events} events, {runs[0].findings} findings, "
        f"median of {len(runs)} (load {os.getloadavg()[0]:.1f}):"
    )
    print(f"{'phase':10s} {'CPU s':>8s} {'wall s':>8s}")
    for phase in ("fold", "evaluate", "render"):
        print(f"{phase:10s} {med(phase + '_cpu_s'):>8.2f} {med(phase + '_s'):>8.2f}")
    total_cpu = med("total_cpu_s")
    total = med("fold_s") + med("evaluate_s") + med("render_s")
    print(f"{'total':10s} {total_cpu:>8.2f} {total:>8.2f}")
    print(
        f"end to end: {events / total_cpu / 1e6:.2f} M events per CPU second, "
        f"{events / total / 1e6:.2f} M events per wall second"
    )


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
    parser.add_argument("--mix", choices=sorted(MIXES), default="realistic")
    parser.add_argument("--e2e-only", action="store_true", help="only the whole replay")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rba-bench-") as tmp:
        path = os.path.join(tmp, "e2e.rbt")
        write_trace(path, args.e2e_events, compress=True, mix=args.mix)
        e2e_runs = [end_to_end(path) for _ in range(args.repeat)]
        os.unlink(path)
        if args.e2e_only:
            print_end_to_end(e2e_runs, args.mix)
            return
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
    print_end_to_end(e2e_runs, args.mix)


if __name__ == "__main__":
    main()
