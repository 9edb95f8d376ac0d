"""insecure-login-accepted for real: a telnet client logs in to inetutils telnetd on this
host (over loopback, so the client rules stay silent while the server rule speaks)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support import clients
from tests.support.assess import AssessRun
from tests.support.servers import ServerSet

pytestmark = [pytest.mark.ebpf, pytest.mark.root]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_telnet_login_to_this_host_is_an_accepted_insecure_login(tmp_path: Path) -> None:
    port = _free_port()
    with ServerSet(tmp_path, None) as servers:
        telnetd = servers.telnetd("127.0.0.1", port)
        with AssessRun(tmp_path, duration=5, probes="ebpf") as run:
            session = clients.telnet("127.0.0.1", port)
    report = run.report
    [accepted] = report.select("insecure-login-accepted", protocol="telnet", server="telnetd")
    assert accepted["severity"] == "Medium" and accepted["count"] >= 1
    assert accepted["evidence"]["program"] in ("/bin/login", "/usr/bin/login")
    # Loopback: the telnet client itself is not a client finding.
    assert not [
        f
        for f in report.findings
        if f["rule_id"].startswith("insecure-client")
        and session.pid in (f["evidence"].get("pids") or [])
    ]
    # The listener is the inetd-style accept loop (python) on a high port: the telnetd it
    # started serves the connection and names the protocol (issue 15).
    [served] = report.select("insecure-server-protocol", port=port)
    assert served["evidence"]["protocol"] == "telnet"
    assert served["evidence"]["serving_programs"] == ["/usr/sbin/telnetd"]
    assert served["evidence"]["process"]["pid"] == telnetd.pid
    assert telnetd.pid
