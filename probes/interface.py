"""The probes layer's interface: what an event source is and what it can do.

A source produces batches of events (numpy arrays of :data:`probes.events.EVENT_DTYPE`).
The eBPF tracepoint source, the psutil polling source and the trace replay source all
implement :class:`EventSource`; which ones run is decided in one place
(:mod:`probes.backend`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from probes.events import EventArray, StringTable


class ProbeError(Exception):
    """Base error of the probes layer. Outside errors are translated into it."""


class ProbeUnavailableError(ProbeError):
    """A source cannot run here (no root, no BPF, no headers...). The message says why."""


@dataclass(frozen=True)
class Capabilities:
    """What a source can observe. Reports use these to state coverage honestly."""

    sees_every_connection: bool  # every connect/accept, however short-lived
    sees_short_processes: bool  # execs that exit before the next poll
    sees_udp: bool
    sees_logins: bool
    counts_losses: bool  # lost events are counted (never silently zero)
    content: bool = False  # can classify protocols by payload


@dataclass(frozen=True)
class SourceStats:
    """Counters a source reports: events delivered, lost, and stated gaps."""

    events: int
    lost: int
    # Things the source could not see, as one-line statements ("pid 42: maps unreadable").
    gaps: tuple[str, ...] = field(default_factory=tuple)


class EventSource(abc.ABC):
    """A producer of events. Used as: start(), then read() repeatedly, then stop()."""

    name: str  # "ebpf", "poll" or "replay"
    capabilities: Capabilities

    @abc.abstractmethod
    def start(self, strings: StringTable) -> None:
        """Begin observing. Strings are interned into ``strings``. Raises ProbeError."""

    @abc.abstractmethod
    def read(self, timeout: float) -> EventArray:
        """Events that arrived since the last call, waiting up to ``timeout`` seconds."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop observing and release kernel resources. Safe to call twice."""

    @abc.abstractmethod
    def stats(self) -> SourceStats:
        """Counters so far."""
