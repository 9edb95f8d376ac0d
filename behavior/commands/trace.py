"""``rba trace info TRACE``: what a trace holds, before replaying it.

Prints the header (who recorded it, on which host and kernel, with which options), the
window, event counts by kind and source, losses, the facts recorded, and whether the file
is intact (and if not, how much of it is readable).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rba trace``."""
    sub = parser.add_subparsers(dest="trace_command", required=True, metavar="ACTION")
    info = sub.add_parser("info", help="print a trace's header, window, counts and losses")
    info.add_argument("trace", metavar="TRACE")
    info.add_argument("--format", choices=("text", "json"), type=str.lower, default="text")


def run(args: argparse.Namespace) -> int:
    """Run ``rba trace ACTION``."""
    from behavior.formats.output import emit
    from behavior.interface import UsageError
    from behavior.recording.describe import describe
    from behavior.recording.header import RecordingError

    try:
        info = describe(args.trace)
    except RecordingError as e:
        raise UsageError(str(e)) from e
    if args.format == "json":
        emit(json.dumps(info, indent=2, sort_keys=True), None)
    else:
        emit(render_info(info), None)
    return 0


def _when(ns: Any) -> str:
    if not isinstance(ns, int) or not 0 <= ns < 2**63:
        return "unknown"
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / 1e9))
        + f".{ns // 1_000_000 % 1000:03d}Z"
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or "none"


def render_info(info: dict[str, Any]) -> str:
    """The text form of :func:`behavior.recording.describe`'s result."""
    head = info["header"]
    host, kernel, options = head["host"], head["kernel"], head["options"]
    window = info["window"]
    lines = [
        f"trace: {info['path']} ({info['size']} bytes, format {info['format_version']}, "
        f"{head.get('purpose')} by rba {head.get('rba_version')})",
        f"run: {head.get('run_id')} on {host.get('hostname')} ({host.get('os')}; "
        f"machine-id {host.get('machine_id') or 'unknown'})",
        f"kernel: {kernel.get('release')} {kernel.get('machine')}",
        f"options: probes {options.get('probes')}, poll every {options.get('poll_interval')}s, "
        f"command lines {'redacted' if options.get('redact_cmdline') else 'kept'}",
    ]
    lines.append(f"window: {_window_text(window)}")
    lines += [
        f"sources: {', '.join(info['sources']) or 'none'}",
        f"events: {info['events']} ({info['bytes_per_event'] or '-'} bytes/event on disk)",
        f"  by kind: {_counts(info['events_by_kind'])}",
        f"  by source: {_counts(info['events_by_source'])}",
    ]
    losses = info["losses"]
    if not losses:
        lines.append("losses: unknown (no counters recorded before the trace ended)")
    for name, stats in losses.items():
        gaps = stats["gaps"]
        lines.append(
            f"losses: {name}: {stats['lost']} lost of {stats['events']}, {len(gaps)} gap(s)"
        )
        lines += [f"  gap: {gap}" for gap in gaps]
    lines.append(f"facts: {_counts(info['facts'])}; strings: {info['strings']}")
    if info["records"]:
        lines.append(f"other records: {_counts(info['records'])}")
    if info["intact"]:
        lines.append("integrity: intact")
    else:
        lines.append(f"integrity: NOT intact; recovered {info['events']} events")
    lines += [f"  {problem}" for problem in info["problems"]]
    return "\n".join(lines)


def _window_text(window: dict[str, Any]) -> str:
    from behavior.durations import format_duration

    started, ended, last = window["started_at_ns"], window["ended_at_ns"], window["last_event_ns"]
    asked = window["duration_s"]
    asked_text = format_duration(asked) if asked is not None else "?"
    if ended is not None:
        span = format_duration(max(0, ended - started) / 1e9) if started is not None else "?"
        state = ", ended early (partial)" if window["partial"] else ""
        return f"{_when(started)} .. {_when(ended)} ({span} of {asked_text}{state})"
    covered = "?"
    if started is not None and last is not None:
        covered = format_duration(max(0, last - started) / 1e9)
    return (
        f"{_when(started)} .. no end marker; last event {_when(last)} "
        f"({covered} of {asked_text} recovered)"
    )
