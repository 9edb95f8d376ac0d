"""What examining a file through a process's root costs, against a plain ``os.stat``.

    .venv/bin/python bench/root_paths.py [--files 1000] [--runs 7]

The fact gatherer stats each module file and each directory on its path through
``/proc/PID/root`` (issue 14). Per round, in alternation so that machine noise hits all
alike, it stats the same regular files of /usr/lib/x86_64-linux-gnu three ways:

- peer: ``os.stat(path)`` (what the gatherer did before: the host's file);
- openat2: :func:`probes.procfs.stat_in_root` with ``openat2(RESOLVE_IN_ROOT)``;
- walk: the same with the component-by-component fallback (kernels before 5.6).

Prints the median microseconds per file and the ratio to the peer's median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probes import procfs

LIBDIR = "/usr/lib/x86_64-linux-gnu"
ROOT = "/proc/self/root"


def _files(n: int) -> list[str]:
    names = sorted(os.listdir(LIBDIR))
    return [p for p in (os.path.join(LIBDIR, name) for name in names) if os.path.isfile(p)][:n]


def _timed(run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    paths = _files(args.files)

    def peer() -> None:
        for path in paths:
            os.stat(path)

    def openat2() -> None:
        for path in paths:
            procfs.stat_in_root(ROOT, path)

    def walk() -> None:
        saved = procfs._openat2_state[:]
        procfs._openat2_state[:] = [False]
        try:
            for path in paths:
                procfs.stat_in_root(ROOT, path)
        finally:
            procfs._openat2_state[:] = saved

    ways = {"peer: os.stat": peer, "openat2 in root": openat2, "component walk": walk}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.runs):
        for name, run in ways.items():
            times[name].append(_timed(run) / len(paths) * 1e6)
    floor = statistics.median(times["peer: os.stat"])
    print(f"{len(paths)} files, {args.runs} rounds (median us per file)")
    print(f"{'way':18} {'us/file':>8} {'x peer':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:18} {median:8.1f} {median / floor:7.1f}")


if __name__ == "__main__":
    main()
