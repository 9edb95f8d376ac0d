"""What changed between two reports of one host: findings that appeared (``new``),
disappeared (``resolved``) and stayed (``persisting``), matched by fingerprint.

Only active findings take part: a suppressed finding is accepted on purpose, so it is
neither new nor resolved. Renderers are pure ``(ReportDiff) -> str``: JSON (an object
with the three lists, persisting findings with both sides' counts), text, and ASFF (the
new report's findings, persisting ones keeping the old first sighting, and the resolved
ones archived, so Security Hub closes them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from behavior.formats.asff import asff_findings, render_batches
from behavior.formats.json_format import finding_to_dict, run_to_dict
from behavior.interface import Finding, Report


@dataclass(frozen=True)
class Persisting:
    """A finding in both reports: the new report's finding and the old count."""

    finding: Finding
    old: Finding


@dataclass(frozen=True)
class ReportDiff:
    """Two reports compared by fingerprint; each list in the new (or old) report's order."""

    old: Report
    new: Report
    appeared: tuple[Finding, ...]
    resolved: tuple[Finding, ...]
    persisting: tuple[Persisting, ...]


class DiffError(ValueError):
    """The reports cannot be compared (a finding without a fingerprint)."""


def diff_reports(old: Report, new: Report) -> ReportDiff:
    """``new`` against ``old``. Raises DiffError when a finding has no fingerprint (a
    report made before rba had them)."""
    for report, side in ((old, "old"), (new, "new")):
        if any(not f.fingerprint for f in report.findings):
            raise DiffError(
                f"the {side} report has findings without fingerprints (made by an older rba)"
            )
    before = {f.fingerprint: f for f in old.findings}
    after = {f.fingerprint for f in new.findings}
    return ReportDiff(
        old=old,
        new=new,
        appeared=tuple(f for f in new.findings if f.fingerprint not in before),
        resolved=tuple(f for f in old.findings if f.fingerprint not in after),
        persisting=tuple(
            Persisting(f, before[f.fingerprint]) for f in new.findings if f.fingerprint in before
        ),
    )


def diff_to_dict(diff: ReportDiff) -> dict[str, Any]:
    """The JSON object: both runs, then ``new``, ``resolved`` and ``persisting``."""
    return {
        "old_run": run_to_dict(diff.old.run),
        "new_run": run_to_dict(diff.new.run),
        "new": [finding_to_dict(f) for f in diff.appeared],
        "resolved": [finding_to_dict(f) for f in diff.resolved],
        "persisting": [
            finding_to_dict(p.finding)
            | {
                "old_count": p.old.count,
                "new_count": p.finding.count,
                "old_first_seen": p.old.first_seen,
            }
            for p in diff.persisting
        ],
    }


def render_diff_json(diff: ReportDiff) -> str:
    """The diff as indented JSON."""
    return json.dumps(diff_to_dict(diff), indent=2, ensure_ascii=False) + "\n"


def _subject_line(finding: Finding) -> str:
    ev = finding.evidence
    name = ev.get("path") or ev.get("module") or ""
    if not name and isinstance(ev.get("process"), dict):
        name = ev["process"].get("exe") or ev["process"].get("comm") or ""
    port = ev.get("port")
    remote = ev.get("remote")
    where = f" port {port}" if port else ""
    if isinstance(remote, dict):
        where = f" -> {remote.get('address')}:{remote.get('port')}"
    return f"{finding.severity.value:<13} {finding.rule_id}: {name or ev.get('server', '')}{where}"


def render_diff_text(diff: ReportDiff) -> str:
    """The diff for a person: counts, then each list with one line per finding."""
    lines = [
        f"rba diff: {diff.old.run.id} -> {diff.new.run.id} (host {diff.new.run.host})",
        f"{len(diff.appeared)} new, {len(diff.resolved)} resolved, "
        f"{len(diff.persisting)} persisting",
    ]
    for title, findings in (("NEW", diff.appeared), ("RESOLVED", diff.resolved)):
        if findings:
            lines += ["", f"{title} ({len(findings)})"]
            lines += [f"  {_subject_line(f)}  [{f.fingerprint}]" for f in findings]
    if diff.persisting:
        lines += ["", f"PERSISTING ({len(diff.persisting)})"]
        lines += [
            f"  {_subject_line(p.finding)}  seen {p.old.count}x then {p.finding.count}x"
            for p in diff.persisting
        ]
    return "\n".join(lines) + "\n"


def render_diff_asff(diff: ReportDiff, account_id: str, region: str) -> str:
    """The new report's findings (persisting ones first observed when the old report
    saw them) and the resolved ones ARCHIVED, in batches of at most 100."""
    first = {p.finding.fingerprint: p.old.first_seen for p in diff.persisting}
    new_only = Report(run=diff.new.run, findings=diff.new.findings)
    findings = asff_findings(
        new_only, account_id, region, first_observed=first, resolved=diff.resolved
    )
    return render_batches(findings)
