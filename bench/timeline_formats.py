"""Cost of the formats work: the timeline's fold next to the aggregator's, and the time
to render a large report in every format.

The fold part feeds the same synthetic batches as bench/fold_throughput.py (32,768 events:
40% connects, 30% passive establishments, 25% closes, 3% UDP sends, 2% exec/fork/exit) to
an Aggregator alone and to an Aggregator plus a TimelineCounter (what Assessment.feed does),
alternating, and prints the medians. The render part renders a report of N findings
(copies of the sample report's findings with distinct evidence, and its timeline) in every
format and prints the median time and output size.

    .venv/bin/python bench/timeline_formats.py [--batches 300] [--repeats 5] [--findings 5000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fold_throughput import BATCH, make_batch

from behavior.formats import Format, render
from behavior.window.aggregate import Aggregator
from behavior.window.timeline import TimelineCounter
from probes.events import StringTable
from tests.formats.sample import sample_report


def _fold_rate(parts: str, pool: list[np.ndarray], batches: int) -> float:
    agg = Aggregator(StringTable())
    timeline = TimelineCounter()
    start = time.perf_counter()
    for i in range(batches):
        batch = pool[i % len(pool)]
        batch["ts_wall"] += 10**9
        if "aggregator" in parts:
            agg.fold(batch)
        if "timeline" in parts:
            timeline.fold(batch)
    return batches * BATCH / (time.perf_counter() - start)


def fold_table(batches: int, repeats: int) -> None:
    rng = np.random.default_rng(7)
    strings = StringTable()
    pool = [make_batch(rng, strings) for _ in range(4)]
    names = ("aggregator", "aggregator + timeline", "timeline alone")
    rates: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            rates[name].append(_fold_rate(name, pool, batches))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    print(f"{'fold':<28} {'median ev/s':>14}")
    for name in names:
        print(f"{name:<28} {medians[name]:>14,.0f}")
    share = medians["aggregator"] / medians["aggregator + timeline"] - 1
    print(f"{'timeline share of fold time':<28} {share * 100:>13.0f}%")


def render_table(findings: int, repeats: int) -> None:
    sample = sample_report()
    many = tuple(
        replace(f, evidence={**f.evidence, "copy": i})
        for i in range(findings // len(sample.findings) + 1)
        for f in sample.findings
    )[:findings]
    report = replace(sample, findings=many)
    print(f"\n{'format':<12} {'findings':>9} {'median s':>9} {'MB':>7}")
    for fmt in Format:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            text = render(fmt, report)
            times.append(time.perf_counter() - start)
        size = len(text.encode()) / 1e6
        print(f"{fmt.value:<12} {findings:>9} {statistics.median(times):>9.3f} {size:>7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--findings", type=int, default=5000)
    args = parser.parse_args()
    fold_table(args.batches, args.repeats)
    render_table(args.findings, args.repeats)


if __name__ == "__main__":
    main()
