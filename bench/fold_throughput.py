"""Fold throughput and memory of the aggregator on synthetic event streams.

Each size runs in a fresh process (so peak RSS belongs to that size alone) and feeds
batches of a realistic mix: mostly TCP connects, passive establishments and closes, some
UDP sends, and a few percent of execs, forks and exits. Keys are bounded (distinct
processes, remotes and listeners), as on a real host, so memory must stay flat however
many events go through. Prints events/s (median of the repeats) and peak RSS.

    .venv/bin/python bench/fold_throughput.py [--sizes 1e6,1e7,5e7] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

from behavior.window.aggregate import Aggregator
from probes.events import Flag, Kind, Source, StringTable, empty

BATCH = 32_768
POOL = 4  # distinct pre-generated batches, fed in turn with shifted timestamps
PIDS = 2_000
REMOTES = 500
PORTS = (23, 80, 443, 5432, 6379, 8080)
LISTEN_PORTS = 50


def make_batch(rng: np.random.Generator, strings: StringTable) -> np.ndarray:
    """One batch of the mix (kinds by weight, keys from bounded pools)."""
    ev = empty(BATCH)
    kinds = rng.choice(
        [
            Kind.TCP_CONNECT,
            Kind.TCP_ESTABLISHED,
            Kind.TCP_CLOSE,
            Kind.UDP_SEND,
            Kind.EXEC,
            Kind.FORK,
            Kind.EXIT,
        ],
        size=BATCH,
        p=[0.40, 0.30, 0.25, 0.03, 0.006, 0.007, 0.007],
    )
    ev["kind"] = kinds
    ev["source"] = Source.EBPF
    ev["family"] = 4
    ev["netns"] = 4026531840
    ev["pid"] = rng.integers(1000, 1000 + PIDS, BATCH)
    ev["ppid"] = 1
    ev["uid"] = rng.integers(0, 3, BATCH) * 1000
    remote = rng.integers(0, REMOTES, BATCH)
    ev["daddr"][:, 0] = 198
    ev["daddr"][:, 1] = 51
    ev["daddr"][:, 2] = remote // 256
    ev["daddr"][:, 3] = remote % 256
    ev["dport"] = rng.choice(PORTS, BATCH)
    ev["saddr"][:, 0] = 10
    ev["sport"] = rng.integers(8000, 8000 + LISTEN_PORTS, BATCH)
    ev["flags"] = np.where(kinds == Kind.TCP_ESTABLISHED, Flag.PASSIVE, 0)
    ev["str_a"] = strings.intern("/usr/bin/app")
    ev["comm"] = b"app"
    ev["ts_wall"] = np.sort(rng.integers(0, 10**9, BATCH)) + 1_700_000_000 * 10**9
    return ev


def run_one(events: int) -> dict[str, float]:
    """Fold ``events`` events; returns seconds, events/s, keys and peak RSS (MB)."""
    rng = np.random.default_rng(7)
    strings = StringTable()
    pool = [make_batch(rng, strings) for _ in range(POOL)]
    agg = Aggregator(strings)
    batches = events // BATCH
    start = time.perf_counter()
    for i in range(batches):
        batch = pool[i % POOL]
        batch["ts_wall"] += 10**9  # time moves on
        agg.fold(batch)
    seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "events": batches * BATCH,
        "seconds": seconds,
        "rate": batches * BATCH / seconds,
        "rss_mb": rss_mb,
        "keys": agg._connections.size + agg._accepts.size + len(agg._procs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1e6,1e7,5e7")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(int(args.child))))
        return
    print(f"{'events':>12} {'median ev/s':>14} {'min ev/s':>12} {'peak RSS MB':>12} {'keys':>7}")
    for size in (float(s) for s in args.sizes.split(",")):
        runs = []
        repeats = args.repeats if size <= 1e7 else 1
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(size)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(out.stdout))
        rates = [r["rate"] for r in runs]
        print(
            f"{int(runs[0]['events']):>12,} {statistics.median(rates):>14,.0f} "
            f"{min(rates):>12,.0f} {max(r['rss_mb'] for r in runs):>12.0f} "
            f"{int(runs[0]['keys']):>7}"
        )


if __name__ == "__main__":
    main()
