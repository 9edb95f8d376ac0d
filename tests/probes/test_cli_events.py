"""``rba events`` end to end: real CLI processes watching a real scenario."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RBA, REPO, run_rba
from tests.probes.conftest import Listener
from tests.support.other_user import OtherUserPython


def _start_events(*args: str, prefix: list[str] | None = None) -> subprocess.Popen[str]:
    """Start ``rba events --json`` and return once it has printed its first event."""
    proc = subprocess.Popen(
        [*(prefix or []), *RBA, "events", "--json", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("{"), proc.stderr.read() if proc.stderr else first
    proc.first_line = first  # type: ignore[attr-defined]
    return proc


def _finish(proc: subprocess.Popen[str]) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()  # not communicate(): it would skip what readline() buffered
    err = proc.stderr.read()  # small: one notice at most
    assert proc.wait(timeout=60) == 0, err
    lines = [json.loads(line) for line in [proc.first_line, *out.split("\n")[:-1]]]  # type: ignore[attr-defined]
    summary = lines.pop()["summary"]
    return lines, summary, err


def _scenario(server: Listener, program: Path) -> int:
    """Burst of 500 connects, a short exec, a UDP send to :161 from a child process.
    Returns the pid of the UDP sender."""
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(500)]
    for s in socks:
        s.close()
    blink = subprocess.run([str(program)], check=False)
    assert blink.returncode == 3
    udp = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
            ".sendto(b'x', ('127.0.0.1', 161))",
        ]
    )
    udp.wait()
    return udp.pid


@pytest.mark.ebpf
def test_events_auto_prints_the_scenario_live(
    listener_factory: Callable[..., Listener], short_program: Path
) -> None:
    proc = _start_events("--duration", "4s")
    server = listener_factory("127.0.0.1")
    udp_pid = _scenario(server, short_program)
    events, summary, err = _finish(proc)
    assert err == ""
    assert summary["sources"] == ["ebpf", "poll"]
    # Losses are counted, never silent: the summary must carry the count. It is not
    # asserted to be 0: about one run in five here reported ~200 lost during the burst
    # (cause not yet established), while every scenario event below still
    # arrived. Exact loss accounting is tested in test_ebpf.py under forced overflow.
    assert isinstance(summary["stats"]["ebpf"]["lost"], int), summary
    connects = [e for e in events if e["kind"] == "tcp_connect" and e["dport"] == server.port]
    assert len(connects) == 500 and {e["pid"] for e in connects} == {os.getpid()}
    passive = [
        e for e in events if e["kind"] == "tcp_established" and e.get("sport") == server.port
    ]
    assert len([e for e in passive if e["direction"] == "passive"]) == 500
    assert {e["pid"] for e in passive if e["direction"] == "passive"} == {server.pid}
    execs = [e for e in events if e["kind"] == "exec" and e["filename"] == str(short_program)]
    assert len(execs) == 1 and execs[0]["ppid"] == os.getpid()
    udp = [e for e in events if e["kind"] == "udp_send" and e["pid"] == udp_pid]
    assert [(e["daddr"], e["dport"]) for e in udp] == [("127.0.0.1", 161)]


def test_events_poll_runs_the_same_scenario_and_states_coverage(
    listener_factory: Callable[..., Listener], short_program: Path
) -> None:
    proc = _start_events("--duration", "3s", "--probes", "poll", "--poll-interval", "0.5s")
    server = listener_factory("127.0.0.1")
    _scenario(server, short_program)
    events, summary, err = _finish(proc)
    assert summary["sources"] == ["poll"]
    assert summary["coverage"].startswith("polling only, every 0.5s")
    assert "polling only" in err and len(err.splitlines()) == 1
    assert {e["source"] for e in events} == {"poll"}
    listens = [e for e in events if e["kind"] == "tcp_listen" and e["sport"] == server.port]
    assert [e["pid"] for e in listens] == [server.pid]


@pytest.mark.root
def test_unprivileged_run_says_one_line_and_polls(other_user: OtherUserPython) -> None:
    proc = subprocess.run(
        other_user.argv("-m", "behavior", "events", "--duration", "1s"),
        cwd="/",
        env=other_user.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "rba: eBPF unavailable (not root): polling only, every 1s; "
        "connections and processes shorter than that may be missed"
    ]
    assert "-- sources: poll" in proc.stdout
    assert "-- coverage: polling only" in proc.stdout
    required = subprocess.run(
        other_user.argv("-m", "behavior", "events", "--duration", "1s", "--probes", "ebpf"),
        cwd="/",
        env=other_user.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert required.returncode == 2
    assert required.stderr.strip() == "rba events: not root"


def test_bad_duration_is_a_usage_error() -> None:
    proc = run_rba("events", "--duration", "soon")
    assert proc.returncode == 2
    assert proc.stderr.startswith("rba events: invalid duration 'soon'")
