"""The control socket's protocol: one JSON object per line, each way, one request per
connection.

Request: ``{"op": "status"}``, ``{"op": "run", "template": NAME}``,
``{"op": "stop", "run": RUN_ID}`` or ``{"op": "findings", "run": RUN_ID, "format": FMT}``,
terminated by ``\\n`` and at most :data:`MAX_REQUEST_BYTES` long.
Reply: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "one line"}``.

Anything else (not UTF-8, not JSON, unknown op, wrong types, too long, closed before the
newline) is answered with an error reply; it never reaches the daemon's logic.
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from behavior.formats import Format

MAX_REQUEST_BYTES = 64 * 1024
MAX_REPLY_BYTES = 256 * 1024 * 1024
REQUEST_FORMATS: tuple[str, ...] = tuple(f.value for f in Format)
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_OPS: dict[str, tuple[str, ...]] = {
    "status": (),
    "run": ("template",),
    "stop": ("run",),
    "findings": ("run", "format"),
}


class ProtocolError(Exception):
    """A request (or reply) that does not follow the protocol; the message says how."""


class RemoteError(ProtocolError):
    """The daemon understood the request and refused it; the message is its reason."""


@dataclass(frozen=True)
class StatusRequest:
    """``rba status``: runs, templates and health."""

    op: ClassVar[str] = "status"


@dataclass(frozen=True)
class RunRequest:
    """``rba run``: start a run of a template now."""

    template: str
    op: ClassVar[str] = "run"


@dataclass(frozen=True)
class StopRequest:
    """``rba stop``: end a collecting run early."""

    run: str
    op: ClassVar[str] = "stop"


@dataclass(frozen=True)
class FindingsRequest:
    """``rba findings``: a finished run's stored report."""

    run: str
    format: str = "json"
    op: ClassVar[str] = "findings"


Request = Union[StatusRequest, RunRequest, StopRequest, FindingsRequest]
_KINDS: dict[str, type[Request]] = {
    kind.op: kind for kind in (StatusRequest, RunRequest, StopRequest, FindingsRequest)
}


def parse_request(line: bytes) -> Request:
    """Validate one request line (without its newline)."""
    try:
        data = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ProtocolError("request is not UTF-8") from e
    except json.JSONDecodeError as e:
        raise ProtocolError(f"request is not JSON: {e.msg} at column {e.colno}") from e
    except RecursionError as e:
        raise ProtocolError("request is nested too deeply") from e
    if not isinstance(data, dict):
        raise ProtocolError("request must be a JSON object")
    op = data.get("op")
    if not isinstance(op, str) or op not in _OPS:
        raise ProtocolError(f"unknown op {op!r}: use one of {', '.join(_OPS)}")
    allowed = {"op", *_OPS[op]}
    extra = sorted(set(data) - allowed)
    if extra:
        raise ProtocolError(f"{op}: unexpected field {extra[0]!r}")
    fields = {key: data[key] for key in _OPS[op] if key in data}
    for key, value in fields.items():
        if not isinstance(value, str):
            raise ProtocolError(f"{op}: field {key!r} must be a string")
    return make_request(op, **fields)


def make_request(op: str, **fields: str) -> Request:
    """The request ``op`` with ``fields`` (strings), validated. Raises ProtocolError."""
    kind = _KINDS.get(op)
    if kind is None:
        raise ProtocolError(f"unknown op {op!r}: use one of {', '.join(_OPS)}")
    needs = _OPS[op]
    if "template" in needs and not fields.get("template"):
        raise ProtocolError("run: field 'template' is required")
    if "run" in needs and not _RUN_ID.match(fields.get("run", "")):
        raise ProtocolError(f"{op}: field 'run' must be a run id")
    if fields.get("format", "json") not in REQUEST_FORMATS:
        raise ProtocolError(f"findings: format must be one of {', '.join(REQUEST_FORMATS)}")
    return kind(**fields)


def encode_request(request: Request) -> bytes:
    """The wire form of ``request``."""
    body: dict[str, str] = {"op": request.op}
    for key in _OPS[request.op]:
        body[key] = getattr(request, key)
    return json.dumps(body).encode() + b"\n"


def encode_reply(result: Any) -> bytes:
    """A success reply."""
    return json.dumps({"ok": True, "result": result}, separators=(",", ":")).encode() + b"\n"


def encode_error(message: str) -> bytes:
    """An error reply."""
    return json.dumps({"ok": False, "error": message}).encode() + b"\n"


def read_line(sock: socket.socket, limit: int, *, deadline: float | None = None) -> bytes:
    """Read up to the first newline (excluded). The socket's timeout applies to each recv;
    ``deadline`` (a time.monotonic() value) bounds the whole line, so a peer that trickles
    bytes cannot hold the connection forever.

    Raises ProtocolError when more than ``limit`` bytes come without a newline, or the peer
    closes (or half-closes) before sending one; TimeoutError past the timeout or deadline."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
        try:
            chunk = sock.recv(min(65536, limit + 1 - size))
        except socket.timeout as e:  # not yet TimeoutError on Python 3.9
            raise TimeoutError from e
        if not chunk:
            what = "empty request" if size == 0 else f"request ended after {size} bytes"
            raise ProtocolError(f"{what} without a newline")
        newline = chunk.find(b"\n")
        if newline >= 0:
            if size + newline > limit:
                break
            chunks.append(chunk[:newline])
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    raise ProtocolError(f"message exceeds {limit} bytes")


def parse_reply(line: bytes) -> Any:
    """The result of a reply line; RemoteError carries the daemon's error message."""
    try:
        data = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"the daemon's reply is not JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        raise ProtocolError("the daemon's reply is malformed")
    if not data["ok"]:
        raise RemoteError(str(data.get("error", "unknown error")))
    return data.get("result")
