"""Loading a trace back as an assessment's inputs: :func:`load_recording` reads what
:class:`~behavior.recording.recorder.TraceRecorder` wrote. Imports nothing that touches
the live system (no bcc, no psutil).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from behavior.facts.interface import Fact, FactError, HostFact, fact_from_dict
from behavior.recording.header import RecordingError, TraceHeader, stats_from_dict
from behavior.window.assess import AssessConfig
from probes.interface import SourceStats
from probes.trace import TraceError, TraceIndex, open_trace


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
    try:
        header = TraceHeader.from_dict(index.start)
    except ValueError as e:
        raise RecordingError(f"{path}: {e}") from e
    config = AssessConfig(
        duration_s=header.duration_s,
        rules=None if header.rules is None else frozenset(header.rules),
        probes=header.probes,
        poll_interval=header.poll_interval,
        content=header.content,
        own_pid=header.own_pid,
        own_roots=header.own_roots,
    )
    facts, stats, problems = read_records(index)
    end = read_end(index, problems)
    if end is None and not stats:
        problems.append("loss counters unknown: the trace ended before any were recorded")
    host = next((f for f in facts if isinstance(f, HostFact)), None)
    if host is not None and not host.machine_id:  # traces from before host facts had it
        host = replace(host, machine_id=header.host.get("machine_id", ""))
    return Recording(
        index=index,
        config=config,
        run_id=header.run_id,
        host=host,
        started_at_ns=header.started_at_ns,
        ended_at_ns=end[0] if end else None,
        partial=end[1] if end else True,
        source_stats=end[2] if end else stats,
        sources=header.sources,
        notices=end[3] if end else (),
        facts=tuple(facts),
        problems=tuple(problems),
    )


def read_records(index: TraceIndex) -> tuple[list[Fact], dict[str, SourceStats], list[str]]:
    """The trace's facts, its last loss counters, and the problems met reading them."""
    facts: list[Fact] = []
    stats: dict[str, SourceStats] = {}
    malformed = 0
    for record in index.records:
        try:
            if record.get("type") == "fact":
                facts.append(fact_from_dict(record["fact"]))
            elif record.get("type") == "stats":
                stats = stats_from_dict(record["stats"])
        except (FactError, KeyError, TypeError, ValueError, AttributeError, OverflowError):
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


def read_end(
    index: TraceIndex, problems: list[str]
) -> tuple[int, bool, dict[str, SourceStats], tuple[str, ...]] | None:
    """The end marker as (ended_at_ns, partial, stats, notices); None, with a problem
    added, when the trace has none or it is malformed."""
    if index.end is None:
        problems.append(
            "trace ended early (no end marker: the capture was killed or crashed); "
            "findings cover only the recovered part of the window"
        )
        return None
    try:
        end = index.end
        ended_at_ns = int(end["ended_at_ns"])
        if not 0 <= ended_at_ns < 2**63:  # as TraceHeader.check does for the start
            raise ValueError(f"ended_at_ns {ended_at_ns}")
        return (
            ended_at_ns,
            bool(end["partial"]),
            stats_from_dict(end["stats"]),
            tuple(map(str, end["notices"])),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        problems.append(f"trace: malformed end record ignored ({e!r})")
        return None
