"""The control server on a real Unix socket: framing, limits, permissions, robustness."""

from __future__ import annotations

import os
import select
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from behavior.daemon import server as server_module
from behavior.daemon.client import DaemonError, call
from behavior.daemon.protocol import (
    MAX_REQUEST_BYTES,
    FindingsRequest,
    ProtocolError,
    Request,
    RunRequest,
    StatusRequest,
    StopRequest,
    parse_request,
)
from behavior.daemon.server import ControlServer, RequestRefusedError, ServerError
from tests.support.other_user import OtherUserPython


def handler(request: Request) -> Any:
    if isinstance(request, StatusRequest):
        return {"hello": "world"}
    if isinstance(request, StopRequest):
        raise RequestRefusedError(f"no run {request.run!r}")
    if isinstance(request, RunRequest):
        raise RuntimeError("handler bug")
    return "findings text"


@pytest.fixture
def server() -> Iterator[tuple[ControlServer, str]]:
    # A directory every user can traverse (pytest's tmp_path is not), so that only the
    # socket's own mode and the peer check stand between another user and the daemon.
    public = tempfile.mkdtemp(prefix="rba-ctl-", dir="/tmp")
    os.chmod(public, 0o755)
    path = os.path.join(public, "control.sock")
    srv = ControlServer(path, handler)
    srv.start()
    yield srv, path
    srv.close()
    shutil.rmtree(public)


def raw(path: str, data: bytes, *, half_close: bool = True) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_socket_mode_and_requests(server: tuple[ControlServer, str]) -> None:
    _, path = server
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    assert call(path, StatusRequest()) == {"hello": "world"}
    with pytest.raises(DaemonError, match="no run 'r1'"):
        call(path, StopRequest(run="r1"))
    with pytest.raises(DaemonError, match="internal error: RuntimeError: handler bug"):
        call(path, RunRequest(template="t"))
    assert call(path, StatusRequest()) == {"hello": "world"}


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"\xff\xfe\n", "not UTF-8"),
        (b"garbage\n", "not JSON"),
        (b"[1, 2]\n", "must be a JSON object"),
        (b'{"op": "format-disk"}\n', "unknown op"),
        (b'{"op": "status", "x": 1}\n', "unexpected field 'x'"),
        (b'{"op": "stop", "run": 5}\n', "must be a string"),
        (b'{"op": "stop", "run": "../../etc"}\n', "must be a run id"),
        (b'{"op": "findings", "run": "r", "format": "pdf"}\n', "format must be one of"),
        (b'{"op": "run"}\n', "'template' is required"),
        (b'{"op": "sta', "request ended after 11 bytes without a newline"),
        (b"", "empty request"),
        (b"x" * (MAX_REQUEST_BYTES + 10) + b"\n", f"exceeds {MAX_REQUEST_BYTES} bytes"),
        (b"x" * (4 * MAX_REQUEST_BYTES), f"exceeds {MAX_REQUEST_BYTES} bytes"),
    ],
)
def test_bad_requests_get_an_error_and_the_server_stays_up(
    server: tuple[ControlServer, str], payload: bytes, error: str
) -> None:
    srv, path = server
    reply = raw(path, payload)
    assert reply.startswith(b'{"ok": false') and error.encode() in reply, reply[:200]
    assert call(path, StatusRequest()) == {"hello": "world"}
    assert srv.requests_refused >= 1


def test_client_that_vanishes_mid_request(server: tuple[ControlServer, str]) -> None:
    _, path = server
    for _ in range(20):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.sendall(b'{"op": "status"')
        sock.close()
    assert call(path, StatusRequest()) == {"hello": "world"}


@pytest.mark.root
def test_non_root_user_cannot_connect(
    server: tuple[ControlServer, str], other_user: OtherUserPython
) -> None:
    srv, path = server
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX)\n"
        "try:\n s.connect(sys.argv[1])\nexcept PermissionError:\n sys.exit(13)\n"
        "sys.exit(0)\n"
    )
    result = subprocess.run(
        other_user.argv("-c", code, path),
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 13, result.stderr
    # Even if the mode were widened by mistake, SO_PEERCRED still refuses other users.
    os.chmod(path, 0o666)
    reply = subprocess.run(
        other_user.argv("-m", "behavior", "status", "--socket", path),
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        env=other_user.env(),
    )
    assert reply.returncode == 2, reply.stderr
    assert "permission denied: the control socket is for root only" in reply.stderr
    assert srv.requests_refused == 1


def test_second_server_on_same_socket_is_refused(server: tuple[ControlServer, str]) -> None:
    _, path = server
    with pytest.raises(ServerError, match="another daemon already listens"):
        ControlServer(path, handler).start()


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(path)
    leftover.close()  # the file stays, nobody listens: what a crashed daemon leaves
    srv = ControlServer(path, handler)
    srv.start()
    try:
        assert call(path, StatusRequest()) == {"hello": "world"}
    finally:
        srv.close()
    assert not os.path.exists(path)


def test_parse_request_accepts_the_documented_shapes() -> None:
    assert parse_request(b'{"op": "status"}') == StatusRequest()
    assert parse_request(
        b'{"op": "findings", "run": "r-1.x", "format": "text"}'
    ) == FindingsRequest(run="r-1.x", format="text")
    with pytest.raises(ProtocolError):
        parse_request(b'{"op": "findings"}')


def test_slow_and_idle_clients_cannot_starve_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    # Long enough that the connections below are all taken before the first idle one
    # times out, even on a busy machine; far shorter than the slow client's trickle.
    monkeypatch.setattr(server_module, "REQUEST_TIMEOUT_S", 2.0)
    public = tempfile.mkdtemp(prefix="rba-ctl-", dir="/tmp")
    path = os.path.join(public, "control.sock")
    srv = ControlServer(path, handler)
    srv.start()
    idle = []
    try:
        for _ in range(server_module.MAX_CONNECTIONS):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            idle.append(sock)
        # Connections are accepted in order, so this one comes after every idle one has
        # taken a slot; they hold them until their request timeout.
        with pytest.raises(DaemonError, match="busy: too many connections"):
            call(path, StatusRequest())
        # Each idle client is told it timed out, then closed: a server without a request
        # timeout would leave these reads to hit their own 10 s timeout instead.
        for sock in idle:
            sock.settimeout(10)
            assert b"timed out waiting for a request" in read_all(sock)
            sock.close()
        # The server takes requests again once it has let the idle ones go.
        deadline = time.monotonic() + 10
        while True:
            try:
                assert call(path, StatusRequest()) == {"hello": "world"}
                break
            except DaemonError as e:
                assert "busy" in str(e) and time.monotonic() < deadline, e
                time.sleep(0.05)
        # A client trickling its request a byte every 0.3 s (5 s for the whole line) is
        # cut off by the whole-request deadline: a per-read timeout would let it through.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
            slow.settimeout(10)
            slow.connect(path)
            for byte in b'{"op": "status"}\n':
                if select.select([slow], [], [], 0.3)[0]:
                    break  # the server answered: stop sending
                try:
                    slow.send(bytes([byte]))
                except OSError:
                    break
            reply = read_all(slow)
        assert b"timed out waiting for a request" in reply, reply
        assert call(path, StatusRequest()) == {"hello": "world"}
    finally:
        for sock in idle:
            sock.close()
        srv.close()
        shutil.rmtree(public)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes its end."""
    return b"".join(iter(lambda: sock.recv(65536), b""))
