"""One probe session fanned out to several runs, with a real (polling) probe session."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import numpy as np

from behavior.daemon.sharing import SharedSession
from probes.backend import open_session, snapshot_now
from probes.events import EventArray, Flag, Kind, StringTable


class Collector:
    def __init__(self, *, fail: bool = False) -> None:
        self.batches: list[EventArray] = []
        self.fail = fail
        self.got = threading.Event()
        self.closed = False

    def sink(self, _strings: StringTable, _sources: tuple[str, ...]) -> Collector:
        return self

    def feed(self, batch: EventArray) -> None:
        self.batches.append(batch)
        self.got.set()
        if self.fail:
            raise RuntimeError("this run's fold broke")

    def close(self) -> None:
        self.closed = True

    def pids(self) -> set[int]:
        return {int(pid) for batch in self.batches for pid in batch["pid"]}

    def snapshot_pids(self) -> set[int]:
        first = self.batches[0]
        rows = first[(first["flags"] & Flag.SNAPSHOT) != 0]
        return set(rows[rows["kind"] == Kind.PROC_SNAPSHOT]["pid"].tolist())


def shared() -> SharedSession:
    return SharedSession(lambda: open_session("poll", 0.2), snapshot_now)


def test_fan_out_isolates_a_failing_run_and_closes_when_idle() -> None:
    probes = shared()
    errors: list[tuple[str, Exception]] = []
    good, bad = Collector(), Collector(fail=True)
    try:
        probes.subscribe("bad", bad.sink, lambda k, e: errors.append((k, e)))
        probes.subscribe("good", good.sink, lambda k, e: errors.append((k, e)))
        assert good.got.wait(10) and bad.got.wait(10)
        deadline = time.monotonic() + 10
        while not errors and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [(k, str(e)) for k, e in errors] == [("bad", "this run's fold broke")]
        with subprocess.Popen(["sleep", "2"]) as child:  # something new for the next poll
            deadline = time.monotonic() + 10
            while child.pid not in good.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
            child.kill()
        assert child.pid in good.pids() and len(bad.batches) == 1
        assert probes.health.sessions_opened == 1 and probes.sources() == ("poll",)
        good_sub = probes.unsubscribe("good")
        assert good_sub is not None and good_sub.events > 0
        assert good_sub.final["poll"].lost == 0
        assert not probes.active  # the last run out stopped the session
        assert probes.unsubscribe("bad") is None  # already detached by its failure
    finally:
        probes.close()


def test_a_late_run_gets_its_own_start_snapshot() -> None:
    probes = shared()
    first, late = Collector(), Collector()
    try:
        probes.subscribe("first", first.sink, lambda k, e: None)
        assert first.got.wait(10)
        joined, _ = probes.subscribe("late", late.sink, lambda k, e: None)
        assert late.got.wait(10) and joined.since_ns > 0
        with subprocess.Popen(["sleep", "2"]) as child:  # something new for the next poll
            deadline = time.monotonic() + 10
            while child.pid not in late.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
            child.kill()
        assert child.pid in late.pids() and child.pid in first.pids()
        # Nothing from before the late run's window reached it.
        for batch in late.batches:
            assert batch["ts_mono"].min() >= joined.since_ns
        # Both windows start with a snapshot of what already runs: this very process.
        assert os.getpid() in first.snapshot_pids()
        assert os.getpid() in late.snapshot_pids()
        assert np.all(late.batches[0]["ts_mono"] > first.batches[0]["ts_mono"].max())
        assert probes.health.sessions_opened == 1
    finally:
        probes.close()
    assert not probes.active


def test_a_session_that_cannot_open_fails_the_subscription_only() -> None:
    def broken() -> object:
        raise ValueError("unknown probe choice 'kprobes'")

    probes = SharedSession(broken, snapshot_now)  # type: ignore[arg-type]
    try:
        probes.subscribe("r1", Collector().sink, lambda k, e: None)
    except ValueError as e:
        assert "kprobes" in str(e)
    else:
        raise AssertionError("subscribe should have raised")
    assert not probes.active and probes.health.sessions_opened == 0
