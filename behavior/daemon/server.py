"""The control server: a root-only Unix socket answering one request per connection.

Defences, because this socket starts privileged work:
- the socket is created with mode 0600 (umask held while binding, so there is no window
  where it is wider) and the peer's uid is checked again with SO_PEERCRED;
- requests are size-limited, each read has a timeout, and the number of connections
  handled at once is bounded;
- every failure of a request (bad framing, bad JSON, a handler error, a client that
  hangs up) ends that connection only, with an error reply when the client still listens.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from behavior.daemon.protocol import (
    MAX_REQUEST_BYTES,
    ProtocolError,
    Request,
    encode_error,
    encode_reply,
    parse_request,
    read_line,
)
from behavior.interface import RbaError

log = logging.getLogger("rba.daemon")

MAX_CONNECTIONS = 16
BACKLOG = 128
REQUEST_TIMEOUT_S = 5.0  # for the whole request line, however it trickles in
REPLY_TIMEOUT_S = 30.0  # for a client to take its reply


class RequestRefusedError(RbaError):
    """A valid request the daemon will not carry out (unknown template, no such run...)."""


Handler = Callable[[Request], Any]


class ServerError(RbaError):
    """The control socket cannot be set up."""


class ControlServer:
    """Serves ``handler`` on the Unix socket at ``path`` from a background thread."""

    def __init__(self, path: str, handler: Handler) -> None:
        self._path = path
        self._handler = handler
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.requests_served = 0
        self.requests_refused = 0

    def start(self) -> None:
        """Bind the socket (mode 0600) and start accepting. Raises ServerError."""
        directory = os.path.dirname(self._path) or "."
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            self._remove_stale_socket()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old_umask = os.umask(0o177)
            try:
                sock.bind(self._path)
            finally:
                os.umask(old_umask)
            os.chmod(self._path, 0o600)
            sock.listen(BACKLOG)
        except OSError as e:
            raise ServerError(f"cannot create the control socket {self._path}: {e}") from e
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="rba-control", daemon=True)
        self._thread.start()

    def _remove_stale_socket(self) -> None:
        if not os.path.lexists(self._path):
            return
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self._path)
        except OSError:
            os.unlink(self._path)  # nobody listens: a leftover of a crashed daemon
            return
        finally:
            probe.close()
        raise ServerError(f"another daemon already listens on {self._path}")

    def close(self) -> None:
        """Stop accepting and remove the socket file. Safe to call twice."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._closing.is_set():
            readable, _, _ = select.select([self._sock], [], [], 0.2)
            if not readable:
                continue
            try:
                conn, _ = self._sock.accept()
            except OSError as e:
                log.warning("control socket: accept failed: %s", e)
                continue
            if not self._slots.acquire(blocking=False):
                _refuse_busy(conn)
                continue
            threading.Thread(
                target=self._serve, args=(conn,), name="rba-control-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(REQUEST_TIMEOUT_S)
            answer = self._answer(conn)
            conn.settimeout(REPLY_TIMEOUT_S)  # a report can be megabytes
            self._reply(conn, answer)
            _drain(conn)
        finally:
            conn.close()
            self._slots.release()

    def _answer(self, conn: socket.socket) -> bytes:
        uid = _peer_uid(conn)
        if uid not in (0, os.geteuid()):
            self.requests_refused += 1
            log.warning("control socket: refused a connection from uid %d", uid)
            return encode_error("permission denied: the control socket is for root only")
        try:
            deadline = time.monotonic() + REQUEST_TIMEOUT_S
            request = parse_request(read_line(conn, MAX_REQUEST_BYTES, deadline=deadline))
        except (ProtocolError, TimeoutError, OSError) as e:
            self.requests_refused += 1
            reason = "timed out waiting for a request" if isinstance(e, TimeoutError) else str(e)
            log.info("control socket: bad request: %s", reason)
            return encode_error(f"bad request: {reason}")
        try:
            result = self._handler(request)
        except RequestRefusedError as e:
            return encode_error(str(e))
        except Exception as e:  # a bug in one request must not end the daemon
            log.exception("control socket: %s request failed", request.op)
            return encode_error(f"internal error: {type(e).__name__}: {e}")
        self.requests_served += 1
        return encode_reply(result)

    @staticmethod
    def _reply(conn: socket.socket, data: bytes) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(data)


def _refuse_busy(conn: socket.socket) -> None:
    """Answer "busy" without a thread. The request that already arrived (waiting at most
    50 ms) is read first: closing on unread data would reset the connection, and the
    client would lose the reply."""
    with contextlib.suppress(OSError):
        if select.select([conn], [], [], 0.05)[0]:
            conn.setblocking(False)
            conn.recv(MAX_REQUEST_BYTES + 1)
            conn.setblocking(True)
        conn.settimeout(0.5)
        conn.sendall(encode_error("busy: too many connections, retry"))
        conn.shutdown(socket.SHUT_WR)
    conn.close()


def _drain(conn: socket.socket) -> None:
    """Discard what the client still sends (briefly), so that closing does not reset the
    connection before the client has read our reply (e.g. after an oversized request)."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(0.5)
        for _ in range(64):
            if not conn.recv(65536):
                break


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)
