"""Replaying a recording: :func:`replay` feeds a trace's events and facts to an
:class:`~behavior.window.assess.Assessment` exactly as the live window did, so the
findings are the same by construction.
"""

from __future__ import annotations

import dataclasses

from behavior.durations import format_duration
from behavior.facts.interface import RecordedFactSource
from behavior.interface import Observer, Report
from behavior.recording.header import RecordingError
from behavior.recording.loading import Recording
from behavior.window.assess import Assessment, WindowEnd, collector_paused
from probes.events import StringTable
from probes.interface import SourceStats
from probes.replay import ReplaySource
from probes.trace import TraceError


def replay(recording: Recording, observer: Observer) -> Report:
    """The report the recorded window gives, marked ``replayed``. Raises RecordingError
    when the trace's events cannot be read at all."""
    # The fold keeps a state per process and the evaluation builds a record per key: the
    # collector would walk them all again and again (see collector_paused).
    with collector_paused():
        return _replay(recording, observer)


def _replay(recording: Recording, observer: Observer) -> Report:
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
    end = WindowEnd(
        ended_at_ns=ended,
        partial=recording.partial,
        source_stats=stats,
        sources=recording.sources,
        notices=(*problems, *recording.notices),
    )
    report = assessment.finish(end)
    return dataclasses.replace(report, run=dataclasses.replace(report.run, replayed=True))
