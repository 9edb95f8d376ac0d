"""The text report: findings grouped by severity, readable in an 80-column terminal,
ending with a one-line summary."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from behavior.durations import format_duration
from behavior.interface import Finding, Report, Severity

WIDTH = 80


def _wrap(text: str, indent: str) -> list[str]:
    """``text`` wrapped at spaces only: a path, address or command line is never split
    (at a hyphen or anywhere else), so it copies and greps whole; a word longer than
    the width gets a line of its own."""
    lines = textwrap.wrap(
        text,
        WIDTH,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_on_hyphens=False,
        break_long_words=False,
    )
    return lines or [indent]


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _evidence_lines(evidence: dict[str, Any], indent: str) -> list[str]:
    lines = []
    for key, value in evidence.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k}={_scalar(v)}" for k, v in value.items() if v not in ("", None))
            lines += _wrap(f"{key}: {inner}", indent)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            items = "; ".join(", ".join(f"{k}={_scalar(v)}" for k, v in i.items()) for i in value)
            lines += _wrap(f"{key}: {items}", indent)
        elif isinstance(value, list):
            lines += _wrap(f"{key}: {', '.join(_scalar(v) for v in value)}", indent)
        else:
            lines += _wrap(f"{key}: {_scalar(value)}", indent)
    return lines


def _finding_lines(finding: Finding) -> list[str]:
    head = f"* {finding.title} [{finding.rule_id}]"
    seen = f"seen {finding.count}x, {finding.first_seen} .. {finding.last_seen}"
    if finding.fingerprint:
        seen += f", fingerprint {finding.fingerprint}"
    return [
        *_wrap(head, "  "),
        *_wrap(seen, "    "),
        *_evidence_lines(finding.evidence, "    "),
        *_wrap(f"fix: {finding.recommendation}", "    "),
    ]


def summary_line(report: Report) -> str:
    """'3 findings: 1 High, 2 Medium, 0 Low, 0 Informational' (and 'partial window')."""
    counts = {sev: 0 for sev in Severity}
    for finding in report.findings:
        counts[finding.severity] += 1
    parts = ", ".join(f"{n} {sev.value}" for sev, n in counts.items())
    total = len(report.findings)
    tail = " (partial window)" if report.run.partial else ""
    if report.suppressed:
        tail += f"; {len(report.suppressed)} suppressed"
    return f"{total} finding{'s' if total != 1 else ''}: {parts}{tail}"


def by_rba(version: str) -> str:
    """' (rba 0.1.0)': which rba made a report, for the run facts ("" when unknown)."""
    return f" (rba {version})" if version else ""


def _header(report: Report) -> list[str]:
    run = report.run
    kind = "replay of an assessment" if run.replayed else "assessment"
    window = f"{run.started_at} .. {run.ended_at} ({format_duration(run.duration_s)})"
    lines = [
        *_wrap(f"rba {kind} of {run.host}, run {run.id}{by_rba(run.rba_version)}", ""),
        *_wrap(f"window: {window}{', ended early (partial)' if run.partial else ''}", ""),
        *_wrap(
            f"sources: {', '.join(run.sources) or 'none'}; events: {run.events}; "
            f"lost events: {run.lost_events}",
            "",
        ),
    ]
    not_run = [r for r in run.rules if not r.ran]
    noted = [r for r in run.rules if r.ran and r.reason]
    for status in not_run:
        lines += _wrap(f"rule not run: {status.rule_id}: {status.reason}", "")
    for status in noted:
        lines += _wrap(f"note: {status.rule_id}: {status.reason}", "")
    for note in run.notes:
        lines += _wrap(f"note: {note}", "")
    return lines


def render_text(report: Report) -> str:
    """The human-readable report."""
    lines = _header(report)
    for severity in Severity:
        group = [f for f in report.findings if f.severity is severity]
        if not group:
            continue
        lines += ["", f"{severity.value.upper()} ({len(group)})"]
        for finding in group:
            lines += _finding_lines(finding)
    lines += _suppression_lines(report)
    lines += ["", summary_line(report)]
    return "\n".join(lines) + "\n"


def _suppression_lines(report: Report) -> list[str]:
    lines: list[str] = []
    if report.suppressed:
        lines += ["", f"SUPPRESSED ({len(report.suppressed)})"]
    for item in report.suppressed:
        info = item.suppression
        until = f", until {info.expires}" if info.expires else ""
        lines += _finding_lines(item.finding)
        lines += _wrap(f"suppressed ({info.source}{until}): {info.reason}", "    ")
    if report.expired_suppressions:
        lines += ["", f"EXPIRED SUPPRESSIONS ({len(report.expired_suppressions)})"]
    for expired in report.expired_suppressions:
        info = expired.suppression
        match = ", ".join(f"{k}={v}" for k, v in info.match.items()) or "any subject"
        lines += _wrap(
            f"* {info.rule_id} ({match}) expired {info.expires}, no longer applied "
            f"({expired.findings} finding(s) reported above); was: {info.reason} "
            f"[{info.source}]",
            "  ",
        )
    return lines
