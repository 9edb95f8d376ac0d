"""The report's timeline: what the assessment core counts for the HTML plots."""

from __future__ import annotations

import json
from typing import Any

from behavior.facts.interface import RecordedFactSource
from behavior.interface import NullObserver, Report
from behavior.window.assess import AssessConfig, Assessment, WindowEnd
from behavior.window.timeline import MAX_BUCKETS, MAX_LISTENERS
from probes.events import EventArray, Flag, Kind, Source, StringTable
from probes.interface import SourceStats
from tests.behavior.synth import SEC, T0, accept, batch, connect, event, listen


def _timeline(window_s: int, make: Any) -> dict[str, Any]:
    strings = StringTable()
    assessment = Assessment(
        AssessConfig(duration_s=window_s, rules=frozenset()),
        strings=strings,
        facts=RecordedFactSource([]),
        observer=NullObserver(),
        started_at_ns=T0,
    )
    rows: list[EventArray] = make(strings)
    for start in range(0, len(rows), 7):  # several batches, as a live window feeds them
        assessment.feed(batch(*rows[start : start + 7]))
    report = assessment.finish(
        WindowEnd(
            ended_at_ns=T0 + window_s * SEC,
            partial=False,
            source_stats={"ebpf": SourceStats(len(rows), 0, ())},
            sources=("ebpf",),
            notices=(),
        )
    )
    assert report.timeline is not None
    return report.timeline


def test_sample_timeline(report: Report) -> None:
    timeline = report.timeline
    assert timeline is not None
    assert (timeline["bucket_s"], timeline["window_s"]) == (1.0, 60.0)
    assert {k: sum(v) for k, v in timeline["series"].items()} == {
        "tcp-out": 17,
        "tcp-in": 3,
        "udp-out": 5,
    }
    assert timeline["series"]["udp-out"][15] == 2  # two sends at 15.0 and 15.5 s
    vsftpd, python = timeline["listeners"]
    assert (vsftpd["port"], vsftpd["accepted"], vsftpd["accept_marks_s"]) == (21, 3, [12, 25, 40])
    assert (python["port"], python["accept_marks_s"]) == (8080, [])
    assert [(e["t_s"], e["pid"], e["exe"]) for e in timeline["execs"]] == [
        (2.0, 10, "/opt/app/bin/app"),
        (3.0, 40, "/opt/tool/bin/tool"),
        (5.0, 20, "/usr/bin/telnet"),
        (44.0, 11, "/opt/app/bin/app"),
    ]
    assert timeline["execs"][0]["rule_ids"] == [
        "software-without-dep",
        "software-without-stack-cookies",
    ]
    assert timeline["execs_seen"] == 4
    json.dumps(timeline, allow_nan=False)  # JSON-safe


def test_a_day_long_window_keeps_sixty_buckets_and_every_count() -> None:
    hours = [0, 1, 1, 5, 23.9]

    def make(s: StringTable) -> list[EventArray]:
        return [connect(s, 5, "198.51.100.1", 80, t=h * 3600) for h in hours]

    timeline = _timeline(24 * 3600, make)
    counts = timeline["series"]["tcp-out"]
    assert len(counts) == MAX_BUCKETS and timeline["bucket_s"] == 1440.0
    assert sum(counts) == 5 and counts[0] == 1 and counts[2] == 2 and counts[59] == 1


def test_an_outbound_connection_counts_once_whatever_the_source() -> None:
    def make(s: StringTable) -> list[EventArray]:
        kw = {"daddr": "198.51.100.1", "dport": 80, "pid": 7}
        return [
            connect(s, 7, "198.51.100.1", 80, t=1),  # eBPF: connect, then established
            event(s, Kind.TCP_ESTABLISHED, t=1.1, flags=Flag.ACTIVE, **kw),
            event(s, Kind.TCP_ESTABLISHED, t=3, flags=Flag.ACTIVE, source=Source.POLL, **kw),
            event(s, Kind.TCP_CLOSE, t=4, **kw),
        ]

    timeline = _timeline(10, make)
    assert timeline["series"]["tcp-out"] == [0, 1, 0, 1, 0, 0, 0, 0, 0, 0]
    assert sum(timeline["series"]["tcp-in"]) == 0


def test_accept_marks_belong_to_the_listener_of_their_namespace() -> None:
    def make(s: StringTable) -> list[EventArray]:
        return [
            listen(s, 1, "0.0.0.0", 80, t=0, netns=111),
            listen(s, 2, "0.0.0.0", 80, t=0, netns=222),
            accept(s, "10.0.0.1", 80, "198.51.100.9", t=2, netns=111),
            accept(s, "10.0.0.2", 80, "198.51.100.9", t=6, netns=222),
            accept(s, "10.0.0.2", 80, "198.51.100.9", t=6.5, netns=222),
        ]

    timeline = _timeline(10, make)
    marks = {s["pid"]: s["accept_marks_s"] for s in timeline["listeners"]}
    assert marks == {1: [2.0], 2: [6.0]}
    assert sum(timeline["series"]["tcp-in"]) == 3


def test_listeners_are_bounded_with_a_total() -> None:
    def make(s: StringTable) -> list[EventArray]:
        return [listen(s, 100 + p, "0.0.0.0", 9000 + p, t=0.5) for p in range(55)]

    timeline = _timeline(10, make)
    assert len(timeline["listeners"]) == MAX_LISTENERS and timeline["listeners_total"] == 55
    assert timeline["listeners"][0]["start_s"] == 0.5


def test_timestamps_years_apart_cost_no_more_than_the_batch() -> None:
    """A crafted trace may carry absurd times; counting must not allocate per second."""
    centuries = 300 * 365 * 24 * 3600  # a dense per-second table would need ~200 GB

    def make(s: StringTable) -> list[EventArray]:
        return [
            connect(s, 7, "198.51.100.1", 80, t=1),
            connect(s, 7, "198.51.100.1", 80, t=centuries),
        ]

    timeline = _timeline(10, make)
    assert timeline["series"]["tcp-out"][1] == 1
