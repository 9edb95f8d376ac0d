"""Small pieces shared by the probe sources: clocks, batch hand-over, stated gaps."""

from __future__ import annotations

import collections
import queue
import threading
import time
from typing import Generic, TypeVar

import numpy as np

from probes.events import EventArray, empty

K = TypeVar("K")
V = TypeVar("V")


class RecentMap(Generic[K, V]):
    """A mapping that keeps only the ``limit`` keys added most recently (the oldest
    added is dropped first): memory stays bounded however long the window runs."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._entries: collections.OrderedDict[K, V] = collections.OrderedDict()

    def put(self, key: K, value: V) -> None:
        """Add or update ``key`` (an update keeps the key's place in the order)."""
        self._entries[key] = value
        if len(self._entries) > self._limit:
            self._entries.popitem(last=False)

    def get(self, key: K) -> V | None:
        return self._entries.get(key)

    def pop(self, key: K) -> V | None:
        return self._entries.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def clock_pair() -> tuple[int, int]:
    """(CLOCK_MONOTONIC ns, CLOCK_REALTIME ns) read back to back."""
    return time.monotonic_ns(), time.time_ns()


def wall_offset_ns() -> int:
    """CLOCK_REALTIME minus CLOCK_MONOTONIC, to turn bpf_ktime_get_ns() into wall time."""
    mono, wall = clock_pair()
    return wall - mono


def concat(batches: list[EventArray]) -> EventArray:
    """One batch from several (an empty batch when there are none)."""
    if not batches:
        return empty()
    if len(batches) == 1:
        return batches[0]
    return np.concatenate(batches)


class BatchQueue:
    """Hands batches from a producer thread to the reader, which takes them all at once."""

    def __init__(self) -> None:
        self._queue: queue.Queue[EventArray] = queue.Queue()

    def put(self, batch: EventArray) -> None:
        if len(batch):
            self._queue.put(batch)

    def take(self, timeout: float) -> EventArray:
        """Every batch queued so far, waiting up to ``timeout`` seconds for the first."""
        batches: list[EventArray] = []
        try:
            batches.append(
                self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            )
            while True:
                batches.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return concat(batches)


class GapCounter:
    """Counts things a source could not see, by reason, and states them in one line each."""

    def __init__(self) -> None:
        self._counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def add(self, reason: str, n: int = 1) -> None:
        """Count ``n`` occurrences of ``reason`` (a phrase such as 'process vanished')."""
        with self._lock:
            self._counts[reason] += n

    def count(self, reason: str) -> int:
        return self._counts[reason]

    def statements(self) -> tuple[str, ...]:
        """One line per reason, e.g. '3 x process vanished during a poll'."""
        with self._lock:
            return tuple(f"{n} x {reason}" for reason, n in sorted(self._counts.items()))


class EventRows:
    """Collects events field by field and turns them into one batch."""

    def __init__(self) -> None:
        self._rows: list[dict[str, object]] = []

    def add(self, **fields: object) -> None:
        """Add one event; fields not given are zero. ``comm`` may be str or bytes."""
        comm = fields.get("comm")
        if isinstance(comm, str):
            fields["comm"] = comm.encode("utf-8", "replace")[:16]
        self._rows.append(fields)

    def __len__(self) -> int:
        return len(self._rows)

    def to_array(self) -> EventArray:
        batch = empty(len(self._rows))
        for i, row in enumerate(self._rows):
            for name, value in row.items():
                if name in ("saddr", "daddr") and isinstance(value, bytes):
                    batch[name][i] = np.frombuffer(value, dtype=np.uint8)
                else:
                    batch[name][i] = value
        return batch
