"""Events as plain dicts and one-line text, for people and JSON (``rba events``)."""

from __future__ import annotations

import datetime

import numpy as np

from probes.events import (
    EventArray,
    Family,
    Flag,
    Kind,
    Source,
    StringTable,
    comm_text,
    format_address,
)

_IPPROTO_UDP = 17

# Which fields mean something for each kind (everything else is zero).
_PROCESS = ("pid", "ppid", "uid", "euid", "comm", "netns")
_SOCKET = ("pid", "uid", "comm", "netns", "sock", "family", "saddr", "sport", "daddr", "dport")
_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.EXEC: (*_PROCESS, "filename", "cmdline"),
    Kind.FORK: ("pid", "ppid", "comm", "netns"),
    Kind.EXIT: ("pid", "comm", "netns", "exit_code"),
    Kind.TCP_CONNECT: _SOCKET,
    Kind.TCP_ESTABLISHED: (*_SOCKET, "direction"),
    Kind.TCP_LISTEN: ("pid", "uid", "comm", "netns", "sock", "family", "saddr", "sport"),
    Kind.TCP_CLOSE: _SOCKET,
    Kind.UDP_SEND: ("pid", "uid", "comm", "netns", "family", "daddr", "dport"),
    Kind.LOGIN: ("pid", "user", "tty", "host", "started"),
    Kind.PROC_SNAPSHOT: (*_PROCESS, "exe", "cmdline", "started"),
    Kind.PROTO_LABEL: (
        *("pid", "uid", "comm", "netns", "family", "daddr", "dport"),
        *("direction", "transport", "protocol"),
    ),
}


def event_dict(event: np.void, strings: StringTable) -> dict[str, object]:
    """The meaningful fields of one event, with addresses and strings resolved."""
    kind = Kind(int(event["kind"]))
    flags = Flag(int(event["flags"]))
    out: dict[str, object] = {
        "time": _iso(int(event["ts_wall"])),
        "ts_mono": int(event["ts_mono"]),
        "source": Source(int(event["source"])).label,
        "kind": kind.name.lower(),
    }
    family = int(event["family"])
    for name in _FIELDS[kind]:
        out[name] = _field(event, name, family, strings)
    flag_names = [f.name.lower() for f in Flag if f and f in flags and f.name]
    if flag_names:
        out["flags"] = flag_names
    return out


def _field(event: np.void, name: str, family: int, strings: StringTable) -> object:
    if name == "family":
        return Family(family).name.lower()
    if name == "comm":
        return comm_text(bytes(event["comm"]))
    if name in ("saddr", "daddr"):
        return format_address(family, event[name])
    if name in ("filename", "exe", "user"):
        return strings.get(int(event["str_a"]))
    if name in ("cmdline", "tty"):
        return strings.get(int(event["str_b"]))
    if name == "host":
        return strings.get(int(event["str_c"]))
    if name == "exit_code":
        return int(event["aux"])
    if name == "started":
        aux = int(event["aux"])
        return _iso(aux if aux > 10**12 else aux * 10**9) if aux else None
    if name == "protocol":
        return strings.get(int(event["str_a"]))
    if name == "transport":
        return "udp" if int(event["aux"]) == _IPPROTO_UDP else "tcp"
    if name == "direction":
        return "passive" if int(event["flags"]) & Flag.PASSIVE else "active"
    return int(event[name])


def event_line(event: np.void, strings: StringTable) -> str:
    """One human line: time, source, kind and the fields that matter for the kind."""
    d = event_dict(event, strings)
    head = f"{str(d.pop('time'))[11:23]} {d.pop('source'):<4} {d.pop('kind'):<15}"
    d.pop("ts_mono")
    d.pop("family", None)
    if "saddr" in d or "daddr" in d:
        local = _endpoint(d.pop("saddr", ""), d.pop("sport", 0))
        remote = _endpoint(d.pop("daddr", ""), d.pop("dport", 0))
        d["addr"] = f"{local}->{remote}" if local and remote else local or remote
    parts = [f"{k}={_short(v)}" for k, v in d.items() if v not in ("", None, 0) or k == "pid"]
    return f"{head} {' '.join(parts)}"


def _endpoint(addr: object, port: object) -> str:
    if not addr and not port:
        return ""
    text = str(addr) or "*"
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def _short(value: object) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    text = str(value)
    return repr(text) if " " in text else text


def _iso(ns: int) -> str:
    return datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.timezone.utc).isoformat(
        timespec="milliseconds"
    )


def batch_lines(batch: EventArray, strings: StringTable) -> list[str]:
    """:func:`event_line` for every event of a batch."""
    return [event_line(e, strings) for e in batch]
