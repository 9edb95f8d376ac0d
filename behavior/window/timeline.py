"""The window's timeline, for the HTML report's plots.

Findings carry first/last seen and a count, which cannot show *when* traffic happened.
:class:`TimelineCounter` folds each batch the assessment sees into per-second counts
(connections by protocol, accepts per listening port) and the exec events; at the end
:meth:`TimelineCounter.build` turns them, with the observations and the findings, into a
small JSON-ready dict that :class:`~behavior.interface.Report` carries as ``timeline``.

Size is bounded whatever the window: at most :data:`MAX_BUCKETS` buckets per series,
:data:`MAX_LISTENERS` listeners with at most :data:`MAX_MARKS` accept marks each, and
:data:`MAX_EXECS` execs (totals say how many there were). Times are seconds from the
window start, from the events' own wall clock, so a replay gives the same timeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from behavior.interface import Finding, Listener, Observations
from behavior.subjects import FileSubject, processes_of
from probes.events import EventArray, Source, StringTable
from probes.lanes import Lane, LaneArray, classify, grouping

SERIES = ("tcp-out", "tcp-in", "udp-out")  # outbound TCP, accepted TCP, outbound UDP
MAX_BUCKETS = 60
MAX_LISTENERS = 40
MAX_MARKS = 200
MAX_EXECS = 200
MAX_EXEC_ROWS = 100_000  # exec events kept for matching against the flagged binaries
_NS = 1_000_000_000


# Series index of a lane (see SERIES), MAYBE_OUT, EXEC or NO_SERIES. eBPF reports an
# outbound TCP connection as a connect (counted) and an active established (not counted
# again); polling sees only the established one, so an active established is MAYBE_OUT
# until its source is known.
NO_SERIES, MAYBE_OUT, EXEC = len(SERIES), len(SERIES) + 1, len(SERIES) + 2
_SERIES_OF = grouping(
    {
        Lane.TCP_CONNECT: 0,
        Lane.TCP_ACCEPTED: 1,
        Lane.UDP_SEND: 2,
        Lane.TCP_OUT_ESTABLISHED: MAYBE_OUT,
        Lane.EXEC: EXEC,
    },
    NO_SERIES,
)


def _per_second(
    ts_ns: npt.NDArray[np.uint64], keys: npt.NDArray[np.intp], nkeys: int
) -> Iterator[tuple[int, int, int]]:
    """(key, second, count) for each (key, whole second) that has events; keys < nkeys."""
    secs = (ts_ns // np.uint64(_NS)).astype(np.int64)
    base = int(secs.min())
    # np.unique, not a dense bincount: a hostile trace may put timestamps years apart,
    # and the work must stay bounded by the batch, not by the time span it covers.
    cells, counts = np.unique((secs - base) * nkeys + keys, return_counts=True)
    for index, count in zip(cells.tolist(), counts.tolist()):
        offset, key = divmod(index, nkeys)
        yield key, base + offset, count


class TimelineCounter:
    """Per-second connection counts, per-port accept seconds, and exec events."""

    def __init__(self) -> None:
        self._connections: dict[tuple[int, int], int] = {}  # (series, second) -> count
        self._accepts: dict[tuple[int, int], int] = {}  # (netns << 16 | port, second) -> n
        self._execs: list[tuple[int, int, int]] = []  # (ts_ns, pid, filename id)
        self.execs_seen = 0

    def fold(self, events: EventArray, lanes: LaneArray | None = None) -> None:
        """Count one batch (the same batches the assessment folds; ``lanes``: their
        :func:`classify`, if known)."""
        if len(events) == 0:
            return
        lane = _SERIES_OF[classify(events) if lanes is None else lanes]
        maybe = np.flatnonzero(lane == MAYBE_OUT)
        if len(maybe):
            polled = events["source"][maybe] == Source.POLL
            lane[maybe] = np.where(polled, 0, NO_SERIES)
        counted = np.flatnonzero(lane < NO_SERIES)
        if len(counted):
            ts = events["ts_wall"][counted]
            series = lane[counted]
            for index, sec, n in _per_second(ts, series.astype(np.intp), NO_SERIES):
                self._connections[index, sec] = self._connections.get((index, sec), 0) + n
            passive = counted[series == 1]
            if len(passive):
                self._fold_accepts(events, passive)
        execs = events[np.flatnonzero(lane == EXEC)]
        self.execs_seen += len(execs)
        room = MAX_EXEC_ROWS - len(self._execs)
        if len(execs) and room > 0:
            rows = execs[:room]
            self._execs += zip(
                rows["ts_wall"].tolist(), rows["pid"].tolist(), rows["str_a"].tolist()
            )

    def _fold_accepts(self, events: EventArray, passive: npt.NDArray[np.intp]) -> None:
        netns = events["netns"][passive].astype(np.uint64) << np.uint64(16)
        where = netns | events["sport"][passive].astype(np.uint64)
        keys, index = np.unique(where, return_inverse=True)
        for i, sec, n in _per_second(events["ts_wall"][passive], index, len(keys)):
            key = int(keys[i])
            self._accepts[key, sec] = self._accepts.get((key, sec), 0) + n

    def build(
        self, obs: Observations, findings: Sequence[Finding], strings: StringTable
    ) -> dict[str, Any]:
        """The JSON-ready timeline of the window ``obs`` covers."""
        start, end = obs.window_start_ns, max(obs.window_end_ns, obs.window_start_ns + 1)
        bucket_ns = max(_NS, -(-(end - start) // MAX_BUCKETS))
        buckets = max(1, -(-(end - start) // bucket_ns))
        series = {name: [0] * buckets for name in SERIES}
        for (index, sec), n in self._connections.items():
            slot = (sec * _NS - start) // bucket_ns
            if 0 <= slot < buckets:
                series[SERIES[index]][slot] += n
        listeners = sorted(obs.listeners, key=lambda s: (s.port, s.address, s.pid))
        accepts: dict[int, list[int]] = {}  # netns << 16 | port -> accept seconds
        for (key, sec), _ in sorted(self._accepts.items()):
            accepts.setdefault(key, []).append(sec)
        flagged = _flagged_paths(findings)
        execs = list(self._flagged_execs(obs, strings, flagged))
        return {
            "bucket_s": bucket_ns / _NS,
            "window_s": round((end - start) / _NS, 3),
            "series": series,
            "listeners": [_listener(s, start, end, accepts) for s in listeners[:MAX_LISTENERS]],
            "listeners_total": len(listeners),
            "execs": execs[:MAX_EXECS],
            "execs_total": len(execs),
            "execs_examined": len(self._execs),
            "execs_seen": self.execs_seen,
        }

    def _flagged_execs(
        self, obs: Observations, strings: StringTable, flagged: Mapping[str, list[str]]
    ) -> Iterator[dict[str, Any]]:
        start = obs.window_start_ns
        for ts, pid, name_id in sorted(self._execs):
            name = strings.get(name_id) if name_id else ""
            proc = obs.processes.get(pid)
            exe = name if name in flagged else (proc.exe if proc else "")
            if exe in flagged:
                yield {
                    "t_s": round(max(0, ts - start) / _NS, 3),
                    "pid": pid,
                    "exe": exe,
                    "rule_ids": flagged[exe],
                }


def _listener(
    listener: Listener, start: int, end: int, accepts: Mapping[int, list[int]]
) -> dict[str, Any]:
    """One listener's lifetime in the window and its accepts, as seconds from the start.
    Accepts are matched on (network namespace, port); a listener whose namespace is
    unknown (0) takes the accepts of its port in any namespace."""
    began = max(listener.started_ns, start)
    if listener.netns:
        seconds = accepts.get(listener.netns << 16 | listener.port, [])
    else:
        seconds = sorted(s for k, v in accepts.items() if k & 0xFFFF == listener.port for s in v)
    marks = [(sec * _NS - start) / _NS for sec in seconds if start - _NS < sec * _NS <= end]
    return {
        "port": listener.port,
        "address": listener.address,
        "pid": listener.pid,
        "comm": listener.comm,
        "start_s": round((began - start) / _NS, 3),
        "end_s": round(min(end - start, began - start + listener.listening_ns) / _NS, 3),
        "before_window": listener.before_window,
        "accepted": listener.accepted,
        "accept_marks_s": [round(max(0.0, m), 3) for m in marks[:MAX_MARKS]],
    }


def _flagged_paths(findings: Iterable[Finding]) -> dict[str, list[str]]:
    """Executable paths the findings name, each with the rule ids that name it."""
    paths: dict[str, list[str]] = {}
    for finding in findings:
        subject = finding.subject
        if subject is None:
            continue
        candidates = [p.exe for p in processes_of(subject)[:1]]
        if isinstance(subject, FileSubject):
            candidates = [subject.path]
        for path in candidates:
            if isinstance(path, str) and path and finding.rule_id not in paths.get(path, []):
                paths.setdefault(path, []).append(finding.rule_id)
    return paths
