"""What a trace holds, for ``rba trace info``, read without replaying it."""

from __future__ import annotations

from typing import Any

from behavior.recording.header import RecordingError, TraceHeader, stats_to_dict
from behavior.recording.loading import read_end, read_records
from probes.events import Kind, Source
from probes.trace import TraceError, count_events, open_trace


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
    _, last_stats, problems = read_records(index)
    end = read_end(index, problems)
    try:
        header: TraceHeader | None = TraceHeader.from_dict(start)
    except ValueError as e:
        header = None
        problems.insert(0, f"start record unusable: {e}")
    return {
        "path": path,
        "size": index.size,
        "format_version": f"{index.version[0]}.{index.version[1]}",
        "header": _header(header),
        "window": {
            "started_at_ns": header.started_at_ns if header else None,
            "duration_s": header.duration_s if header else None,
            "ended_at_ns": end[0] if end else None,
            "partial": end[1] if end else True,
            "first_event_ns": counts.first_wall_ns,
            "last_event_ns": counts.last_wall_ns,
        },
        "sources": list(header.sources) if header else [],
        "events": index.events,
        "bytes_per_event": round(index.size / index.events, 1) if index.events else None,
        "events_by_kind": {_kind_name(k): n for k, n in sorted(counts.by_kind.items())},
        "events_by_source": {_source_name(s): n for s, n in sorted(counts.by_source.items())},
        "losses": stats_to_dict(end[2] if end else last_stats),
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


def _header(header: TraceHeader | None) -> dict[str, Any]:
    if header is None:
        return {
            "purpose": None,
            "rba_version": None,
            "run_id": None,
            "host": {},
            "kernel": {},
            "options": {},
        }
    full = header.to_dict()
    return {
        key: full[key] for key in ("purpose", "rba_version", "run_id", "host", "kernel", "options")
    }
