"""The assessment core: one window of events and facts in, one :class:`Report` out.

:class:`Assessment` is the window: feed it event batches, then :meth:`Assessment.finish`
evaluates the rules. Several assessments may share one probe session (the daemon); a
replay feeds one from a trace with recorded facts. :func:`run_assessment` is the whole
live window for ``rba assess``: it opens the probes, runs the window (``stop.set()`` ends
it early and the report says partial) and returns the report. The core never prints: it
talks to an :class:`~behavior.interface.Observer`.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from behavior import __version__
from behavior.durations import format_duration
from behavior.facts.interface import (
    GAP_FILE_UNREADABLE,
    GAP_GATHER_ERROR,
    GAP_MAPS_DENIED,
    GAP_MAPS_GONE,
    Fact,
    FactSet,
    FactSource,
    HostFact,
)
from behavior.interface import Finding, Observer, RbaError, Report, RuleStatus, RunInfo
from behavior.rules import RULES, select
from behavior.rules.interface import RuleInput, iso_time, with_fingerprints
from behavior.rules.protocols import CLIENT_TCP_PORTS, CLIENT_UDP_PORTS
from behavior.window.aggregate import Aggregator
from behavior.window.own_process import OwnProcessFilter, own_file_of, own_install_roots
from behavior.window.timeline import TimelineCounter
from probes.events import EventArray, StringTable
from probes.interface import ProbeError, SourceStats
from probes.lanes import classify

READ_SLICE_S = 0.2  # how long one read may wait: bounds the reaction to stop and the deadline
PROGRESS_INTERVAL_S = 0.5  # the progress line's detail costs a pass over the keys
FACTS_TIMEOUT_S = 60.0  # waiting at the end of the window for facts still being gathered
MAX_LISTED_GAPS = 5

_GAP_TEXT = {
    GAP_MAPS_GONE: "process(es) exited before their memory maps were read "
    "(their executables were still checked)",
    GAP_MAPS_DENIED: "process(es) that could not be read (permission denied)",
    GAP_FILE_UNREADABLE: "module file(s) could not be examined",
    GAP_GATHER_ERROR: "process(es) whose facts could not be gathered",
}

_CANDIDATE_TCP = frozenset(CLIENT_TCP_PORTS)
_CANDIDATE_UDP = frozenset(CLIENT_UDP_PORTS)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector. Evaluation (and a replay's fold) allocate
    millions of acyclic objects, a record per connection, process or finding, and each
    full collection walks all of them again: with it running, replaying 1M events spent
    40 % of its CPU in the collector (bench/trace_replay.py). Reference counting still
    frees everything dropped, so memory stays bounded by the window's distinct keys."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class AssessError(RbaError):
    """The assessment could not run (the probes could not start, for example)."""


@dataclass(frozen=True)
class AssessConfig:
    """What to assess: the window length, which rules (None = all), which probes."""

    duration_s: float
    rules: frozenset[str] | None = None
    probes: str = "auto"
    poll_interval: float = 1.0
    content: bool = True  # identify protocols by first payloads (eBPF only)
    own_pid: int | None = None  # rba's own process: it and its children are set aside
    own_roots: tuple[str, ...] = ()  # rba's installed files: never reported


@dataclass(frozen=True)
class WindowEnd:
    """How a window ended: when, whether early (``partial``), the sources that watched
    it with their loss counters, and the sources' notices."""

    ended_at_ns: int
    partial: bool
    source_stats: Mapping[str, SourceStats]
    sources: tuple[str, ...]
    notices: tuple[str, ...]


class WindowRecorder(Protocol):
    """Receives everything a live window sees, for a trace (``rba capture``, ``--record``).

    Call order: begin, then events and facts interleaved, then end."""

    def begin(
        self,
        *,
        run_id: str,
        host: HostFact,
        started_at_ns: int,
        config: AssessConfig,
        sources: tuple[str, ...],
        strings: StringTable,
    ) -> None:
        """The window opened."""

    def events(self, batch: EventArray) -> None:
        """A batch of events, as fed to the assessment."""

    def fact(self, fact: Fact) -> None:
        """A fact the live fact source gathered (may come from another thread)."""

    def stats(self, source_stats: Mapping[str, SourceStats]) -> None:
        """Loss counters so far, offered on every read of the window (throttle them), so
        a trace cut short still states its losses."""

    def end(self, end: WindowEnd) -> None:
        """The window closed."""


def new_run_id(started_at_ns: int) -> str:
    """A sortable, unique run id: UTC start time plus random hex."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started_at_ns / 1e9))
    return f"{stamp}-{secrets.token_hex(3)}"


class Assessment:
    """One assessment window. Several may share one probe session (the daemon)."""

    def __init__(
        self,
        config: AssessConfig,
        *,
        strings: StringTable,
        facts: FactSource,
        observer: Observer,
        run_id: str | None = None,
        host: HostFact | None = None,
        started_at_ns: int | None = None,
    ) -> None:
        try:
            self._rules = select(config.rules)
        except ValueError as e:
            raise AssessError(str(e)) from e
        self.config = config
        self.strings = strings
        self.started_at_ns = started_at_ns if started_at_ns is not None else time.time_ns()
        self.run_id = run_id or new_run_id(self.started_at_ns)
        self._facts = facts
        self._observer = observer
        self._host = host
        self._own = OwnProcessFilter(config.own_pid) if config.own_pid else None
        self._aggregator = Aggregator(strings)
        self._timeline = TimelineCounter()
        self._lock = threading.Lock()

    @property
    def events(self) -> int:
        """Events fed so far."""
        return self._aggregator.events

    def feed(self, events: EventArray) -> None:
        """Fold a batch of events into the window (and let the facts gatherer see it)."""
        if self._own is not None:
            events = self._own.apply(events)
        lanes = classify(events)
        with self._lock:
            self._facts.observe(events, self.strings)
            self._aggregator.fold(events, lanes)
            self._timeline.fold(events, lanes)

    def progress_detail(self, seconds_left: float) -> str:
        """One line for a progress display: time left, events, cleartext endpoints so far."""
        with self._lock:
            candidates = self._aggregator.candidate_count(_CANDIDATE_TCP, _CANDIDATE_UDP)
        line = f"{format_duration(seconds_left)} left, {self.events} events"
        if candidates:
            line += f", {candidates} cleartext endpoint(s)"
        return line

    def finish(self, end: WindowEnd) -> Report:
        """Evaluate the rules over the window and return the report."""
        with collector_paused():
            return self._finish(end)

    def _finish(self, end: WindowEnd) -> Report:
        ended_at_ns, source_stats = end.ended_at_ns, end.source_stats
        facts = self._facts.facts(timeout=FACTS_TIMEOUT_S)
        with self._lock:
            obs = self._aggregator.observations(started_ns=self.started_at_ns, ended_ns=ended_at_ns)
        inp = RuleInput(obs, facts, end.sources)
        statuses: list[RuleStatus] = []
        findings: list[Finding] = []
        for rule in self._rules:
            reason = rule.unavailable(inp)
            if reason is not None:
                statuses.append(RuleStatus(rule.info.id, ran=False, reason=reason))
                continue
            result = rule.evaluate(inp)
            statuses.append(RuleStatus(rule.info.id, ran=True, reason=result.note))
            findings.extend(result.findings)
        kept = [f for f in findings if not own_file_of(f, self.config.own_roots)]
        own_files, findings = len(findings) - len(kept), kept
        host = self._host or facts.host
        findings = with_fingerprints(findings, host)
        run = RunInfo(
            id=self.run_id,
            host=host.hostname if host else "",
            machine_id=host.machine_id if host else "",
            os_name=host.os_name if host else "",
            os_version=host.os_version if host else "",
            ips=host.ips if host else (),
            instance_id=host.instance_id if host else "",
            rba_version=__version__,
            kernel=host.kernel if host else "",
            started_at=iso_time(self.started_at_ns),
            ended_at=iso_time(ended_at_ns),
            duration_s=max(0, ended_at_ns - self.started_at_ns) / 1e9,
            sources=end.sources,
            events=obs.events,
            lost_events=sum(s.lost for s in source_stats.values()),
            rules=tuple(statuses),
            partial=end.partial,
            notes=tuple(_run_notes(self._notices(end, own_files), source_stats, facts)),
        )
        with self._lock:
            timeline = self._timeline.build(obs, findings, self.strings)
        ordered = tuple(sorted(findings, key=_finding_order))
        return Report(run=run, findings=ordered, timeline=timeline)

    def _notices(self, end: WindowEnd, own_files: int) -> tuple[str, ...]:
        own = [] if self._own is None else [self._own.note()]
        if own_files:
            roots = ", ".join(self.config.own_roots)
            own.append(f"{own_files} finding(s) about rba's own files (under {roots}) not reported")
        return (*own, *end.notices)


_RULE_ORDER = {rule.info.id: i for i, rule in enumerate(RULES)}


def _finding_order(f: Finding) -> tuple[int, int, str, str]:
    evidence = json.dumps(f.evidence, sort_keys=True)
    return (-f.severity.rank, _RULE_ORDER.get(f.rule_id, 99), f.first_seen, evidence)


def _run_notes(
    notices: Sequence[str], stats: Mapping[str, SourceStats], facts: FactSet
) -> list[str]:
    notes = list(notices)
    for name in sorted(stats):
        gaps = stats[name].gaps
        listed = "; ".join(gaps[:MAX_LISTED_GAPS])
        more = f" and {len(gaps) - MAX_LISTED_GAPS} more" if len(gaps) > MAX_LISTED_GAPS else ""
        if gaps:
            notes.append(f"{name}: {len(gaps)} gap(s): {listed}{more}")
    for kind in sorted(facts.gaps):
        subjects = sorted(facts.gaps[kind])
        listed = ", ".join(subjects[:MAX_LISTED_GAPS])
        more = ", ..." if len(subjects) > MAX_LISTED_GAPS else ""
        notes.append(f"{len(subjects)} {_GAP_TEXT.get(kind, kind)}: {listed}{more}")
    return notes


def run_assessment(
    config: AssessConfig,
    observer: Observer,
    stop: threading.Event,
    *,
    recorder: WindowRecorder | None = None,
    run_id: str | None = None,
) -> Report:
    """Assess this host live for ``config.duration_s`` (or until ``stop`` is set).

    Raises AssessError when the probes cannot start."""
    from behavior.facts.live import LiveFactSource, current_host
    from probes.backend import open_session

    if config.own_pid is None:
        config = dataclasses.replace(config, own_pid=os.getpid(), own_roots=own_install_roots())
    strings = StringTable()
    try:
        session = open_session(config.probes, config.poll_interval, content=config.content)
    except (ProbeError, ValueError) as e:
        raise AssessError(f"cannot start the probes: {e}") from e
    for notice in session.notices:
        observer.notice(notice)
    host = current_host()
    facts = LiveFactSource(host=host, sink=recorder.fact if recorder else None)
    try:
        # The window opens when observation does: events the probes see while the start
        # snapshot is taken already belong to it, so first_seen >= started_at holds.
        started = time.time_ns()
        try:
            session.start(strings)
        except ProbeError as e:
            raise AssessError(f"cannot start the probes: {e}") from e
        assessment = Assessment(
            config,
            strings=strings,
            facts=facts,
            observer=observer,
            run_id=run_id,
            host=host,
            started_at_ns=started,
        )
        if recorder is not None:
            recorder.begin(
                run_id=assessment.run_id,
                host=host,
                started_at_ns=started,
                config=config,
                sources=tuple(session.sources),
                strings=strings,
            )
        observer.notice(
            f"window open for {format_duration(config.duration_s)} "
            f"(probes: {', '.join(session.sources)}; pid {os.getpid()})"
        )
        try:
            _run_window(
                session,
                assessment=assessment,
                config=config,
                observer=observer,
                stop=stop,
                recorder=recorder,
            )
        finally:
            session.stop()
        end = WindowEnd(
            ended_at_ns=time.time_ns(),
            partial=stop.is_set(),
            source_stats=session.stats(),
            sources=tuple(session.sources),
            notices=tuple(session.notices),
        )
        observer.progress(
            config.duration_s, config.duration_s, f"{assessment.events} events; evaluating"
        )
        if recorder is not None:
            recorder.end(end)
        return assessment.finish(end)
    finally:
        facts.close()


class _Session(Protocol):
    def read(self, timeout: float) -> EventArray: ...

    def stats(self) -> dict[str, SourceStats]: ...


def _run_window(
    session: _Session,
    *,
    assessment: Assessment,
    config: AssessConfig,
    observer: Observer,
    stop: threading.Event,
    recorder: WindowRecorder | None,
) -> None:
    deadline = time.monotonic() + config.duration_s
    next_progress = 0.0
    while not stop.is_set():
        now = time.monotonic()
        left = deadline - now
        if left <= 0:
            break
        batch = session.read(min(READ_SLICE_S, left))
        if len(batch):
            if recorder is not None:
                recorder.events(batch)
            assessment.feed(batch)
        if recorder is not None:
            recorder.stats(session.stats())
        if now >= next_progress:
            next_progress = now + PROGRESS_INTERVAL_S
            observer.progress(
                config.duration_s - left, config.duration_s, assessment.progress_detail(left)
            )
    # What the sources already hold belongs to the window.
    batch = session.read(0.0)
    if len(batch):
        if recorder is not None:
            recorder.events(batch)
        assessment.feed(batch)
