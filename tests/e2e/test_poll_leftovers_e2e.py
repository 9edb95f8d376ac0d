"""Polling uses what the kernel still shows (issue 15): a real HTTP server on this host
that closes each connection first, with curl clients in a peer namespace, under
``--probes poll``.

Each request lasts milliseconds, far less than the poll interval, so polling never sees
one ESTABLISHED; the server side's TIME_WAIT sockets stay in /proc/net/tcp for a minute.
They count as accepted connections of the listener, said to be seen as leftovers, so
the listener is no unused port.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.support.assess import AssessRun
from tests.support.netns import peer_namespace
from tests.support.servers import ServerSet

pytestmark = [pytest.mark.netns, pytest.mark.root]

HTTP_PORT = 80
REQUESTS = 3


def test_server_closed_connections_count_as_accepted_under_polling(tmp_path: Path) -> None:
    with peer_namespace() as ns, ServerSet(tmp_path, None) as servers:
        server = servers.http(ns.host_ip, HTTP_PORT)
        with AssessRun(tmp_path, duration=6, probes="poll") as run:
            for _ in range(REQUESTS):
                argv = ["curl", "-sS", "--http1.0", "--max-time", "5"]
                done = ns.run([*argv, f"http://{ns.host_ip}:{HTTP_PORT}/"])
                assert done.returncode == 0, done.stderr
                time.sleep(0.3)
            ss = subprocess.run(
                ["ss", "-Htn", "state", "time-wait", "sport", f"= :{HTTP_PORT}"],
                capture_output=True, text=True, timeout=5, check=False,
            ).stdout  # fmt: skip
        # The server closed first: its side holds the TIME_WAIT sockets (most of them:
        # a client may close at the same moment).
        waiting = sum(
            f"{ns.host_ip}:{HTTP_PORT} {ns.peer_ip}:" in " ".join(line.split())
            for line in ss.splitlines()
        )
        assert waiting >= 1, ss
    report = run.report
    mine = {"port": HTTP_PORT, "process__pid": server.pid}
    assert report.select("unused-listening-port", **mine) == [], report.summary()
    [found] = report.select("insecure-server-protocol", **mine)
    ev = found["evidence"]
    # Every request was accepted; TIME_WAITs already there at window start (an earlier
    # run's) are not this window's.
    assert ev["usage"] == "used" and 1 <= ev["accepted"] <= REQUESTS, report.summary()
    assert 1 <= ev["seen_as_leftovers"] <= ev["accepted"], report.summary()
