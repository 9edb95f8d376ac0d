"""What to do first: the summary every format leads with.

:func:`summarize` reads a report's findings through their typed subjects
(:mod:`behavior.subjects`) and returns a frozen :class:`Summary`:

- **high**: every High finding by name, with its subject;
- **groups**: the other findings by rule, then by owner: the package for file findings
  ("libpython3.11-stdlib: 9 files without stack cookies"), the directory for files no
  package owns (a vendor tree or a virtualenv is fixed as one), the program for the
  others; the :data:`OWNERS_SHOWN` largest owners of each rule, the rest counted;
- **fix_first**: the few owners (a package, an unpackaged file, a program) whose fix
  clears the most findings, picked greedily so no finding is counted twice.

It is pure and deterministic; the formats only lay it out.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from behavior.interface import Finding, Report, Severity
from behavior.subjects import (
    ConnectionSubject,
    FileSubject,
    ListenerSubject,
    LoginSubject,
    ModuleSubject,
    ProcessRef,
)

FIX_FIRST = 3  # at most this many owners in "fix first"
OWNERS_SHOWN = 6  # owners listed per rule; the rest are counted
SUBJECTS_SHOWN = 3  # subjects named per owner; the count says how many there are
UNKNOWN_OWNER = "unknown (no process was seen holding it)"

# rule id -> (singular, plural) of what one finding is, as "N <noun>" reads.
RULE_NOUNS: dict[str, tuple[str, str]] = {
    "software-without-stack-cookies": (
        "file without stack cookies",
        "files without stack cookies",
    ),
    "software-without-dep": ("file without DEP", "files without DEP"),
    "software-without-aslr": ("file without ASLR", "files without ASLR"),
    "software-without-relro": ("file without RELRO", "files without RELRO"),
    "insecure-client-login": ("cleartext login endpoint", "cleartext login endpoints"),
    "insecure-client-general": ("cleartext endpoint", "cleartext endpoints"),
    "unused-listening-port": ("unused listening port", "unused listening ports"),
    "insecure-server-protocol": ("cleartext server port", "cleartext server ports"),
    "root-process-insecure-permissions": (
        "module others can modify",
        "modules others can modify",
    ),
    "insecure-login-accepted": ("cleartext login server", "cleartext login servers"),
}


@dataclass(frozen=True)
class Owner:
    """Who can fix a finding: a ``package``, the directory of ``unpackaged`` files, or a
    ``program``."""

    kind: str
    name: str

    def label(self) -> str:
        """'package acme-app', 'program /usr/bin/telnet', 'unpackaged files in /opt/x'."""
        if self.kind == "unpackaged":
            return f"unpackaged files in {self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Line:
    """One finding named in a summary: its rule, title and subject."""

    rule_id: str
    title: str
    severity: Severity
    subject: str


@dataclass(frozen=True)
class OwnerGroup:
    """The findings of one rule that one owner accounts for."""

    owner: Owner
    count: int
    subjects: tuple[str, ...]  # the first SUBJECTS_SHOWN subjects

    def text(self, rule_id: str) -> str:
        """'libpython3.11-stdlib: 9 files without stack cookies (/usr/lib/a.so, ...)'."""
        more = ", ..." if self.count > len(self.subjects) else ""
        listed = f" ({', '.join(self.subjects)}{more})" if self.subjects else ""
        name = f"{self.owner.name}/ (unpackaged)" if self.owner.kind == "unpackaged" else ""
        return f"{name or self.owner.name}: {count_of(rule_id, self.count)}{listed}"


@dataclass(frozen=True)
class RuleGroup:
    """The findings of one rule below High, by owner (most findings first)."""

    rule_id: str
    title: str
    severity: Severity
    count: int
    owners: tuple[OwnerGroup, ...]  # the OWNERS_SHOWN largest
    more_owners: int = 0  # owners not listed
    more_findings: int = 0  # their findings

    def more_text(self) -> str:
        """'and 4 more owners (9 findings)', or "" when every owner is listed."""
        if not self.more_owners:
            return ""
        owners = f"{self.more_owners} more owner{'s' if self.more_owners != 1 else ''}"
        return f"and {owners} ({count_of(self.rule_id, self.more_findings)})"


@dataclass(frozen=True)
class FixFirst:
    """An owner whose fix clears ``count`` findings of ``rule_ids``."""

    owner: Owner
    count: int
    rule_ids: tuple[str, ...]
    severity: Severity  # the most severe finding it clears


@dataclass(frozen=True)
class Summary:
    """A report's summary: counts, High findings, the rest grouped, and what to fix first."""

    total: int
    counts: tuple[tuple[Severity, int], ...]  # every severity, most severe first
    suppressed: int
    high: tuple[Line, ...]
    groups: tuple[RuleGroup, ...]
    fix_first: tuple[FixFirst, ...]


def count_of(rule_id: str, n: int) -> str:
    """'9 files without stack cookies', '1 cleartext endpoint', '2 findings'."""
    singular, plural = RULE_NOUNS.get(rule_id, ("finding", "findings"))
    return f"{n} {singular if n == 1 else plural}"


def is_unknown(process: ProcessRef) -> bool:
    """True for an owner nobody could name: no pid, executable or comm was seen."""
    return process.pid == 0 and not process.exe and not process.comm


def program_of(process: ProcessRef) -> str:
    """A process's program as a summary names it; unknown owners say why."""
    if is_unknown(process):
        return UNKNOWN_OWNER
    return process.program or f"pid {process.pid}"


def shown_evidence(finding: Finding) -> dict[str, Any]:
    """The evidence as a person reads it: an owner nobody could name (pid 0, no exe,
    no comm) says "unknown (reason)" instead of ``pid=0, user=root``."""
    process = getattr(finding.subject, "process", None)
    if isinstance(process, ProcessRef) and is_unknown(process) and "process" in finding.evidence:
        return {**finding.evidence, "process": UNKNOWN_OWNER}
    return finding.evidence


def subject_text(finding: Finding) -> str:
    """The finding's subject in a few words: a path, an endpoint, a port, a module."""
    s = finding.subject
    if isinstance(s, FileSubject):
        return s.path + _world(s)
    if isinstance(s, ConnectionSubject):
        return f"{program_of(s.process)} to {s.remote.address}:{s.remote.port}/{s.transport}"
    if isinstance(s, ListenerSubject):
        where = "loopback" if s.loopback_only else ", ".join(s.bind_addresses) or "any address"
        return f"port {s.port}/{s.transport} on {where} ({program_of(s.process)})"
    if isinstance(s, ModuleSubject):
        return f"{s.module} ({s.module_role} of {program_of(s.process)})"
    if isinstance(s, LoginSubject):
        return f"{s.protocol} via {s.server or UNKNOWN_OWNER}"
    return ""


def detail_text(finding: Finding) -> str:
    """The subject without its owner, for a line that already names the owner: the
    path (unless the owner is that file), the endpoint, the port, the module."""
    s = finding.subject
    if isinstance(s, FileSubject):
        return (s.path if s.package else posixpath.basename(s.path)) + _world(s)
    if isinstance(s, ConnectionSubject):
        return f"{s.remote.address}:{s.remote.port}/{s.transport}"
    if isinstance(s, ListenerSubject):
        return f"port {s.port}/{s.transport}"
    if isinstance(s, ModuleSubject):
        return s.module
    if isinstance(s, LoginSubject):
        return s.protocol
    return ""


def _world(subject: FileSubject) -> str:
    """' in NAMESPACE' for a file outside the host's mount namespace (a container's
    image, or ``mnt:INODE``): the same path there is another file than on the host."""
    return f" in {subject.namespace}" if subject.namespace else ""


def owner_of(finding: Finding) -> Owner | None:
    """Who can fix the finding (None for a finding with no typed subject)."""
    s = finding.subject
    if isinstance(s, FileSubject):
        if s.package:
            return Owner("package", s.package)
        return Owner("unpackaged", posixpath.dirname(s.path) or "/")
    if isinstance(s, LoginSubject):
        return Owner("program", s.server or UNKNOWN_OWNER)
    if s is None:
        return None
    return Owner("program", program_of(s.process))


def summarize(report: Report) -> Summary:
    """The summary of the report's active (not suppressed) findings."""
    findings = report.findings
    counts = tuple((sev, sum(f.severity is sev for f in findings)) for sev in Severity)
    high = tuple(
        Line(f.rule_id, f.title, f.severity, subject_text(f))
        for f in findings
        if f.severity is Severity.HIGH
    )
    rest = [f for f in findings if f.severity is not Severity.HIGH]
    return Summary(
        total=len(findings),
        counts=counts,
        suppressed=len(report.suppressed),
        high=high,
        groups=_rule_groups(rest),
        fix_first=_fix_first(findings),
    )


def _rule_groups(findings: Sequence[Finding]) -> tuple[RuleGroup, ...]:
    by_rule: dict[str, list[Finding]] = {}
    for f in findings:
        by_rule.setdefault(f.rule_id, []).append(f)
    groups = [
        RuleGroup(
            rule_id=rule_id,
            title=group[0].title,
            severity=min((f.severity for f in group), key=lambda s: -s.rank),
            count=len(group),
            owners=owners[:OWNERS_SHOWN],
            more_owners=len(owners[OWNERS_SHOWN:]),
            more_findings=sum(o.count for o in owners[OWNERS_SHOWN:]),
        )
        for rule_id, group in by_rule.items()
        for owners in (_owner_groups(group),)
    ]
    groups.sort(key=lambda g: (-g.severity.rank, -g.count, g.rule_id))
    return tuple(groups)


def _owner_groups(findings: Iterable[Finding]) -> tuple[OwnerGroup, ...]:
    by_owner: dict[Owner, list[Finding]] = {}
    for f in findings:
        by_owner.setdefault(owner_of(f) or Owner("program", UNKNOWN_OWNER), []).append(f)
    groups = [OwnerGroup(owner, len(group), _details(group)) for owner, group in by_owner.items()]
    groups.sort(key=lambda g: (-g.count, g.owner.name))
    return tuple(groups)


def _details(group: Sequence[Finding]) -> tuple[str, ...]:
    return tuple(d for d in (detail_text(f) for f in group[:SUBJECTS_SHOWN]) if d)


def _fix_first(findings: Sequence[Finding]) -> tuple[FixFirst, ...]:
    """Greedy cover: the owner clearing the most (then the most severe) findings not yet
    cleared, up to FIX_FIRST; after the first, only owners that clear two or more."""
    left = {i: f for i, f in enumerate(findings) if owner_of(f) is not None}
    picked: list[FixFirst] = []
    while left and len(picked) < FIX_FIRST:
        by_owner: dict[Owner, list[Finding]] = {}
        for f in left.values():
            owner = owner_of(f)
            assert owner is not None
            by_owner.setdefault(owner, []).append(f)
        owner, cleared = min(
            by_owner.items(),
            key=lambda kv: (-len(kv[1]), -max(f.severity.rank for f in kv[1]), kv[0].name),
        )
        if picked and len(cleared) < 2:
            break
        picked.append(
            FixFirst(
                owner=owner,
                count=len(cleared),
                rule_ids=tuple(dict.fromkeys(f.rule_id for f in cleared)),
                severity=max((f.severity for f in cleared), key=lambda s: s.rank),
            )
        )
        left = {i: f for i, f in left.items() if owner_of(f) != owner}
    return tuple(picked)


def summary_to_dict(summary: Summary) -> dict[str, Any]:
    """The summary as JSON-ready data (the ``summary`` object of the JSON report)."""
    return {
        "total": summary.total,
        "by_severity": {sev.value: n for sev, n in summary.counts},
        "suppressed": summary.suppressed,
        "high": [
            {"rule_id": h.rule_id, "title": h.title, "subject": h.subject} for h in summary.high
        ],
        "groups": [
            {
                "rule_id": g.rule_id,
                "title": g.title,
                "severity": g.severity.value,
                "count": g.count,
                "owners": [
                    {
                        "kind": o.owner.kind,
                        "name": o.owner.name,
                        "count": o.count,
                        "text": o.text(g.rule_id),
                        "subjects": list(o.subjects),
                    }
                    for o in g.owners
                ],
                "more_owners": g.more_owners,
                "more_findings": g.more_findings,
            }
            for g in summary.groups
        ],
        "fix_first": [
            {
                "kind": x.owner.kind,
                "name": x.owner.name,
                "findings": x.count,
                "rule_ids": list(x.rule_ids),
                "severity": x.severity.value,
            }
            for x in summary.fix_first
        ],
    }
