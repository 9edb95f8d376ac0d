"""Recording a window: :class:`TraceRecorder` is the
:class:`behavior.window.assess.WindowRecorder` that ``rba capture`` and
``rba assess --record`` hand to :func:`behavior.window.assess.run_assessment`. It writes
the window's events, every fact the live fact source gathers, and the run's identity and
counters into a trace (docs/trace-format.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Mapping
from typing import Any

from behavior.facts.interface import Fact, HostFact, ProcessFact, fact_to_dict
from behavior.formats.output import check_writable
from behavior.interface import UsageError
from behavior.recording.header import (
    RecordingError,
    TraceHeader,
    host_identity,
    kernel_identity,
    rba_version,
    stats_to_dict,
)
from behavior.window.assess import AssessConfig, WindowEnd
from probes.events import EventArray, StringTable
from probes.interface import SourceStats
from probes.trace import CmdlineRedactor, TraceError, TraceWriter

STATS_EVERY_NS = 1_000_000_000


class TraceRecorder:
    """Writes one window into a trace. Thread-safe: facts arrive from gatherer threads.

    ``purpose`` is "capture" or "assess"; ``redact`` hashes command-line arguments (in
    events and in process facts) with a per-trace key. Call :meth:`close` after the
    assessment finished, so the facts gathered while it finished are in the trace."""

    def __init__(self, path: str, *, purpose: str, redact: bool = False) -> None:
        check_writable(path, "trace")  # now, not after the probes took seconds to start
        self.path = path
        self._purpose = purpose
        self._redactor = CmdlineRedactor() if redact else None
        self._writer: TraceWriter | None = None
        self._early: list[dict[str, Any]] = []  # facts gathered before the window opened
        self._lock = threading.Lock()
        self._end: dict[str, Any] | None = None
        self._stats_at = 0

    @property
    def events_written(self) -> int:
        """Events in the file so far (flushed or not)."""
        return self._writer.events_written if self._writer else 0

    def begin(
        self,
        *,
        run_id: str,
        host: HostFact,
        started_at_ns: int,
        config: AssessConfig,
        sources: tuple[str, ...],
        strings: StringTable,
    ) -> None:
        header = TraceHeader(
            purpose=self._purpose,
            rba_version=rba_version(),
            run_id=run_id,
            host=host_identity() | {"hostname": host.hostname},
            kernel=kernel_identity(),
            started_at_ns=started_at_ns,
            duration_s=config.duration_s,
            sources=sources,
            probes=config.probes,
            poll_interval=config.poll_interval,
            content=config.content,
            rules=None if config.rules is None else tuple(sorted(config.rules)),
            redact_cmdline=self._redactor is not None,
            own_pid=config.own_pid,
            own_roots=config.own_roots,
        )
        try:
            writer = TraceWriter(self.path, header.to_dict(), strings, redact=self._redactor)
        except TraceError as e:
            raise RecordingError(str(e)) from e
        with self._lock:
            self._writer = writer
            early, self._early = self._early, []
        for record in early:
            writer.add_record(record)

    def events(self, batch: EventArray) -> None:
        assert self._writer is not None, "begin() first"
        try:
            self._writer.add_events(batch)
        except TraceError as e:
            raise RecordingError(str(e)) from e

    def fact(self, fact: Fact) -> None:
        if self._redactor is not None and isinstance(fact, ProcessFact):
            fact = dataclasses.replace(fact, cmdline=tuple(self._redactor.argv(fact.cmdline)))
        record = {"type": "fact", "fact": fact_to_dict(fact)}
        with self._lock:
            writer = self._writer
            if writer is None:
                self._early.append(record)
                return
        # A write error is kept by the writer; end() and close() report it.
        with contextlib.suppress(TraceError):
            writer.add_record(record)

    def stats(self, source_stats: Mapping[str, SourceStats]) -> None:
        """Loss counters so far (kept at most once a second), so a trace that ends early
        still states its losses up to then."""
        at_ns = time.time_ns()
        if self._writer is None or at_ns - self._stats_at < STATS_EVERY_NS:
            return
        self._stats_at = at_ns
        record = {"type": "stats", "at_ns": at_ns, "stats": stats_to_dict(source_stats)}
        try:
            self._writer.add_record(record)
        except TraceError as e:
            raise RecordingError(str(e)) from e

    def end(self, end: WindowEnd) -> None:
        assert self._writer is not None, "begin() first"
        try:
            self._writer.flush()
        except TraceError as e:
            raise RecordingError(str(e)) from e
        self._end = {
            "ended_at_ns": end.ended_at_ns,
            "partial": end.partial,
            "events": self._writer.events_written,
            "stats": stats_to_dict(end.source_stats),
            "notices": list(end.notices),
        }

    def __enter__(self) -> TraceRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Write what is left and the end marker (none if the window never ended: the
        trace then reads as ended early). Safe to call twice."""
        if self._writer is None:
            return
        try:
            self._writer.close(self._end)
        except TraceError as e:
            raise RecordingError(str(e)) from e


def recorder_for(path: str | None, *, purpose: str, redact: bool) -> TraceRecorder | None:
    """The recorder for ``--record PATH`` (None without it). Raises UsageError for
    ``--redact-cmdline`` without a trace to redact."""
    if path is None:
        if redact:
            raise UsageError("--redact-cmdline needs --record TRACE")
        return None
    return TraceRecorder(path, purpose=purpose, redact=redact)
