"""The text report, readable in an 80-column terminal: a title line, what to do first (see
:mod:`behavior.formats.summary`), the findings grouped by severity, then the coverage
(run facts, rules not run, notes) and a one-line count."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from behavior.durations import format_duration
from behavior.formats.summary import Summary, shown_evidence, summarize
from behavior.interface import Finding, Report, Severity

WIDTH = 80
RESET = "\x1b[0m"
# High red, Medium yellow, Low cyan, Informational dim (see terminal.COLORS).
SEVERITY_COLORS = {
    Severity.HIGH: "\x1b[31m",
    Severity.MEDIUM: "\x1b[33m",
    Severity.LOW: "\x1b[36m",
    Severity.INFORMATIONAL: "\x1b[2m",
}


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
        *_evidence_lines(shown_evidence(finding), "    "),
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


def _title(report: Report) -> list[str]:
    """The first line: which host, which run, which rba."""
    run = report.run
    kind = "replay of an assessment" if run.replayed else "assessment"
    return _wrap(f"rba {kind} of {run.host}, run {run.id}{by_rba(run.rba_version)}", "")


def _coverage(report: Report) -> list[str]:
    """What the run could see: window, sources and losses, rules not run, notes, gaps."""
    run = report.run
    window = f"{run.started_at} .. {run.ended_at} ({format_duration(run.duration_s)})"
    lines = [
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


def render_text(report: Report, *, color: bool = False) -> str:
    """The human-readable report: a title line (host, run, rba), what to do first, the
    findings by severity, the suppressed ones, then the coverage (window, sources, rules
    not run, notes) and the counts.
    With ``color`` (the CLI passes it for a terminal without NO_COLOR), severities are
    painted with the codes :data:`behavior.formats.terminal.COLORS` lets through."""
    lines = [*_title(report), "", *_summary_lines(summarize(report), color)]
    for severity in Severity:
        group = [f for f in report.findings if f.severity is severity]
        if not group:
            continue
        lines += ["", _paint(f"{severity.value.upper()} ({len(group)})", severity, color)]
        for finding in group:
            lines += _finding_lines(finding)
    lines += _suppression_lines(report)
    lines += ["", "COVERAGE", *_coverage(report)]
    lines += ["", summary_line(report)]
    return "\n".join(lines) + "\n"


def _paint(text: str, severity: Severity, color: bool) -> str:
    hue = SEVERITY_COLORS.get(severity, "")
    return f"{hue}{text}{RESET}" if color and hue else text


def _summary_lines(summary: Summary, color: bool) -> list[str]:
    """What to do first: the High findings, the owners to fix first, the rest by rule."""
    counts = ", ".join(
        _paint(f"{n} {sev.value}", sev, color and n > 0) for sev, n in summary.counts
    )
    lines = [f"WHAT TO DO FIRST: {summary.total} finding{'s' if summary.total != 1 else ''}"]
    lines[0] += f" ({counts})" + (
        f"; {summary.suppressed} suppressed" if summary.suppressed else ""
    )
    for line in summary.high:
        head = _paint("High", Severity.HIGH, color)
        lines += _wrap(f"{head}: {line.title}: {line.subject} [{line.rule_id}]", "  ")
    if summary.fix_first:
        lines += ["  fix first:"]
    for n, fix in enumerate(summary.fix_first, 1):
        rules = ", ".join(fix.rule_ids)
        cleared = f"{fix.count} finding{'s' if fix.count != 1 else ''}"
        lines += _wrap(f"{n}. {fix.owner.label()}: clears {cleared} ({rules})", "    ")
    if summary.groups:
        lines += ["  by rule:"]
    for group in summary.groups:
        sev = _paint(group.severity.value, group.severity, color)
        lines += _wrap(f"{sev} ({group.count}): {group.title} [{group.rule_id}]", "    ")
        for owner in group.owners:
            lines += _wrap(owner.text(group.rule_id), "      ")
        if group.more_owners:
            lines += _wrap(group.more_text(), "      ")
    return lines


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
