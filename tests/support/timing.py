"""Time bounds for tests that guard against hangs and runaway work on a shared machine.

A wall-clock bound alone fails whenever another process takes the CPU for a moment (CI
runs on 2 busy cores). The work of a parser is measured in this process's CPU time
instead, which load elsewhere barely moves; the wall-clock bound stays, generous, for a
hang that waits instead of spinning.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

WALL_LIMIT_S = 10.0  # one bounded block; far above any load spike seen on CI
SLACK_CPU_S = 0.5  # for the first-call costs (imports, caches) a reference run paid


def cpu_time_of(work: Callable[[], T]) -> tuple[T, float]:
    """Run ``work``; return its result and the CPU time this process spent on it."""
    started = time.process_time()
    result = work()
    return result, time.process_time() - started


@contextlib.contextmanager
def bounded(reference_cpu_s: float, *, factor: float = 3.0) -> Iterator[None]:
    """Fail if the block takes more than ``factor`` times ``reference_cpu_s`` (the CPU
    time of a known, comparable piece of work) plus :data:`SLACK_CPU_S` of CPU time, or
    more than :data:`WALL_LIMIT_S` of wall-clock time. A block that raises is not judged."""
    limit = factor * reference_cpu_s + SLACK_CPU_S
    cpu0, wall0 = time.process_time(), time.monotonic()
    yield
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    assert cpu <= limit, f"took {cpu:.3f}s of CPU, over {limit:.3f}s"
    assert wall <= WALL_LIMIT_S, f"took {wall:.1f}s of wall-clock time (a hang?)"
