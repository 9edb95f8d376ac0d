"""Observations: what the aggregator folded out of a window's events.

They are plain frozen records; the rules read them together with the facts
(:mod:`behavior.facts.interface`) and nothing else. Times are wall-clock nanoseconds
taken from the events themselves, never from the moment of evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Connection:
    """Outbound traffic of one process to one remote endpoint over one transport."""

    pid: int
    comm: str
    uid: int
    netns: int
    family: int
    remote: str
    remote_loopback: bool
    port: int
    transport: str  # "tcp" or "udp"
    count: int
    first_ns: int
    last_ns: int
    sources: tuple[str, ...]
    labels: tuple[str, ...] = ()  # protocols its first payloads carried (eBPF only)


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket during the window (possibly several listen/close cycles)."""

    netns: int
    family: int
    address: str
    port: int
    loopback_only: bool
    pid: int
    uid: int
    comm: str
    exe: str
    started_ns: int  # first moment it listened within the window
    listening_ns: int  # total time it listened within the window
    before_window: bool  # already listening when the window started
    accepted: int  # inbound connections that reached ESTABLISHED
    first_accept_ns: int
    last_accept_ns: int
    sources: tuple[str, ...]
    # Protocols seen on connections its owner accepted (eBPF only; per owning process).
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Process:
    """The latest image of a pid seen in the window, from exec, fork and snapshot events."""

    pid: int
    ppid: int
    comm: str
    exe: str
    cmdline: str
    uid: int
    euid: int
    first_ns: int
    last_ns: int


@dataclass(frozen=True)
class LoginAccepted:
    """A remote login program started by a cleartext login server during the window."""

    protocol: str  # telnet, rlogin, rsh, rexec
    server_pid: int
    server: str  # the server's comm or exe
    pid: int
    program: str
    uid: int
    ts_ns: int


@dataclass(frozen=True)
class LoginSession:
    """A login session (utmp) seen during the window."""

    user: str
    tty: str
    host: str
    pid: int
    start_s: int
    first_ns: int
    ended: bool


@dataclass(frozen=True)
class Observations:
    """Everything folded from one window's events."""

    window_start_ns: int
    window_end_ns: int
    events: int
    connections: tuple[Connection, ...]
    listeners: tuple[Listener, ...]
    processes: dict[int, Process]
    logins: tuple[LoginSession, ...]
    login_accepts: tuple[LoginAccepted, ...]

    @property
    def window_ns(self) -> int:
        """Length of the window in nanoseconds."""
        return max(0, self.window_end_ns - self.window_start_ns)
