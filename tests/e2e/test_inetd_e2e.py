"""Connections belong to the socket that accepted them (issue 15): socket activation
(``systemd-socket-activate --accept --inetd``, which runs without systemd as PID 1)
listens on a non-standard port and runs inetutils telnetd for each connection, the
inetd way; a real telnet client in a peer namespace reaches its login prompt. Under
eBPF and under polling.

Neither the port (2323) nor the listener's owner (systemd-socket-activate) says telnet:
the program it started does, and the finding names it next to the owner.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.assess import AssessRun
from tests.support.clients import _read_until
from tests.support.netns import PeerNamespace, peer_namespace

pytestmark = [pytest.mark.netns, pytest.mark.root]

PORT = 2323
TELNETD = "/usr/sbin/telnetd"


def _wait_listening(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["ss", "-Hltnp", "sport", f"= :{PORT}"],
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout  # fmt: skip
        if f"pid={pid}," in out:
            return
        time.sleep(0.05)
    raise AssertionError(f"the launcher (pid {pid}) is not listening on {PORT}")


def _login_prompt(ns: PeerNamespace, address: str, hold: float = 2.5) -> str:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        ns.cmd(["telnet", address, str(PORT)]),
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    buf = bytearray()
    try:
        _read_until(master, b"login:", 15.0, buf)
        time.sleep(hold)  # a poll sees telnetd serving the connection
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    return buf.decode(errors="replace")


@pytest.mark.parametrize("probes", ["ebpf", "poll"])
def test_inetd_served_telnet_is_an_insecure_service(probes: str, tmp_path: Path) -> None:
    from tests.conftest import BPF_MISSING

    if probes == "ebpf" and BPF_MISSING:
        pytest.skip(f"eBPF unavailable: {BPF_MISSING}")
    if shutil.which("systemd-socket-activate") is None or not os.path.exists(TELNETD):
        pytest.skip("systemd-socket-activate or inetutils-telnetd not installed")
    with peer_namespace() as ns:
        argv = ["systemd-socket-activate", "-l", f"{ns.host_ip}:{PORT}", "--accept", "--inetd"]
        inetd = subprocess.Popen(
            [*argv, TELNETD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_listening(inetd.pid)
            with AssessRun(tmp_path, duration=8, probes=probes) as run:
                output = _login_prompt(ns, ns.host_ip)
        finally:
            inetd.terminate()
            inetd.wait(timeout=10)
    assert "login:" in output, output
    found = run.report.select("insecure-server-protocol", port=PORT, process__pid=inetd.pid)
    assert len(found) == 1, run.report.summary()
    ev = found[0]["evidence"]
    assert ev["protocol"] == "telnet" and ev["basis"] == "program", run.report.summary()
    assert ev["serving_programs"] == [TELNETD]
    assert ev["usage"] == "used" and ev["accepted"] >= 1
