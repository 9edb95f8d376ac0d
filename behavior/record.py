"""Traces at the behaviour level: what a window's recording means, and its replay.

:class:`TraceRecorder` is the :class:`behavior.assess.WindowRecorder` that ``rba capture``
and ``rba assess --record`` hand to :func:`behavior.assess.run_assessment`: it writes the
window's events, every fact the live fact source gathers, and the run's identity and
counters into a trace (docs/trace-format.md). :func:`load_recording` reads them back and
:func:`replay` feeds them to an :class:`~behavior.assess.Assessment` exactly as the live
window did, so the findings are the same by construction.

Replay imports nothing that touches the live system (no bcc, no psutil).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from behavior.assess import AssessConfig, Assessment
from behavior.durations import format_duration
from behavior.errors import RbaError, UsageError
from behavior.facts.interface import (
    Fact,
    FactError,
    HostFact,
    ProcessFact,
    RecordedFactSource,
    fact_from_dict,
    fact_to_dict,
)
from behavior.observer import Observer
from behavior.output import check_writable
from behavior.report import Report
from probes.events import EventArray, Kind, Source, StringTable
from probes.interface import SourceStats
from probes.replay import ReplaySource
from probes.trace import (
    CmdlineRedactor,
    TraceError,
    TraceIndex,
    TraceWriter,
    count_events,
    open_trace,
)

TRACE_FORMAT = "rba-trace"
STATS_EVERY_NS = 1_000_000_000


class RecordingError(RbaError):
    """A trace cannot be written or read; the message is one line."""


def host_identity() -> dict[str, str]:
    """Who this host is, beyond its name: machine id, boot id, OS (empty when unknown)."""

    def first_line(path: str) -> str:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.readline().strip()
        except OSError:
            return ""

    os_name = ""
    with contextlib.suppress(OSError):
        os_name = platform.freedesktop_os_release().get("PRETTY_NAME", "")
    return {
        "hostname": platform.node(),
        "machine_id": first_line("/etc/machine-id"),
        "boot_id": first_line("/proc/sys/kernel/random/boot_id"),
        "os": os_name,
    }


def _kernel() -> dict[str, str]:
    uname = os.uname()
    return {"release": uname.release, "version": uname.version, "machine": uname.machine}


def _stats_to_dict(stats: Mapping[str, SourceStats]) -> dict[str, Any]:
    return {
        name: {"events": s.events, "lost": s.lost, "gaps": list(s.gaps)}
        for name, s in sorted(stats.items())
    }


def _stats_from_dict(data: Any) -> dict[str, SourceStats]:
    if not isinstance(data, dict):
        raise ValueError("stats are not an object")
    return {
        str(name): SourceStats(int(s["events"]), int(s["lost"]), tuple(map(str, s["gaps"])))
        for name, s in data.items()
    }


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
        start = {
            "format": TRACE_FORMAT,
            "purpose": self._purpose,
            "rba_version": _rba_version(),
            "run_id": run_id,
            "host": host_identity() | {"hostname": host.hostname},
            "kernel": _kernel(),
            "window": {"started_at_ns": started_at_ns, "duration_s": config.duration_s},
            "sources": list(sources),
            "options": {
                "probes": config.probes,
                "poll_interval": config.poll_interval,
                "content": config.content,
                "rules": None if config.rules is None else sorted(config.rules),
                "redact_cmdline": self._redactor is not None,
            },
        }
        try:
            writer = TraceWriter(self.path, start, strings, redact=self._redactor)
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
        record = {"type": "stats", "at_ns": at_ns, "stats": _stats_to_dict(source_stats)}
        try:
            self._writer.add_record(record)
        except TraceError as e:
            raise RecordingError(str(e)) from e

    def end(
        self,
        *,
        ended_at_ns: int,
        partial: bool,
        source_stats: Mapping[str, SourceStats],
        notices: Sequence[str],
    ) -> None:
        assert self._writer is not None, "begin() first"
        try:
            self._writer.flush()
        except TraceError as e:
            raise RecordingError(str(e)) from e
        self._end = {
            "ended_at_ns": ended_at_ns,
            "partial": partial,
            "events": self._writer.events_written,
            "stats": _stats_to_dict(source_stats),
            "notices": list(notices),
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


def _rba_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rba")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Recording:
    """A trace read back as an assessment's inputs. ``problems`` are the statements
    replay must add to the report: damage, an early end, unusable records."""

    index: TraceIndex
    config: AssessConfig
    run_id: str
    host: HostFact | None
    started_at_ns: int
    ended_at_ns: int | None  # None when the trace has no end marker
    partial: bool
    source_stats: dict[str, SourceStats]
    sources: tuple[str, ...]
    notices: tuple[str, ...]
    facts: tuple[Fact, ...]
    problems: tuple[str, ...]


def load_recording(path: str) -> Recording:
    """Read a trace written by :class:`TraceRecorder`. Raises RecordingError when
    nothing usable is in it; a damaged or early-ended trace loads with ``problems``."""
    try:
        index = open_trace(path)
    except TraceError as e:
        raise RecordingError(str(e)) from e
    start = index.start
    if start.get("format") != TRACE_FORMAT:
        raise RecordingError(f"{path}: not a trace of an rba window (format field missing)")
    try:
        window = start["window"]
        options = start["options"]
        config = AssessConfig(
            duration_s=float(window["duration_s"]),
            rules=None if options["rules"] is None else frozenset(map(str, options["rules"])),
            probes=str(options["probes"]),
            poll_interval=float(options["poll_interval"]),
            content=bool(options.get("content", True)),  # absent before trace 1.1's rba
        )
        started_at_ns = int(window["started_at_ns"])
        run_id = str(start["run_id"])
        sources = tuple(map(str, start["sources"]))
    except (KeyError, TypeError, ValueError) as e:
        raise RecordingError(f"{path}: malformed start record ({e!r})") from e
    facts, stats, problems = _read_records(index)
    end = _read_end(index, problems)
    if end is None and not stats:
        problems.append("loss counters unknown: the trace ended before any were recorded")
    host = next((f for f in facts if isinstance(f, HostFact)), None)
    return Recording(
        index=index,
        config=config,
        run_id=run_id,
        host=host,
        started_at_ns=started_at_ns,
        ended_at_ns=end[0] if end else None,
        partial=end[1] if end else True,
        source_stats=end[2] if end else stats,
        sources=sources,
        notices=end[3] if end else (),
        facts=tuple(facts),
        problems=tuple(problems),
    )


def _read_records(index: TraceIndex) -> tuple[list[Fact], dict[str, SourceStats], list[str]]:
    facts: list[Fact] = []
    stats: dict[str, SourceStats] = {}
    malformed = 0
    for record in index.records:
        try:
            if record.get("type") == "fact":
                facts.append(fact_from_dict(record["fact"]))
            elif record.get("type") == "stats":
                stats = _stats_from_dict(record["stats"])
        except (FactError, KeyError, TypeError, ValueError, AttributeError):
            malformed += 1
    problems = []
    if index.damage:
        problems.append(
            f"trace damaged: {index.damage}; recovered {index.valid_bytes} of "
            f"{index.size} bytes ({index.events} events)"
        )
    if malformed:
        problems.append(f"trace: {malformed} malformed record(s) skipped")
    return facts, stats, problems


def _read_end(
    index: TraceIndex, problems: list[str]
) -> tuple[int, bool, dict[str, SourceStats], tuple[str, ...]] | None:
    if index.end is None:
        problems.append(
            "trace ended early (no end marker: the capture was killed or crashed); "
            "findings cover only the recovered part of the window"
        )
        return None
    try:
        end = index.end
        return (
            int(end["ended_at_ns"]),
            bool(end["partial"]),
            _stats_from_dict(end["stats"]),
            tuple(map(str, end["notices"])),
        )
    except (KeyError, TypeError, ValueError) as e:
        problems.append(f"trace: malformed end record ignored ({e!r})")
        return None


def replay(recording: Recording, observer: Observer) -> Report:
    """The report the recorded window gives, marked ``replayed``. Raises RecordingError
    when the trace's events cannot be read at all."""
    strings = StringTable()
    source = ReplaySource(recording.index)
    source.start(strings)
    assessment = Assessment(
        recording.config,
        strings=strings,
        facts=RecordedFactSource(recording.facts),
        observer=observer,
        run_id=recording.run_id,
        host=recording.host,
        started_at_ns=recording.started_at_ns,
    )
    last_wall = recording.started_at_ns
    total = max(1, source.total_events)
    try:
        while not source.exhausted:
            batch = source.read(0.0)
            if len(batch):
                last_wall = max(last_wall, int(batch["ts_wall"].max()))
                assessment.feed(batch)
            observer.progress(
                source.delivered, total, f"replayed {source.delivered} of {total} events"
            )
    except TraceError as e:
        raise RecordingError(str(e)) from e
    finally:
        source.stop()
    ended = recording.ended_at_ns
    problems = list(recording.problems)
    if ended is None:
        ended = last_wall
        span = format_duration(max(0, ended - recording.started_at_ns) / 1e9)
        problems.append(
            f"recovered {span} of the {format_duration(recording.config.duration_s)} window"
        )
    stats = dict(recording.source_stats)
    dropped = source.stats()
    if dropped.lost:
        stats["replay"] = SourceStats(dropped.events, dropped.lost, dropped.gaps)
    report = assessment.finish(
        ended_at_ns=ended,
        partial=recording.partial,
        source_stats=stats,
        sources=recording.sources,
        notices=[*problems, *recording.notices],
    )
    return dataclasses.replace(report, run=dataclasses.replace(report.run, replayed=True))


def describe(path: str) -> dict[str, Any]:
    """What a trace holds, JSON-ready, for ``rba trace info``: header, window, event
    counts by kind and source, losses, sources, records and integrity. Raises
    RecordingError when the file is not a readable trace."""
    try:
        index = open_trace(path)
        counts = count_events(index)
    except TraceError as e:
        raise RecordingError(str(e)) from e
    start = index.start
    facts: dict[str, int] = {}
    others: dict[str, int] = {}
    for record in index.records:
        if record.get("type") == "fact" and isinstance(record.get("fact"), dict):
            name = str(record["fact"].get("type"))
            facts[name] = facts.get(name, 0) + 1
        else:
            others[str(record.get("type"))] = others.get(str(record.get("type")), 0) + 1
    _, last_stats, problems = _read_records(index)
    end = _read_end(index, problems)
    window = _object(start.get("window"))
    sources = start.get("sources")
    return {
        "path": path,
        "size": index.size,
        "format_version": f"{index.version[0]}.{index.version[1]}",
        "header": {k: _text(start.get(k)) for k in ("purpose", "rba_version", "run_id")}
        | {k: _object(start.get(k)) for k in ("host", "kernel", "options")},
        "window": {
            "started_at_ns": _integer(window.get("started_at_ns")),
            "duration_s": _number(window.get("duration_s")),
            "ended_at_ns": end[0] if end else None,
            "partial": end[1] if end else True,
            "first_event_ns": counts.first_wall_ns,
            "last_event_ns": counts.last_wall_ns,
        },
        "sources": [str(x) for x in sources] if isinstance(sources, list) else [],
        "events": index.events,
        "bytes_per_event": round(index.size / index.events, 1) if index.events else None,
        "events_by_kind": {_kind_name(k): n for k, n in sorted(counts.by_kind.items())},
        "events_by_source": {_source_name(s): n for s, n in sorted(counts.by_source.items())},
        "losses": _stats_to_dict(end[2] if end else last_stats),
        "facts": dict(sorted(facts.items())),
        "records": dict(sorted(others.items())),
        "strings": len(index.strings),
        "intact": index.damage is None and index.ended_cleanly,
        "problems": problems,
    }


def _kind_name(kind: int) -> str:
    try:
        return Kind(kind).name.lower()
    except ValueError:
        return f"unknown-{kind}"


def _source_name(source: int) -> str:
    try:
        return Source(source).label
    except ValueError:
        return f"unknown-{source}"


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None
