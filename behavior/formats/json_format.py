"""The JSON report: docs/design.md's public contract (``schema_version``, ``run``, ``findings``;
later additions: ``suppressed``, ``expired_suppressions``, ``timeline``, each finding's
``fingerprint`` and the run's ``machine_id``, ``os`` and ``ips``).

Keys keep a fixed order and floats a fixed rounding, so the same report always gives the
same bytes (a replay is byte-identical to the live run apart from ``run.replayed``)."""

from __future__ import annotations

import json
from typing import Any

from behavior.interface import SCHEMA_VERSION, Finding, Report, RunInfo, SuppressionInfo


def run_to_dict(run: RunInfo) -> dict[str, Any]:
    """The ``run`` object: window, sources, events, losses and which rules ran."""
    return {
        "id": run.id,
        "rba_version": run.rba_version,
        "host": run.host,
        "machine_id": run.machine_id,
        "os": {"name": run.os_name, "version": run.os_version},
        "ips": list(run.ips),
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration_s": round(run.duration_s, 3),
        "partial": run.partial,
        "replayed": run.replayed,
        "sources": list(run.sources),
        "events": run.events,
        "lost_events": run.lost_events,
        "rules": [{"rule_id": r.rule_id, "ran": r.ran, "reason": r.reason} for r in run.rules],
        "notes": list(run.notes),
    }


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    """One finding as docs/design.md lists its fields."""
    return {
        "rule_id": finding.rule_id,
        "fingerprint": finding.fingerprint,
        "title": finding.title,
        "severity": finding.severity.value,
        "description": finding.description,
        "recommendation": finding.recommendation,
        "evidence": finding.evidence,
        "count": finding.count,
        "first_seen": finding.first_seen,
        "last_seen": finding.last_seen,
    }


def report_to_dict(report: Report) -> dict[str, Any]:
    """The whole report as a JSON-ready dict."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run": run_to_dict(report.run),
        "findings": [finding_to_dict(f) for f in report.findings],
        "suppressed": [
            finding_to_dict(s.finding) | {"suppression": suppression_to_dict(s.suppression)}
            for s in report.suppressed
        ],
        "expired_suppressions": [
            suppression_to_dict(e.suppression) | {"findings": e.findings}
            for e in report.expired_suppressions
        ],
        "timeline": report.timeline,
    }


def suppression_to_dict(info: SuppressionInfo) -> dict[str, Any]:
    """A suppression entry as reports state it (``expires`` is "" when it never does)."""
    return {
        "rule_id": info.rule_id,
        "match": info.match,
        "reason": info.reason,
        "expires": info.expires,
        "source": info.source,
    }


def render_json(report: Report) -> str:
    """The report as indented JSON text ending in a newline."""
    return json.dumps(report_to_dict(report), indent=2, ensure_ascii=False) + "\n"
