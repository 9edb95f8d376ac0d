"""Replay of a recorded trace as an event source.

It reads only the trace file: no kernel, no /proc, no bcc, no psutil. That is what lets
``rba replay`` run unprivileged on a machine that never saw the capture.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from probes.events import EventArray, Family, Kind, Source, StringTable, empty
from probes.interface import Capabilities, EventSource, SourceStats
from probes.trace import TraceIndex, open_trace, read_events

# Enumerated fields the aggregator decodes: a value outside them is not an rba event.
_ENUMS = {
    "kind": np.array([int(k) for k in Kind], dtype=np.uint8),
    "source": np.array([int(s) for s in Source], dtype=np.uint8),
    "family": np.array([int(f) for f in Family], dtype=np.uint8),
}
_STRING_FIELDS = ("str_a", "str_b", "str_c")


def recorded_capabilities(trace: TraceIndex) -> Capabilities:
    """The capabilities the capture had, as its start record states them (all False when
    the record lacks them: claiming coverage we cannot show would be dishonest)."""
    stated = trace.start.get("capabilities")
    if not isinstance(stated, dict):
        stated = {}
    names = Capabilities.__dataclass_fields__
    return Capabilities(**{name: stated.get(name) is True for name in names})


class ReplaySource(EventSource):
    """Delivers a trace's events, one chunk per read, never waiting.

    Events the trace cannot support (an unknown kind, source or family, a string id
    beyond its string table, as only a corrupt or hostile file has) are dropped and
    counted as lost, with a stated gap, rather than handed to the aggregator."""

    name = "replay"

    def __init__(self, trace: TraceIndex | str) -> None:
        self.trace = trace if isinstance(trace, TraceIndex) else open_trace(trace)
        self.capabilities = recorded_capabilities(self.trace)
        self._batches: Iterator[EventArray] | None = None
        self._remap: npt.NDArray[np.uint32] | None = None
        self._n_strings = len(self.trace.strings)
        self._delivered = 0
        self._dropped = 0
        self.exhausted = False

    @property
    def total_events(self) -> int:
        """Events the trace holds (intact part)."""
        return self.trace.events

    @property
    def delivered(self) -> int:
        """Events delivered so far."""
        return self._delivered

    def start(self, strings: StringTable) -> None:
        ids = np.array([strings.intern(s) for s in self.trace.strings], dtype=np.uint32)
        # A fresh table reproduces the recorded ids exactly; only remap when it did not.
        if not np.array_equal(ids, np.arange(len(ids), dtype=np.uint32)):
            self._remap = ids
        self._batches = read_events(self.trace)

    def read(self, timeout: float) -> EventArray:
        if self._batches is None or self.exhausted:
            return empty()
        batch = next(self._batches, None)
        if batch is None:
            self.exhausted = True
            return empty()
        batch = self._sanitized(batch)
        self._delivered += len(batch)
        return batch

    def stop(self) -> None:
        if self._batches is not None and hasattr(self._batches, "close"):
            self._batches.close()
        self.exhausted = True

    def stats(self) -> SourceStats:
        gaps = [f"trace: {self.trace.damage}"] if self.trace.damage else []
        if self._dropped:
            gaps.append(f"trace: {self._dropped} malformed events dropped")
        return SourceStats(events=self._delivered, lost=self._dropped, gaps=tuple(gaps))

    def _sanitized(self, batch: EventArray) -> EventArray:
        if not len(batch):
            return batch
        top = max(int(batch[f].max()) for f in _STRING_FIELDS)
        known = np.ones(len(batch), dtype=bool)
        for name, allowed in _ENUMS.items():
            known &= np.isin(batch[name], allowed)
        if top >= self._n_strings or not known.all():
            for f in _STRING_FIELDS:
                known &= batch[f] < self._n_strings
            self._dropped += int(len(batch) - known.sum())
            batch = batch[known]
        if self._remap is not None:
            batch = batch.copy()
            for f in _STRING_FIELDS:
                batch[f] = self._remap[batch[f]]
        return batch
