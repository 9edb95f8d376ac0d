"""The behavior layer's interface: its errors, progress reporting, the findings model
and the observations the rules read.

Everything here is plain data or a protocol and imports nothing else of ``behavior``, so
every part of the layer (window, recording, facts, rules, formats, commands, daemon) can
depend on it without an arrow pointing back up.

- **Errors.** :class:`RbaError` is the base; its message is one line a user can act on.
- **Progress.** The core reports to an :class:`Observer`: the CLI draws a progress line,
  the daemon logs, tests record. The core never prints.
- **Findings.** What an assessment produces and every format renders. Formats are pure
  functions ``(Report) -> str`` (see :mod:`behavior.formats`); the JSON shape follows the
  public contract in docs/design.md.
- **Observations.** What the aggregator folded out of a window's events: frozen records
  that the rules read together with the facts (:mod:`behavior.facts.interface`) and
  nothing else. Times are wall-clock nanoseconds taken from the events themselves, never
  from the moment of evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from binanalysis.interface import StrEnum

if TYPE_CHECKING:  # at run time only the rules need subjects: rba scan starts without
    from behavior.subjects import Subject

# --- errors -------------------------------------------------------------------


class RbaError(Exception):
    """Base error of the behavior layer; its message is one line a user can act on."""


class UsageError(RbaError):
    """Bad input from the user (arguments, files, configuration): exit status 2."""


# --- observer -----------------------------------------------------------------


class Observer(Protocol):
    """Receives progress from long work. All methods must be cheap and must not raise."""

    def progress(self, done: float, total: float, detail: str) -> None:
        """``done`` of ``total`` units (seconds of a window, files of a scan) finished."""

    def notice(self, message: str) -> None:
        """A one-line statement worth showing (fallbacks, gaps, skipped inputs)."""


class NullObserver:
    """An observer that ignores everything."""

    def progress(self, done: float, total: float, detail: str) -> None:
        pass

    def notice(self, message: str) -> None:
        pass


# --- report -------------------------------------------------------------------

SCHEMA_VERSION = 1


class Severity(StrEnum):
    """Inspector's severities, ordered from most to least severe by ``rank``."""

    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"
    INFORMATIONAL = "Informational"

    @property
    def rank(self) -> int:
        """Inspector's numeric severity: High 9, Medium 6, Low 3, Informational 0."""
        return {"High": 9, "Medium": 6, "Low": 3, "Informational": 0}[self.value]

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Case-insensitive parse ('high', 'info' and 'informational' accepted)."""
        lowered = text.strip().lower()
        for sev in cls:
            if sev.value.lower() == lowered or (lowered == "info" and sev is cls.INFORMATIONAL):
                return sev
        raise ValueError(f"unknown severity {text!r}: use high, medium, low or informational")


@dataclass(frozen=True)
class Finding:
    """One finding per (rule, subject). ``evidence`` is JSON-ready (str/int/float/bool/
    None/list/dict) and holds enough for a person to verify the finding by hand; the
    rules build it from ``subject`` (:func:`behavior.subjects.evidence_of`), which is
    what suppressions and formats read. ``fingerprint`` is stable across runs on one
    host for one subject (:func:`behavior.subjects.fingerprint`; "" when unknown)."""

    rule_id: str
    title: str
    severity: Severity
    description: str
    recommendation: str
    evidence: dict[str, Any]
    count: int
    first_seen: str  # ISO 8601 UTC
    last_seen: str
    subject: Subject | None = None
    fingerprint: str = ""


@dataclass(frozen=True)
class RuleStatus:
    """Whether a rule ran; ``reason`` says why not (or states reduced confidence)."""

    rule_id: str
    ran: bool
    reason: str = ""


@dataclass(frozen=True)
class RunInfo:
    """Run-level facts every report states (docs/rules.md, 'Run-level facts')."""

    id: str
    host: str
    started_at: str
    ended_at: str
    duration_s: float
    sources: tuple[str, ...]
    events: int
    lost_events: int
    rules: tuple[RuleStatus, ...]
    partial: bool = False  # the window was ended early
    replayed: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)  # coverage gaps, fallbacks
    machine_id: str = ""  # /etc/machine-id of the assessed host ("" when unknown)
    os_name: str = ""  # os-release NAME, e.g. "Debian GNU/Linux"
    os_version: str = ""  # os-release VERSION_ID, e.g. "12"
    ips: tuple[str, ...] = ()  # the host's non-loopback addresses
    instance_id: str = ""  # the EC2 instance id read from DMI ("" off EC2)
    rba_version: str = ""  # the rba that made the report (behavior.__version__)
    kernel: str = ""  # the assessed host's kernel release (uname -r; "" when unknown)


@dataclass(frozen=True)
class SuppressionInfo:
    """The suppression entry that matched (or, expired, would have matched) a finding."""

    rule_id: str
    match: dict[str, str | int]  # subject keys: port, exe, path, remote, package
    reason: str
    expires: str  # ISO date, or "" when it never expires
    source: str  # where it was defined, e.g. "rules.toml:12"


@dataclass(frozen=True)
class SuppressedFinding:
    """A finding hidden from the findings list by a suppression; always still reported."""

    finding: Finding
    suppression: SuppressionInfo


@dataclass(frozen=True)
class ExpiredSuppression:
    """A suppression past its ``expires`` date: it no longer applies. ``findings`` counts
    the findings it would have matched, which are reported as ordinary findings."""

    suppression: SuppressionInfo
    findings: int
    matched: tuple[Finding, ...] = ()  # those findings, so formats can annotate them


@dataclass(frozen=True)
class Report:
    """One assessment's result. ``timeline`` is JSON-ready data for the HTML report's
    plots (see :mod:`behavior.window.timeline`); it is None where no window was watched."""

    run: RunInfo
    findings: tuple[Finding, ...]
    suppressed: tuple[SuppressedFinding, ...] = ()
    expired_suppressions: tuple[ExpiredSuppression, ...] = ()
    timeline: dict[str, Any] | None = None


# --- observations -------------------------------------------------------------


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
    """A listening TCP socket, or a bound UDP one, during the window (possibly several
    listen/close cycles)."""

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
    # "udp": a datagram socket bound to a local port, a UDP service (docs/assess.md).
    transport: str = "tcp"
    # UDP: remote (non-loopback) peers whose datagrams its owner received first (eBPF).
    peers: int = 0
    # Of ``accepted``: connections polling saw only closing (TIME_WAIT, CLOSE_WAIT, ...).
    leftovers: int = 0


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
