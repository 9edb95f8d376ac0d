"""The findings model: what an assessment produces and every format renders.

Formats are pure functions ``(Report) -> str`` (see :mod:`behavior.formats`). The JSON
shape follows DESIGN.md's public contract.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


class Severity(enum.StrEnum):
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
    None/list/dict) and holds enough for a person to verify the finding by hand."""

    rule_id: str
    title: str
    severity: Severity
    description: str
    recommendation: str
    evidence: dict[str, Any]
    count: int
    first_seen: str  # ISO 8601 UTC
    last_seen: str


@dataclass(frozen=True)
class RuleStatus:
    """Whether a rule ran; ``reason`` says why not (or states reduced confidence)."""

    rule_id: str
    ran: bool
    reason: str = ""


@dataclass(frozen=True)
class RunInfo:
    """Run-level facts every report states (RULES.md, 'Run-level facts')."""

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
    plots (see :mod:`behavior.timeline`); it is None where no window was watched."""

    run: RunInfo
    findings: tuple[Finding, ...]
    suppressed: tuple[SuppressedFinding, ...] = ()
    expired_suppressions: tuple[ExpiredSuppression, ...] = ()
    timeline: dict[str, Any] | None = None
