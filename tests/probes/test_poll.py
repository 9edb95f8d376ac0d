"""The psutil polling source and polling-only sessions, with real processes and sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from probes.backend import open_session
from probes.events import Flag, Kind, Source, StringTable
from probes.interface import ProbeError
from probes.poll import PollSource
from tests.probes.conftest import Collector, Listener, select


def test_poll_session_sees_snapshot_listeners_connections_and_processes(
    listener_factory: Callable[..., Listener],
) -> None:
    strings = StringTable()
    before = listener_factory("127.0.0.1")
    session = open_session("poll", poll_interval=0.2)
    assert session.sources == ("poll",)
    assert len(session.notices) == 1 and "polling only" in session.notices[0]
    assert not session.capabilities.sees_every_connection
    session.start(strings)
    collector = Collector(session)
    try:
        during = listener_factory("::")
        held = socket.create_connection(("127.0.0.1", before.port))
        sleeper = subprocess.Popen(["sleep", "2"])

        collector.until(lambda e: len(select(e, kind=Kind.PROC_SNAPSHOT, pid=sleeper.pid)))
        sleeper.wait()  # reaped: gone from the process table
        collector.until(lambda e: len(select(e, kind=Kind.EXIT, pid=sleeper.pid)))
        held.close()
    finally:
        session.stop()
    ev = collector.drain()
    assert set(ev["source"].tolist()) == {Source.POLL}
    old = select(ev, kind=Kind.TCP_LISTEN, sport=before.port)
    assert len(old) == 1 and old[0]["pid"] == before.pid and old[0]["flags"] & Flag.SNAPSHOT
    new = select(ev, kind=Kind.TCP_LISTEN, sport=during.port)
    assert len(new) == 1 and new[0]["pid"] == during.pid and not new[0]["flags"] & Flag.SNAPSHOT
    active = select(ev, kind=Kind.TCP_ESTABLISHED, dport=before.port, pid=os.getpid())
    assert len(active) == 1 and active[0]["flags"] & Flag.ACTIVE
    passive = select(ev, kind=Kind.TCP_ESTABLISHED, sport=before.port, pid=before.pid)
    assert len(passive) == 1 and passive[0]["flags"] & Flag.PASSIVE
    proc = select(ev, kind=Kind.PROC_SNAPSHOT, pid=sleeper.pid)
    assert len(proc) == 1
    assert strings.get(int(proc[0]["str_a"])) == "/usr/bin/sleep"
    assert strings.get(int(proc[0]["str_b"])) == "sleep 2"
    assert proc[0]["ppid"] == os.getpid() and proc[0]["euid"] == os.geteuid()
    assert len(select(ev, kind=Kind.EXIT, pid=sleeper.pid)) == 1
    me = select(ev, kind=Kind.PROC_SNAPSHOT, pid=os.getpid())
    assert len(me) == 1 and me[0]["flags"] & Flag.SNAPSHOT
    stats = session.stats()["poll"]
    assert stats.events == len(ev) and stats.lost == 0


def test_poll_survives_processes_that_come_and_go() -> None:
    """Hundreds of processes vanish mid-poll: counted as gaps or seen, never a crash."""
    source = PollSource(interval=0.02)
    source.start(StringTable())
    polls_at_start = source.polls
    # The shell outlives several polls after its children, so it is always seen alive.
    churn = subprocess.Popen(
        ["sh", "-c", "for i in $(seq 300); do /bin/true & done; wait; sleep 0.3"]
    )
    churn.wait()
    polls_at_end = source.polls
    deadline = time.monotonic() + 20
    while source.polls < polls_at_end + 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    polls_after_churn = source.polls
    source.stop()
    batch = source.read(0.0)
    # The thread kept polling throughout, and after: a poll that began after the shell
    # was reaped reported its EXIT.
    assert polls_at_end > polls_at_start and polls_after_churn >= polls_at_end + 2
    assert source.stats().events == len(batch)
    assert len(select(batch, kind=Kind.EXIT, pid=churn.pid)) == 1


def test_an_unexpected_error_in_the_poll_thread_is_raised_by_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug in a poll must not leave a silently dead thread that reports nothing."""
    source = PollSource(interval=0.02)
    source.start(StringTable())

    def broken(*, initial: bool) -> None:
        raise ValueError("bug")

    monkeypatch.setattr(source, "_poll", broken)
    deadline = time.monotonic() + 10
    with pytest.raises(ProbeError, match="polling failed: ValueError"):
        while time.monotonic() < deadline:
            source.read(0.05)
    source.stop()


def test_poll_interval_must_be_positive() -> None:

    with pytest.raises(ValueError, match="positive"):
        PollSource(interval=0)
    with pytest.raises(ValueError, match="unknown probe choice"):
        open_session("kprobe")


def _utmp_record(kind: int, pid: int, tty: str, user: str, host: str, *, when: int) -> bytes:
    from probes.poll import _UTMP

    fields = (kind, pid, tty.encode(), b"", user.encode(), host.encode(), b"", 0, when, 0)
    return _UTMP.pack(*fields, b"", b"")


def test_wtmp_sessions_of_the_window_are_logins(tmp_path: Path) -> None:
    """A host without a utmp file logs sessions only to wtmp: records appended after the
    window opened are LOGIN events (user, tty, remote host, leader pid), ended by their
    DEAD_PROCESS record; records from before the window are not."""
    from probes.common import EventRows

    wtmp = tmp_path / "wtmp"
    wtmp.write_bytes(_utmp_record(7, 10, "pts/9", "before", "192.0.2.9", when=1))
    strings = StringTable()
    source = PollSource()
    source._strings = strings
    source.wtmp = str(wtmp)
    first = EventRows()
    source._poll_wtmp(first, Flag.SNAPSHOT)
    with wtmp.open("ab") as f:
        f.write(_utmp_record(7, 4242, "pts/3", ".telnet", "198.51.100.2", when=5))
        f.write(_utmp_record(7, 4243, "pts/3", "alice", "198.51.100.2", when=6))
        f.write(_utmp_record(8, 4243, "pts/3", "", "", when=9)[:-10])  # cut: read next time
    rows = EventRows()
    source._poll_wtmp(rows, Flag.NONE)
    with wtmp.open("ab") as f:
        f.write(_utmp_record(8, 4243, "pts/3", "", "", when=9)[-10:])
    source._poll_wtmp(rows, Flag.NONE)
    assert len(first.to_array()) == 0
    events = rows.to_array()
    assert [strings.get(int(e["str_a"])) for e in events] == ["alice", "alice"]
    assert [strings.get(int(e["str_c"])) for e in events] == ["198.51.100.2"] * 2
    assert events["pid"].tolist() == [4243, 4243]
    assert [bool(e["flags"] & Flag.ENDED) for e in events] == [False, True]
