"""``--no-content``: the probes read no payload byte, and every report says so."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from probes.backend import CONTENT_OFF_NOTICE
from tests.conftest import run_rba

pytestmark = [pytest.mark.ebpf]


def _http_exchanges_until(stop: threading.Event) -> threading.Thread:
    """Loopback HTTP requests and replies, every 0.2 s until ``stop`` (the window opens
    only once bcc has compiled, so the exchanges span the whole run)."""

    def work() -> None:
        while not stop.wait(0.2):
            with socket.socket() as server:
                server.bind(("127.0.0.1", 0))
                server.listen()
                with socket.create_connection(server.getsockname()) as client:
                    conn, _ = server.accept()
                    client.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    conn.recv(100)
                    conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
                    client.recv(100)
                    conn.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_no_content_is_stated_in_the_report_and_its_replay(tmp_path: Path) -> None:
    report, trace = tmp_path / "r.json", tmp_path / "t.rbt"
    stop = threading.Event()
    exchanges = _http_exchanges_until(stop)
    result = run_rba(
        "assess", "--duration", "4s", "--probes", "ebpf", "--no-content", "--format", "json",
        "--output", str(report), "--record", str(trace), timeout=120,
    )  # fmt: skip
    stop.set()
    exchanges.join()
    assert result.returncode == 0, result.stderr
    assert CONTENT_OFF_NOTICE in result.stderr
    live = json.loads(report.read_text())
    assert CONTENT_OFF_NOTICE in json.dumps(live["run"])
    replayed = run_rba("replay", str(trace), "--format", "json", timeout=120)
    assert replayed.returncode == 0, replayed.stderr
    assert CONTENT_OFF_NOTICE in json.dumps(json.loads(replayed.stdout)["run"])
    info = run_rba("trace", "info", str(trace), "--format", "json", timeout=60)
    assert '"content": false' in info.stdout
    kinds = json.loads(info.stdout)["events_by_kind"]
    assert kinds.get("tcp_connect", 0) > 0  # the exchanges were seen ...
    assert kinds.get("proto_label", 0) == 0  # ... and none was identified by content
