"""What a trace says about itself: the start record (:class:`TraceHeader`), the host's
identity, the loss counters' encoding, and the layer's error.

The recorder writes a :class:`TraceHeader` as the trace's start record and the loader
and ``rba trace info`` read it back through :meth:`TraceHeader.from_dict`, so the three
agree on one shape (docs/trace-format.md).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from behavior.interface import RbaError
from probes.interface import SourceStats

TRACE_FORMAT = "rba-trace"


class RecordingError(RbaError):
    """A trace cannot be written or read; the message is one line."""


def host_identity() -> dict[str, str]:
    """Who this host is, beyond its name: machine id, boot id, OS (empty when unknown)."""

    def first_line(path: str) -> str:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.readline().strip()
        except OSError:
            return ""

    os_name = ""
    # platform.freedesktop_os_release needs Python 3.10
    with contextlib.suppress(OSError), open("/etc/os-release", errors="replace") as f:
        for line in f:
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip("\"'")
    return {
        "hostname": platform.node(),
        "machine_id": first_line("/etc/machine-id"),
        "boot_id": first_line("/proc/sys/kernel/random/boot_id"),
        "os": os_name,
    }


def kernel_identity() -> dict[str, str]:
    """The running kernel's release, version and machine."""
    uname = os.uname()
    return {"release": uname.release, "version": uname.version, "machine": uname.machine}


def rba_version() -> str:
    """The installed rba's version, or "unknown" when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rba")
    except PackageNotFoundError:
        return "unknown"


def stats_to_dict(stats: Mapping[str, SourceStats]) -> dict[str, Any]:
    """Loss counters as a trace record stores them."""
    return {
        name: {"events": s.events, "lost": s.lost, "gaps": list(s.gaps)}
        for name, s in sorted(stats.items())
    }


def stats_from_dict(data: Any) -> dict[str, SourceStats]:
    """The inverse of :func:`stats_to_dict`; raises ValueError (or KeyError, TypeError)
    when ``data`` is not of that shape."""
    if not isinstance(data, dict):
        raise ValueError("stats are not an object")
    return {
        str(name): SourceStats(int(s["events"]), int(s["lost"]), tuple(map(str, s["gaps"])))
        for name, s in data.items()
    }


@dataclass(frozen=True)
class TraceHeader:
    """A trace's start record: who recorded which window, where, and with which options."""

    purpose: str  # "capture" or "assess"
    rba_version: str
    run_id: str
    host: Mapping[str, str]
    kernel: Mapping[str, str]
    started_at_ns: int
    duration_s: float
    sources: tuple[str, ...]
    probes: str
    poll_interval: float
    content: bool
    rules: tuple[str, ...] | None  # None: every rule
    redact_cmdline: bool
    own_pid: int | None = None  # rba's own process, set aside (None before rba 0.2)
    own_roots: tuple[str, ...] = ()  # where rba's own files were: not reported

    def to_dict(self) -> dict[str, Any]:
        """The start record as the trace stores it."""
        return {
            "format": TRACE_FORMAT,
            "purpose": self.purpose,
            "rba_version": self.rba_version,
            "run_id": self.run_id,
            "host": dict(self.host),
            "kernel": dict(self.kernel),
            "window": {"started_at_ns": self.started_at_ns, "duration_s": self.duration_s},
            "sources": list(self.sources),
            "options": {
                "probes": self.probes,
                "poll_interval": self.poll_interval,
                "content": self.content,
                "rules": None if self.rules is None else list(self.rules),
                "redact_cmdline": self.redact_cmdline,
                "own_pid": self.own_pid,
                "own_roots": list(self.own_roots),
            },
        }

    @classmethod
    def from_dict(cls, start: Mapping[str, Any]) -> TraceHeader:
        """The header of a start record. Raises ValueError naming what is wrong when the
        record is not an rba window's start or holds values no window can have."""
        if start.get("format") != TRACE_FORMAT:
            raise ValueError("not a trace of an rba window (format field missing)")
        try:
            window, options = start["window"], start["options"]
            rules = options["rules"]
            header = cls(
                purpose=str(start.get("purpose", "")),
                rba_version=str(start.get("rba_version", "")),
                run_id=str(start["run_id"]),
                host=_strings(start.get("host")),
                kernel=_strings(start.get("kernel")),
                started_at_ns=int(window["started_at_ns"]),
                duration_s=float(window["duration_s"]),
                sources=tuple(map(str, start["sources"])),
                probes=str(options["probes"]),
                poll_interval=float(options["poll_interval"]),
                content=bool(options.get("content", True)),  # absent before trace 1.1's rba
                rules=None if rules is None else tuple(map(str, rules)),
                redact_cmdline=bool(options.get("redact_cmdline", False)),
                own_pid=_optional_int(options.get("own_pid")),
                own_roots=tuple(map(str, options.get("own_roots", ()))),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"malformed start record ({e!r})") from e
        header.check()
        return header

    def check(self) -> None:
        """Raise ValueError when a value is one no real window has."""
        if not 0 <= self.started_at_ns < 2**63:
            raise ValueError(f"malformed start record (started_at_ns {self.started_at_ns})")
        for name in ("duration_s", "poll_interval"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"malformed start record ({name} {value})")


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
