"""The client side of the control socket, used by ``rba run|status|stop|findings``."""

from __future__ import annotations

import argparse
import errno
import socket
import time
from typing import Any

from behavior.daemon.config import DEFAULT_SOCKET
from behavior.daemon.protocol import (
    MAX_REPLY_BYTES,
    ProtocolError,
    RemoteError,
    Request,
    encode_request,
    parse_reply,
    read_line,
)
from behavior.interface import UsageError


class DaemonError(UsageError):
    """The daemon could not be reached, or refused the request (the message says which)."""


def call(socket_path: str, request: Request, *, timeout: float = 30.0) -> Any:
    """Send ``request`` to the daemon at ``socket_path`` and return its result."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            _connect(sock, socket_path, timeout)
            sock.sendall(encode_request(request))
            sock.shutdown(socket.SHUT_WR)
            line = read_line(sock, MAX_REPLY_BYTES)
        except FileNotFoundError as e:
            raise DaemonError(
                f"no daemon socket at {socket_path} (is `rba daemon` running?)"
            ) from e
        except PermissionError as e:
            raise DaemonError(
                f"permission denied on {socket_path}: the control socket is for root only"
            ) from e
        except ConnectionRefusedError as e:
            raise DaemonError(f"nothing listens on {socket_path} (is `rba daemon` running?)") from e
        except (TimeoutError, socket.timeout) as e:  # distinct classes on Python 3.9
            raise DaemonError(f"the daemon did not answer within {timeout:g}s") from e
        except ProtocolError as e:
            raise DaemonError(f"bad reply from the daemon: {e}") from e
        except OSError as e:
            if e.errno in (errno.ECONNRESET, errno.EPIPE):
                raise DaemonError("the daemon closed the connection (request refused)") from e
            raise DaemonError(f"cannot talk to the daemon at {socket_path}: {e.strerror}") from e
    try:
        return parse_reply(line)
    except RemoteError as e:
        raise DaemonError(str(e)) from e
    except ProtocolError as e:
        raise DaemonError(f"bad reply from the daemon: {e}") from e


def _connect(sock: socket.socket, path: str, timeout: float) -> None:
    # A Unix socket whose backlog is full fails at once with EAGAIN instead of waiting.
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TimeoutError from None
            time.sleep(0.05)


def add_socket_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--socket PATH`` option shared by the client commands."""
    parser.add_argument(
        "--socket",
        default=DEFAULT_SOCKET,
        help=f"the daemon's control socket (default {DEFAULT_SOCKET})",
    )
