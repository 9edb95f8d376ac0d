"""The HTML report: one self-contained page, no script, nothing fetched when opened.

A Content-Security-Policy of ``default-src 'none'`` (inline styles only) makes the
browser refuse any fetch, so the page cannot leak that it was opened. It holds the
summary by severity, the timeline of the window (inline SVG, see
:mod:`behavior.formats.svg`), the findings with their evidence, the suppressed findings
with their reasons, the expired suppressions, and the run facts.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

from behavior.durations import format_duration
from behavior.formats.ecosystem import Entry, entries, flatten
from behavior.formats.svg import connections_chart, execs_chart, listeners_chart
from behavior.formats.text import by_rba
from behavior.interface import Report, Severity

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
SEVERITY_CLASS = {
    Severity.HIGH: "high",
    Severity.MEDIUM: "medium",
    Severity.LOW: "low",
    Severity.INFORMATIONAL: "info",
}

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430;
 background:#f5f6f8}
main{max-width:1000px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:18px;margin:28px 0 8px;
 border-bottom:1px solid #d4d8de;padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
.meta{color:#4a5462}.cards{display:flex;gap:10px;flex-wrap:wrap}
.card{flex:1;min-width:120px;background:#fff;border-radius:6px;padding:10px 14px;
 border-left:6px solid #888;box-shadow:0 1px 2px #0002}
.card b{display:block;font-size:26px}
.finding{background:#fff;border-radius:6px;margin:10px 0;padding:8px 14px;
 border-left:6px solid #888;box-shadow:0 1px 2px #0002}
.finding summary{cursor:pointer;font-weight:600}
.high{border-color:#b42318}.medium{border-color:#d97706}.low{border-color:#1f6fb4}
.info{border-color:#6b7280}.supp{border-color:#7c3aed}
.badge{display:inline-block;font-size:12px;padding:1px 7px;border-radius:9px;color:#fff;
 margin-right:6px;background:#6b7280}
.badge.high{background:#b42318}.badge.medium{background:#b45309}.badge.low{background:#1f6fb4}
.badge.supp{background:#7c3aed}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{text-align:left;padding:3px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}
td.k{color:#4a5462;white-space:nowrap;width:30%}td code,td.v{word-break:break-all}
.note{background:#f3e8ff;border-radius:4px;padding:4px 8px;margin:6px 0}
.warn{background:#fef3c7;border-radius:4px;padding:4px 8px;margin:6px 0}
figure{background:#fff;border-radius:6px;margin:10px 0;padding:8px;box-shadow:0 1px 2px #0002;
 overflow-x:auto}
figcaption{font-weight:600;margin:0 0 4px 4px}
svg .tl{font:11px system-ui,sans-serif;fill:#4a5462}svg .axis{stroke:#6b7280}
svg .tick{stroke:#6b7280}svg .grid{stroke:#e5e7eb}
svg .bar{fill:#93c5fd}svg .bar.flagged{fill:#fca5a5}svg .accept{stroke:#14532d;stroke-width:2}
svg .exec{fill:#b42318;fill-opacity:.8}
"""


def render_html(report: Report) -> str:
    """The whole report as one HTML document."""
    all_entries = list(entries(report))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>rba report: {escape(report.run.host)} {escape(report.run.id)}</title>",
        f"<style>{STYLE}</style></head><body><main>",
        *_header(report),
        *_summary(report),
        *_timeline(report),
        "<h2>Findings</h2>",
        *_findings(e for e in all_entries if not e.suppressed),
        *_suppressed(report, [e for e in all_entries if e.suppressed]),
        *_run_facts(report),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _header(report: Report) -> list[str]:
    run = report.run
    kind = "Replay of an assessment" if run.replayed else "Assessment"
    partial = ' <span class="badge high">partial window</span>' if run.partial else ""
    return [
        f"<h1>{kind} of {escape(run.host or 'unknown host')}{partial}</h1>",
        f'<p class="meta">run {escape(run.id)}{escape(by_rba(run.rba_version))} · '
        f"{escape(run.started_at)} .. "
        f"{escape(run.ended_at)} ({escape(format_duration(run.duration_s))})</p>",
    ]


def _summary(report: Report) -> list[str]:
    counts = {sev: 0 for sev in Severity}
    for finding in report.findings:
        counts[finding.severity] += 1
    cards = [
        f'<div class="card {SEVERITY_CLASS[sev]}"><b>{n}</b>{sev.value}</div>'
        for sev, n in counts.items()
    ]
    cards.append(f'<div class="card supp"><b>{len(report.suppressed)}</b>Suppressed</div>')
    return ["<h2>Summary by severity</h2>", '<div class="cards">', *cards, "</div>"]


def _timeline(report: Report) -> list[str]:
    timeline = report.timeline
    out = ["<h2>Timeline of the window</h2>"]
    if not timeline:
        return [*out, "<p>This report carries no timeline.</p>"]
    flagged_ports = {
        int(f.evidence["port"]) for f in report.findings if isinstance(f.evidence.get("port"), int)
    }
    out += [
        "<figure><figcaption>Connections per protocol</figcaption>",
        connections_chart(timeline),
        "</figure>",
        "<figure><figcaption>Listeners: lifetime in the window, accepted connections "
        "marked (red: a finding names the port)</figcaption>",
        listeners_chart(timeline, flagged_ports)
        if timeline["listeners"]
        else "<p>No listening socket.</p>",
        _more(timeline["listeners_total"], len(timeline["listeners"]), "listeners"),
        "</figure>",
        "<figure><figcaption>Execs of flagged binaries</figcaption>",
        execs_chart(timeline) if timeline["execs"] else "<p>No exec of a flagged binary.</p>",
        _more(timeline["execs_total"], len(timeline["execs"]), "execs"),
        "</figure>",
    ]
    return out


def _more(total: int, shown: int, what: str) -> str:
    return f"<p class='meta'>{shown} of {total} {what} shown.</p>" if total > shown else ""


def _findings(items: Iterable[Entry]) -> list[str]:
    out: list[str] = []
    listed = list(items)
    for severity in Severity:
        group = [e for e in listed if e.finding.severity is severity]
        if group:
            out.append(f"<h3>{severity.value} ({len(group)})</h3>")
            out += [_finding(e) for e in group]
    return out or ["<p>No findings.</p>"]


def _finding(entry: Entry) -> str:
    f = entry.finding
    css = SEVERITY_CLASS[f.severity]
    badge = f'<span class="badge {css}">{f.severity.value}</span>'
    if entry.suppressed:
        badge += '<span class="badge supp">suppressed</span>'
    note = ""
    if entry.note():
        note = f'<p class="{"note" if entry.suppressed else "warn"}">{escape(entry.note())}</p>'
    rows = "".join(
        f'<tr><td class="k">{escape(k)}</td><td class="v">{escape(v)}</td></tr>'
        for k, v in flatten(f.evidence).items()
    )
    return (
        f'<details class="finding {css}" open><summary>{badge}{escape(f.title)} '
        f"<code>{escape(f.rule_id)}</code></summary>{note}"
        f"<p>{escape(f.description)}</p>"
        f'<p class="meta">seen {f.count}x, {escape(f.first_seen)} .. {escape(f.last_seen)}</p>'
        f"<table>{rows}</table><p><b>Fix:</b> {escape(f.recommendation)}</p></details>"
    )


def _suppressed(report: Report, items: list[Entry]) -> list[str]:
    out = [f"<h2>Suppressed ({len(items)})</h2>"]
    out += [_finding(e) for e in items] or ["<p>No finding was suppressed.</p>"]
    if report.expired_suppressions:
        rows = "".join(
            f"<tr><td>{escape(e.suppression.rule_id)}</td>"
            f"<td>{escape(_match_text(e.suppression.match))}</td>"
            f"<td>{escape(e.suppression.expires)}</td><td>{e.findings}</td>"
            f"<td>{escape(e.suppression.reason)}</td><td>{escape(e.suppression.source)}</td></tr>"
            for e in report.expired_suppressions
        )
        out += [
            f"<h3>Expired suppressions ({len(report.expired_suppressions)})</h3>",
            "<p>These no longer apply: the findings they match are reported above.</p>",
            "<table><tr><th>rule</th><th>match</th><th>expired</th><th>findings</th>"
            f"<th>reason</th><th>defined at</th></tr>{rows}</table>",
        ]
    return out


def _match_text(match: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in match.items()) or "any subject"


def _run_facts(report: Report) -> list[str]:
    run = report.run
    facts = [
        ("sources", ", ".join(run.sources) or "none"),
        ("events", str(run.events)),
        ("lost events", str(run.lost_events)),
        ("partial", "yes: the window was ended early" if run.partial else "no"),
        ("replayed", "yes" if run.replayed else "no"),
    ]
    rows = "".join(f'<tr><td class="k">{k}</td><td>{escape(v)}</td></tr>' for k, v in facts)
    rules = "".join(
        f"<tr><td><code>{escape(r.rule_id)}</code></td><td>{'ran' if r.ran else 'not run'}</td>"
        f"<td>{escape(r.reason)}</td></tr>"
        for r in run.rules
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in run.notes)
    return [
        "<h2>Run facts</h2>",
        f"<table>{rows}</table>",
        "<h3>Rules</h3>",
        f"<table><tr><th>rule</th><th>status</th><th>reason or note</th></tr>{rules}</table>",
        f"<h3>Notes</h3><ul>{notes}</ul>" if notes else "",
    ]
