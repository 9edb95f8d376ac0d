"""The HTML report: one self-contained page, no script, nothing fetched when opened.

A Content-Security-Policy of ``default-src 'none'`` (inline styles only) makes the
browser refuse any fetch, so the page cannot leak that it was opened. It holds, in this
order: the host (OS, kernel, rba version, machine id), what to do first (the summary of
:mod:`behavior.formats.summary`), the findings by severity and rule with their evidence
as small tables, the timeline of the window (inline SVG, see :mod:`behavior.formats.svg`),
the suppressed findings with their reasons, the expired suppressions, and the coverage.

High findings start open, and Medium ones of a rule with at most :data:`OPEN_LIMIT`
findings; Low and Informational ones start collapsed. A rule with more findings than
that lists them inside one collapsed block: the summary already names their owners
("libpython3.11-stdlib: 30 files"), so a printout stays a few pages. The page fits a
390 px phone, and prints with no finding split across pages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from behavior.durations import format_duration
from behavior.formats.ecosystem import Entry, entries, flatten
from behavior.formats.summary import Summary, count_of, shown_evidence, subject_text, summarize
from behavior.formats.svg import connections_chart, execs_chart, listeners_chart
from behavior.interface import Finding, Report, Severity
from behavior.subjects import FileSubject, ListenerSubject, ModuleSubject, processes_of

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
SEVERITY_CLASS = {
    Severity.HIGH: "high",
    Severity.MEDIUM: "medium",
    Severity.LOW: "low",
    Severity.INFORMATIONAL: "info",
}
OPEN_LIMIT = 5  # a rule with more findings than this lists them in one collapsed block

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430;
 background:#f5f6f8}
main{max-width:1000px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:22px;margin:8px 0 6px}h2{font-size:18px;margin:28px 0 8px;
 border-bottom:1px solid #d4d8de;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
h4{font-size:14px;margin:14px 0 2px}
.meta{color:#4a5462}.cards{display:flex;gap:8px;flex-wrap:wrap;margin:0 0 10px}
.card{flex:1;min-width:90px;background:#fff;border-radius:6px;padding:6px 12px;
 border-left:6px solid #888;box-shadow:0 1px 2px #0002}
.card b{display:block;font-size:22px}
.host{width:auto}.host td{padding:1px 10px 1px 0;border:0}
.finding{background:#fff;border-radius:6px;margin:6px 0;padding:6px 12px;
 border-left:6px solid #888;box-shadow:0 1px 2px #0002}
.finding summary{cursor:pointer}
.high{border-color:#b42318}.medium{border-color:#d97706}.low{border-color:#1f6fb4}
.info{border-color:#6b7280}.supp{border-color:#7c3aed}
.badge{display:inline-block;font-size:12px;padding:1px 7px;border-radius:9px;color:#fff;
 margin-right:6px;background:#6b7280;font-weight:600}
.badge.high{background:#b42318}.badge.medium{background:#b45309}.badge.low{background:#1f6fb4}
.badge.supp{background:#7c3aed}
ul.todo,ol.todo{margin:4px 0 10px;padding-left:22px}ul.todo li,ol.todo li{margin:2px 0}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{text-align:left;padding:2px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}
td.k{color:#4a5462;white-space:nowrap;width:20%}td.v,code,summary b{overflow-wrap:anywhere}
ul.groups{list-style:none;padding-left:0}ul.owners{margin:2px 0 6px;padding-left:22px}
table.sub{font-size:12px;width:auto;margin:0}table.sub td,table.sub th{padding:1px 6px;
 border-bottom:1px solid #eef0f3}table.sub th{color:#4a5462;font-weight:600}
.rule p{margin:2px 0}details.many>summary{cursor:pointer;color:#1f4f8a;margin:4px 0}
li,td,th,p{overflow-wrap:anywhere}
.note{background:#f3e8ff;border-radius:4px;padding:4px 8px;margin:6px 0}
.warn{background:#fef3c7;border-radius:4px;padding:4px 8px;margin:6px 0}
figure{background:#fff;border-radius:6px;margin:10px 0;padding:8px;box-shadow:0 1px 2px #0002}
figure svg{display:block;width:100%;max-width:720px;height:auto}
figcaption{font-weight:600;margin:0 0 4px 4px}
svg .tl{font:12px system-ui,sans-serif;fill:#4a5462}svg .axis{stroke:#6b7280}
svg .tick{stroke:#6b7280}svg .grid{stroke:#e5e7eb}
svg .bar{fill:#cbd5e1}svg .accept{stroke:#14532d;stroke-width:2}
svg .sev-high{fill:#b42318}svg .sev-medium{fill:#d97706}svg .sev-low{fill:#1f6fb4}
svg .sev-info{fill:#6b7280}svg .exec{fill-opacity:.85}
@media (max-width:600px){main{padding:10px 8px 30px}td.k{white-space:normal;width:auto;
 overflow-wrap:normal}.card{padding:4px 8px}.card b{font-size:18px}
 svg .tl{font-size:15px}h1{font-size:19px}}
@media print{body{background:#fff;font-size:11px;line-height:1.3}main{max-width:none;padding:0}
 .rule-head{break-after:avoid}td,th{padding:0 6px}figure{padding:2px}
 .finding,.card,.rule-head,tr,svg{break-inside:avoid}figcaption{break-after:avoid}h2,h3,h4{break-after:avoid}
 .finding,.card,figure{box-shadow:none;border-top:1px solid #ddd;border-right:1px solid #ddd;
 border-bottom:1px solid #ddd}table{font-size:10px}.finding{margin:3px 0;padding:2px 10px}
 .finding p{margin:2px 0}h2{margin:14px 0 6px}.rule p{font-size:10px}}
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
        *_summary(summarize(report)),
        "<h2>Findings</h2>",
        *_findings([e for e in all_entries if not e.suppressed]),
        *_timeline(report),
        *_suppressed(report, [e for e in all_entries if e.suppressed]),
        *_coverage(report),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _header(report: Report) -> list[str]:
    run = report.run
    kind = "Replay of an assessment" if run.replayed else "Assessment"
    partial = ' <span class="badge high">partial window</span>' if run.partial else ""
    os_text = " ".join(p for p in (run.os_name, run.os_version) if p)
    facts = [
        ("OS", os_text or "unknown"),
        ("kernel", run.kernel or "unknown"),
        ("rba", run.rba_version or "unknown"),
        ("machine id", run.machine_id or "unknown"),
        ("run", run.id),
        ("window", f"{run.started_at} .. {run.ended_at} ({format_duration(run.duration_s)})"),
    ]
    rows = "".join(
        f'<tr><td class="k">{k}</td><td><code>{escape(v)}</code></td></tr>' for k, v in facts
    )
    return [
        f"<h1>{kind} of {escape(run.host or 'unknown host')}{partial}</h1>",
        f'<table class="host">{rows}</table>',
    ]


def _badge(severity: Severity) -> str:
    return f'<span class="badge {SEVERITY_CLASS[severity]}">{severity.value}</span>'


def _summary(summary: Summary) -> list[str]:
    """What to do first: counts, the High findings, the owners to fix first, the rest."""
    cards = [
        f'<div class="card {SEVERITY_CLASS[sev]}"><b>{n}</b>{sev.value}</div>'
        for sev, n in summary.counts
    ]
    cards.append(f'<div class="card supp"><b>{summary.suppressed}</b>Suppressed</div>')
    out = ["<h2>What to do first</h2>", '<div class="cards">', *cards, "</div>"]
    if summary.high:
        items = "".join(
            f"<li>{_badge(h.severity)}{escape(h.title)}: <code>{escape(h.subject)}</code> "
            f"<code>{escape(h.rule_id)}</code></li>"
            for h in summary.high
        )
        out += ["<h3>High findings</h3>", f'<ul class="todo">{items}</ul>']
    if summary.fix_first:
        items = "".join(
            f"<li>{_badge(x.severity)}{escape(x.owner.kind)} <code>{escape(x.owner.name)}"
            f"</code>: clears {x.count} finding{'s' if x.count != 1 else ''} "
            f"({escape(', '.join(x.rule_ids))})</li>"
            for x in summary.fix_first
        )
        out += ["<h3>Fix first</h3>", f'<ol class="todo">{items}</ol>']
    if summary.groups:
        groups = "".join(
            f"<li>{_badge(g.severity)}{escape(g.title)} <code>{escape(g.rule_id)}</code>"
            '<ul class="owners">'
            + "".join(f"<li><code>{escape(o.text(g.rule_id))}</code></li>" for o in g.owners)
            + (f"<li>{escape(g.more_text())}</li>" if g.more_owners else "")
            + "</ul></li>"
            for g in summary.groups
        )
        out += ["<h3>The rest, by rule and owner</h3>", f'<ul class="todo groups">{groups}</ul>']
    if not summary.total:
        out.append("<p>No findings.</p>")
    return out


def _timeline(report: Report) -> list[str]:
    timeline = report.timeline
    out = ["<h2>Timeline of the window</h2>"]
    if not timeline:
        return [*out, "<p>This report carries no timeline.</p>"]
    ports, exes = _mark_severities(report.findings)

    out += [
        "<figure><figcaption>Connections per protocol</figcaption>",
        connections_chart(timeline),
        "</figure>",
        "<figure><figcaption>Listeners: lifetime in the window, accepted connections "
        "marked (coloured: the severity of a finding about the port)</figcaption>",
        listeners_chart(timeline, ports)
        if timeline["listeners"]
        else "<p>No listening socket.</p>",
        _more(timeline["listeners_total"], len(timeline["listeners"]), "listeners"),
        "</figure>",
        "<figure><figcaption>Execs of flagged binaries (coloured by the finding's severity)"
        "</figcaption>",
        execs_chart(timeline, exes) if timeline["execs"] else "<p>No exec of a flagged binary.</p>",
        _more(timeline["execs_total"], len(timeline["execs"]), "execs"),
        "</figure>",
    ]
    return out


def _mark_severities(findings: Iterable[Finding]) -> tuple[dict[int, str], dict[str, str]]:
    """The severity class of the most severe finding about each listening port and each
    executable (a file, a module, or the process a subject names), from the subjects."""
    ports: dict[int, Severity] = {}
    exes: dict[str, Severity] = {}
    for f in sorted(findings, key=lambda f: f.severity.rank):  # the most severe wins
        s = f.subject
        if s is None:
            continue
        if isinstance(s, ListenerSubject):
            ports[s.port] = f.severity
        # A file's own path, not its users': a library's finding is not theirs.
        paths = [s.path] if isinstance(s, FileSubject) else [p.exe for p in processes_of(s)]
        if isinstance(s, ModuleSubject):
            paths.append(s.module)
        exes.update((path, f.severity) for path in paths if path)
    return (
        {port: SEVERITY_CLASS[sev] for port, sev in ports.items()},
        {exe: SEVERITY_CLASS[sev] for exe, sev in exes.items()},
    )


def _more(total: int, shown: int, what: str) -> str:
    return f"<p class='meta'>{shown} of {total} {what} shown.</p>" if total > shown else ""


def _findings(listed: Sequence[Entry]) -> list[str]:
    """The findings by severity, then by rule: the rule's description and fix once, then
    one collapsible block per subject."""
    out: list[str] = []
    for severity in Severity:
        group = [e for e in listed if e.finding.severity is severity]
        if not group:
            continue
        out.append(f"<h3>{severity.value} ({len(group)})</h3>")
        by_rule: dict[str, list[Entry]] = {}
        for entry in group:
            by_rule.setdefault(entry.finding.rule_id, []).append(entry)
        for rule_id, items in by_rule.items():
            out.append(_rule_head(rule_id, items[0].finding, len(items)))
            if severity is not Severity.HIGH and len(items) > OPEN_LIMIT:
                out.append(_many(items))
                continue
            opened = severity in (Severity.HIGH, Severity.MEDIUM)
            out += [_finding(e, opened=opened) for e in items]
    return out or ["<p>No findings.</p>"]


def _many(items: Sequence[Entry]) -> str:
    """A rule's many findings in one collapsed block (their owners are in the summary)."""
    return (
        f'<details class="many"><summary>all {len(items)} findings of this rule, one per '
        "subject (the summary above groups them by owner)</summary>"
        + "".join(_finding(e) for e in items)
        + "</details>"
    )


def _rule_head(rule_id: str, first: Finding, n: int) -> str:
    return (
        f'<div class="rule rule-head"><h4>{escape(first.title)} <code>{escape(rule_id)}</code>'
        f" ({escape(count_of(rule_id, n))})</h4><p>{escape(first.description)}</p>"
        f"<p><b>Fix:</b> {escape(first.recommendation)}</p></div>"
    )


def _finding(entry: Entry, *, opened: bool = False, standalone: bool = False) -> str:
    f = entry.finding
    css = SEVERITY_CLASS[f.severity]
    badge = _badge(f.severity)
    if entry.suppressed:
        badge += '<span class="badge supp">suppressed</span>'
    note = ""
    if entry.note():
        note = f'<p class="{"note" if entry.suppressed else "warn"}">{escape(entry.note())}</p>'
    subject = subject_text(f) or f.title
    about = ""
    if standalone:
        about = f"<p>{escape(f.description)}</p><p><b>Fix:</b> {escape(f.recommendation)}</p>"
    state = " open" if opened else ""
    return (
        f'<details class="finding {css}"{state}><summary>{badge}{escape(f.title)}: '
        f"<b>{escape(subject)}</b> <code>{escape(f.rule_id)}</code></summary>{note}{about}"
        f'<p class="meta">seen {f.count}x, {escape(f.first_seen)} .. {escape(f.last_seen)}'
        f"{_fingerprint(f)}</p>{evidence_table(shown_evidence(f))}</details>"
    )


def evidence_table(evidence: Mapping[str, Any]) -> str:
    """Evidence as a key/value table; an object becomes a small key/value table, a list
    of objects a small table with a column per field (never ``x.0.y`` rows)."""
    rows = "".join(
        f'<tr><td class="k">{escape(k)}</td><td class="v">{_value(v)}</td></tr>'
        for k, v in evidence.items()
        if v not in ("", None, [], {})
    )
    return f"<table>{rows}</table>"


def _value(value: Any) -> str:
    if isinstance(value, Mapping):
        flat = flatten(value)
        rows = "".join(
            f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in flat.items()
        )
        return f'<table class="sub">{rows}</table>'
    if isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
        items = [flatten(v) if isinstance(v, Mapping) else {"value": _scalar(v)} for v in value]
        columns = list(dict.fromkeys(k for item in items for k in item))
        head = "".join(f"<th>{escape(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(item.get(c, ''))}</td>" for c in columns) + "</tr>"
            for item in items
        )
        return f'<table class="sub"><tr>{head}</tr>{body}</table>'
    if isinstance(value, list):
        return escape(", ".join(_scalar(v) for v in value))
    return escape(_scalar(value))


def _scalar(value: Any) -> str:
    flat = flatten({"": value})
    return next(iter(flat.values()), "")


def _suppressed(report: Report, items: list[Entry]) -> list[str]:
    out = [f"<h2>Suppressed ({len(items)})</h2>"]
    out += [_finding(e, standalone=True) for e in items] or ["<p>No finding was suppressed.</p>"]
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


def _coverage(report: Report) -> list[str]:
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
        "<h2>Coverage</h2>",
        f"<table>{rows}</table>",
        "<h3>Rules</h3>",
        f"<table><tr><th>rule</th><th>status</th><th>reason or note</th></tr>{rules}</table>",
        f"<h3>Notes</h3><ul>{notes}</ul>" if notes else "",
    ]


def _fingerprint(finding: Finding) -> str:
    """The finding's fingerprint, for finding it again in other runs ("" when none)."""
    if not finding.fingerprint:
        return ""
    return f', fingerprint <code class="fp">{escape(finding.fingerprint)}</code>'
