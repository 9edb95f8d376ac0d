"""The JSON report: docs/design.md's public contract (``schema_version``, ``run``, ``findings``;
later additions: ``suppressed``, ``expired_suppressions``, ``timeline``, each finding's
``fingerprint`` and the run's ``machine_id``, ``os`` and ``ips``).

Keys keep a fixed order and floats a fixed rounding, so the same report always gives the
same bytes (a replay is byte-identical to the live run apart from ``run.replayed``)."""

from __future__ import annotations

import json
from typing import Any

from behavior.formats.summary import summarize, summary_to_dict
from behavior.interface import (
    SCHEMA_VERSION,
    Finding,
    Report,
    RuleStatus,
    RunInfo,
    Severity,
    SuppressedFinding,
    SuppressionInfo,
)
from behavior.subjects import SubjectError, subject_from_evidence


def run_to_dict(run: RunInfo) -> dict[str, Any]:
    """The ``run`` object: window, sources, events, losses and which rules ran."""
    return {
        "id": run.id,
        "rba_version": run.rba_version,
        "host": run.host,
        "machine_id": run.machine_id,
        "os": {"name": run.os_name, "version": run.os_version},
        "kernel": run.kernel,
        "ips": list(run.ips),
        "instance_id": run.instance_id,
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
        "summary": summary_to_dict(summarize(report)),
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


def report_from_dict(data: Any) -> Report:
    """The report a JSON report (:func:`report_to_dict`'s output) holds: run, findings
    with their subjects read back from the evidence, suppressed findings. Raises
    ValueError naming what is wrong. Timelines and expired entries are not read back."""
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError("not an rba JSON report (schema_version 1 missing)")
    try:
        run = _run_from(data["run"])
        findings = tuple(_finding_from(f) for f in data["findings"])
        suppressed = tuple(
            SuppressedFinding(_finding_from(s), _suppression_from(s["suppression"]))
            for s in data.get("suppressed") or ()
        )
    except (KeyError, TypeError, AttributeError, SubjectError) as e:
        raise ValueError(f"malformed report ({e!r})") from None
    return Report(run=run, findings=findings, suppressed=suppressed)


def _run_from(run: dict[str, Any]) -> RunInfo:
    os_info = run.get("os") or {}
    return RunInfo(
        id=str(run["id"]),
        host=str(run.get("host", "")),
        started_at=str(run["started_at"]),
        ended_at=str(run["ended_at"]),
        duration_s=float(run.get("duration_s", 0.0)),
        sources=tuple(map(str, run.get("sources") or ())),
        events=int(run.get("events", 0)),
        lost_events=int(run.get("lost_events", 0)),
        rules=tuple(
            RuleStatus(str(r["rule_id"]), bool(r["ran"]), str(r.get("reason", "")))
            for r in run.get("rules") or ()
        ),
        partial=bool(run.get("partial", False)),
        replayed=bool(run.get("replayed", False)),
        notes=tuple(map(str, run.get("notes") or ())),
        machine_id=str(run.get("machine_id", "")),
        os_name=str(os_info.get("name", "")),
        os_version=str(os_info.get("version", "")),
        ips=tuple(map(str, run.get("ips") or ())),
        instance_id=str(run.get("instance_id", "")),
        kernel=str(run.get("kernel", "")),
        rba_version=str(run.get("rba_version", "")),
    )


def _finding_from(data: dict[str, Any]) -> Finding:
    rule_id = str(data["rule_id"])
    evidence = data["evidence"]
    if not isinstance(evidence, dict):
        raise TypeError("evidence is not an object")
    return Finding(
        rule_id=rule_id,
        title=str(data["title"]),
        severity=Severity.parse(str(data["severity"])),
        description=str(data.get("description", "")),
        recommendation=str(data.get("recommendation", "")),
        evidence=evidence,
        count=int(data.get("count", 1)),
        first_seen=str(data["first_seen"]),
        last_seen=str(data["last_seen"]),
        subject=subject_from_evidence(rule_id, evidence),
        fingerprint=str(data.get("fingerprint", "")),
    )


def _suppression_from(data: dict[str, Any]) -> SuppressionInfo:
    return SuppressionInfo(
        rule_id=str(data["rule_id"]),
        match=dict(data.get("match") or {}),
        reason=str(data.get("reason", "")),
        expires=str(data.get("expires", "")),
        source=str(data.get("source", "")),
    )
