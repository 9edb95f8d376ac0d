"""The rules layer's interface: a rule is a pure function from (observations, facts) to
findings, plus the metadata docs/rules.md gives it and a statement of when it cannot run.

Rules never touch the live system: everything comes in through :class:`RuleInput`, so a
replayed trace and a live run give the same findings by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from behavior.facts.interface import FactSet, HostFact, ProcessFact
from behavior.interface import Finding, Observations, Severity
from behavior.subjects import (
    ContainerRef,
    ProcessRef,
    Subject,
    evidence_of,
    fingerprint,
    host_key,
)


@dataclass(frozen=True)
class RuleInfo:
    """A rule's catalogue entry. ``id`` is part of the public interface: never rename."""

    id: str
    title: str
    severity: Severity
    description: str
    recommendation: str
    extended: bool = False


@dataclass(frozen=True)
class RuleInput:
    """What a rule may look at: the window's observations, its facts and its sources."""

    obs: Observations
    facts: FactSet
    sources: tuple[str, ...]

    @property
    def polling_only(self) -> bool:
        """True when no kernel probe watched the window (polling can miss short things)."""
        return "ebpf" not in self.sources


@dataclass(frozen=True)
class RuleResult:
    """A rule's findings, and a note on reduced coverage or confidence ('' when none)."""

    findings: tuple[Finding, ...]
    note: str = ""


@dataclass(frozen=True)
class Rule:
    """One rule: its entry, its evaluation, and why it could not run (None = it can)."""

    info: RuleInfo
    evaluate: Callable[[RuleInput], RuleResult]
    unavailable: Callable[[RuleInput], str | None] = field(default=lambda _inp: None)


def iso_time(ns: int) -> str:
    """ISO 8601 UTC with milliseconds for a wall-clock time in nanoseconds."""
    moment = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def finding(
    info: RuleInfo,
    subject: Subject,
    details: Mapping[str, Any],
    *,
    count: int,
    first_ns: int,
    last_ns: int,
) -> Finding:
    """A finding of rule ``info`` about ``subject``: its evidence is the subject's
    fields and then ``details`` (what the rule observed), and its repeat counters."""
    return Finding(
        rule_id=info.id,
        title=info.title,
        severity=info.severity,
        description=info.description,
        recommendation=info.recommendation,
        evidence=evidence_of(subject, details),
        count=count,
        first_seen=iso_time(first_ns),
        last_seen=iso_time(last_ns),
        subject=subject,
    )


def with_fingerprints(findings: Iterable[Finding], host: HostFact | None) -> list[Finding]:
    """The findings with their fingerprints for ``host`` (its machine id, else its name),
    so a replay anywhere fingerprints as the live run on the recorded host did."""
    key = host_key(host.machine_id, host.hostname) if host else host_key("", "")
    out = []
    taken: dict[str, int] = {}
    for f in findings:
        if f.subject is None:
            out.append(f)
            continue
        # Subjects the identity cannot tell apart (the same port and program in two
        # namespaces no container names) are numbered in rule order, so each finding of
        # a report still has its own fingerprint.
        print_ = fingerprint(key, f.rule_id, f.subject)
        taken[print_] = taken.get(print_, 0) + 1
        suffix = f"-{taken[print_]}" if taken[print_] > 1 else ""
        out.append(replace(f, fingerprint=print_ + suffix))
    return out


def mode_text(mode: int) -> str:
    """Permission bits as four octal digits, e.g. '0755' or '1777'."""
    return f"{mode & 0o7777:04o}"


def process_ref(inp: RuleInput, pid: int, *, uid: int, comm: str = "") -> ProcessRef:
    """Process ``pid`` as findings name it: what the events and facts say about it."""
    proc = inp.obs.processes.get(pid)
    exe, cmdline = (proc.exe, proc.cmdline) if proc else ("", "")
    if not exe or not cmdline:
        for fact in inp.facts.processes.values():
            if fact.pid == pid:
                exe = exe or fact.exe
                cmdline = cmdline or " ".join(fact.cmdline)
                break
    return ProcessRef(
        pid=pid,
        exe=exe,
        cmdline=cmdline,
        comm=comm or (proc.comm if proc else ""),
        user=inp.facts.user_name(uid),
        uid=uid,
        container=container_ref(inp.facts.process_of(pid)),
    )


def container_ref(fact: ProcessFact | None) -> ContainerRef | None:
    """The container a process fact names, as findings show it (None: the host's own)."""
    found = fact.container if fact is not None else None
    if found is None:
        return None
    return ContainerRef(found.id, found.runtime, found.name, found.image, found.pod)


MAX_LISTED_PIDS = 20


def listed_pids(pids: Iterable[int]) -> list[int]:
    """The pids to list in evidence: sorted, at most MAX_LISTED_PIDS (``count`` says all)."""
    return sorted(set(pids))[:MAX_LISTED_PIDS]
