"""The behaviour-level meaning of a trace: recorder, loader, describe (no root needed)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from behavior.commands.trace import render_info
from behavior.facts.interface import HostFact, ProcessFact
from behavior.recording.describe import describe
from behavior.recording.header import RecordingError, host_identity
from behavior.recording.loading import load_recording
from behavior.recording.recorder import TraceRecorder
from behavior.window.assess import AssessConfig, WindowEnd
from probes.events import Kind, StringTable, empty
from probes.interface import SourceStats
from probes.trace import TraceWriter

HOST = HostFact(hostname="db1", kernel="6.1.0", netns=4026531840)


def _process(cmdline: tuple[str, ...]) -> ProcessFact:
    return ProcessFact(
        key="42@1", pid=42, ppid=1, uid=0, euid=0, exe="/usr/bin/mysql", cmdline=cmdline,
        script=None, modules=("/usr/bin/mysql",), exec_stack=False, seen_ns=1,
    )  # fmt: skip


def _record(path: Path, *, redact: bool, end: bool) -> StringTable:
    strings = StringTable()
    recorder = TraceRecorder(str(path), purpose="capture", redact=redact)
    recorder.fact(HOST)  # before the window opened: kept until begin()
    recorder.begin(
        run_id="r1", host=HOST, started_at_ns=10**18, sources=("ebpf", "poll"), strings=strings,
        config=AssessConfig(duration_s=30, rules=frozenset({"insecure-client-login"})),
    )  # fmt: skip
    batch = empty(3)
    batch["kind"] = Kind.EXEC
    batch["ts_wall"] = 10**18 + 2 * 10**9
    batch["str_b"] = strings.intern("mysql -u root -psecret")
    recorder.events(batch)
    recorder.fact(_process(("mysql", "-u", "root", "-psecret")))
    recorder.stats({"ebpf": SourceStats(3, 1, ("ring full",))})
    if end:
        recorder.end(WindowEnd(
            ended_at_ns=10**18 + 30 * 10**9, partial=False, notices=("n1",),
            source_stats={"ebpf": SourceStats(3, 2, ()), "poll": SourceStats(0, 0, ())},
            sources=("ebpf", "poll"),
        ))  # fmt: skip
    recorder.close()
    return strings


def test_recording_round_trips_the_run(tmp_path: Path) -> None:
    path = tmp_path / "t.rbt"
    _record(path, redact=False, end=True)
    rec = load_recording(str(path))
    # A host fact without a machine id (as before facts had one) takes the header's.
    recorded_host = replace(HOST, machine_id=host_identity()["machine_id"])
    assert rec.run_id == "r1" and rec.host == recorded_host and rec.started_at_ns == 10**18
    assert rec.config.rules == frozenset({"insecure-client-login"})
    assert rec.config.duration_s == 30
    assert rec.ended_at_ns == 10**18 + 30 * 10**9 and not rec.partial
    assert rec.source_stats["ebpf"] == SourceStats(3, 2, ())
    assert rec.sources == ("ebpf", "poll") and rec.notices == ("n1",)
    assert _process(("mysql", "-u", "root", "-psecret")) in rec.facts
    assert rec.problems == ()
    assert rec.index.end is not None and rec.index.end["events"] == 3


def test_early_end_uses_the_last_counters_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "t.rbt"
    _record(path, redact=False, end=False)
    rec = load_recording(str(path))
    assert rec.ended_at_ns is None and rec.partial
    assert rec.source_stats == {"ebpf": SourceStats(3, 1, ("ring full",))}
    assert any("trace ended early" in p for p in rec.problems)
    assert not any("loss counters unknown" in p for p in rec.problems)


def test_redaction_covers_events_and_process_facts(tmp_path: Path) -> None:
    path = tmp_path / "t.rbt"
    _record(path, redact=True, end=True)
    rec = load_recording(str(path))
    assert "secret" not in json.dumps(rec.index.records)
    assert not any("secret" in s for s in rec.index.strings)
    proc = next(f for f in rec.facts if isinstance(f, ProcessFact))
    assert proc.cmdline[0] == "mysql" and all(a.startswith("#") for a in proc.cmdline[1:])
    assert rec.index.start["options"]["redact_cmdline"] is True


def test_describe_states_what_the_trace_holds(tmp_path: Path) -> None:
    path = tmp_path / "t.rbt"
    _record(path, redact=False, end=True)
    info = describe(str(path))
    assert info["events"] == 3 and info["events_by_kind"] == {"exec": 3}
    assert info["losses"]["ebpf"]["lost"] == 2
    assert info["facts"] == {"host": 1, "process": 1}
    assert info["records"] == {"stats": 1}
    assert info["intact"] is True
    text = render_info(info)
    assert "window: 2001-09-09T01:46:40.000Z .. 2001-09-09T01:47:10.000Z (30s of 30s)" in text
    assert "by kind: exec 3" in text and "losses: ebpf: 2 lost of 3" in text


def test_hostile_start_record_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "t.rbt"
    start = {"format": "rba-trace", "host": "x", "kernel": 5, "window": [], "sources": 7,
             "options": None, "run_id": {"a": 1}}  # fmt: skip
    TraceWriter(str(path), start, StringTable()).close({"ended_at_ns": "soon"})
    with pytest.raises(RecordingError, match="malformed start record"):
        load_recording(str(path))
    info = describe(str(path))
    text = render_info(info)
    assert "malformed end record" in text and "window: unknown .. no end marker" in text


def test_unwritable_trace_location_is_refused_before_the_window(tmp_path: Path) -> None:
    from behavior.interface import UsageError

    with pytest.raises(UsageError, match="cannot write trace"):
        TraceRecorder(str(tmp_path / "missing-dir" / "t.rbt"), purpose="capture")
    with pytest.raises(UsageError, match="cannot write trace"):
        TraceRecorder(str(tmp_path), purpose="capture")


def test_random_event_content_replays_without_a_crash(tmp_path: Path) -> None:
    """Well-framed events full of random bytes: what is not an rba event is dropped and
    counted as lost; the rest is assessed (random ports, addresses, pids, flags...)."""
    import numpy as np

    from behavior.interface import NullObserver
    from behavior.recording.replay import replay
    from probes.events import EVENT_DTYPE

    rng = np.random.default_rng(5)
    path = tmp_path / "t.rbt"
    for _ in range(6):
        strings = StringTable([f"/bin/p{i}" for i in range(10)])
        events = rng.integers(0, 256, size=(2000, 120), dtype=np.uint8).view(EVENT_DTYPE)
        events = events.ravel().copy()
        events["kind"] = rng.integers(0, 12, len(events))
        events["source"] = rng.integers(0, 3, len(events))
        events["family"] = rng.choice([0, 4, 6, 9], len(events))
        for field in ("str_a", "str_b", "str_c"):
            events[field] = rng.integers(0, 12, len(events))
        # Times are random too: the timeline's work is bounded by the batch, not by the
        # span its times cover.
        events["ts_wall"] = rng.integers(0, 2**63, len(events))
        recorder = TraceRecorder(str(path), purpose="capture")
        recorder.begin(
            run_id="r", host=HOST, started_at_ns=10**18, sources=("ebpf",), strings=strings,
            config=AssessConfig(duration_s=10),
        )  # fmt: skip
        recorder.events(events)
        recorder.end(
            WindowEnd(10**18 + 10**10, partial=False, source_stats={}, sources=(), notices=())
        )
        recorder.close()
        report = replay(load_recording(str(path)), NullObserver())
        valid = (
            np.isin(events["kind"], [int(k) for k in Kind])
            & np.isin(events["source"], [1, 2])
            & np.isin(events["family"], [0, 4, 6])
        )
        for field in ("str_a", "str_b", "str_c"):
            valid &= events[field] < len(strings)
        assert report.run.events == int(valid.sum())
        assert report.run.lost_events == len(events) - int(valid.sum())
        assert any("malformed events dropped" in note for note in report.run.notes)
