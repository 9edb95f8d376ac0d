"""``rba fleet``'s renderers: pure functions ``(FleetSummary) -> str`` in text, JSON and
HTML. The HTML page has the host report's look (its style sheet and CSP, see
:mod:`behavior.formats.html`): one self-contained page, no script, nothing fetched."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from html import escape

from behavior.fleet.interface import FleetSummary, RuleRow
from behavior.formats.html import CSP, STYLE
from behavior.interface import Severity

_CSS = {"High": "high", "Medium": "medium", "Low": "low", "Informational": "info"}


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC ('...Z'), as the reports write times."""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def render_fleet_json(summary: FleetSummary) -> str:
    """The summary as indented JSON: ``since`` in ISO form, every list of records."""
    data = dataclasses.asdict(summary)
    data["since"] = iso_ms(summary.since_ms)
    for item in data["new"]:
        item["first_seen"] = iso_ms(item.pop("first_seen_ms"))
    for item in data["silent"]:
        item["last_report"] = iso_ms(item.pop("last_report_ms"))
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render_fleet_text(summary: FleetSummary) -> str:
    """The summary as plain text tables."""
    since = iso_ms(summary.since_ms)
    out = [
        f"Fleet of {summary.hosts} host(s), {summary.runs} run(s) in {summary.lake}",
        f"Since {since}",
        "",
        "Findings per rule (active; hosts, distinct findings, sightings, suppressed):",
    ]
    out += [
        f"  {r.rule_id:<34} [{r.severity}] hosts {r.hosts}, findings {r.findings}, "
        f"sightings {r.sightings}, suppressed {r.suppressed}"
        for r in summary.rules
    ] or ["  none"]
    out += ["", "Top subjects across hosts:"]
    out += [
        f"  {s.hosts:>6} host(s)  {s.subject}"
        + (f" (package {s.package})" if s.package else "")
        + f"  [{s.rule_id}]"
        for s in summary.subjects
    ] or ["  none"]
    out += ["", f"New since {since} ({len(summary.new)}):"]
    out += [
        f"  {iso_ms(n.first_seen_ms)}  {n.host}  {n.rule_id} [{n.severity}]  {n.subject}"
        f"  {n.fingerprint}"
        for n in summary.new
    ] or ["  none"]
    out += ["", f"Hosts that have not reported since {since} ({len(summary.silent)}):"]
    out += [
        f"  {h.host}  last run {h.last_run} ended {iso_ms(h.last_report_ms)}"
        for h in summary.silent
    ] or ["  none"]
    return "\n".join(out) + "\n"


def render_fleet_html(summary: FleetSummary) -> str:
    """The summary as one self-contained HTML page in the host report's style."""
    since = iso_ms(summary.since_ms)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>rba fleet: {escape(summary.lake)}</title>",
        f"<style>{STYLE}</style></head><body><main>",
        f"<h1>Fleet of {summary.hosts} host(s)</h1>",
        f'<p class="meta">{summary.runs} run(s) in {escape(summary.lake)} · since '
        f"{escape(since)}</p>",
        *_cards(summary),
        "<h2>Findings per rule</h2>",
        _table(
            ("rule", "severity", "hosts", "findings", "sightings", "suppressed"),
            [
                (
                    f"<code>{escape(r.rule_id)}</code>",
                    _badge(r.severity),
                    str(r.hosts),
                    str(r.findings),
                    str(r.sightings),
                    str(r.suppressed),
                )
                for r in summary.rules
            ],
        ),
        "<h2>Top subjects across hosts</h2>",
        _table(
            ("hosts", "subject", "package", "rule"),
            [
                (
                    str(s.hosts),
                    escape(s.subject),
                    escape(s.package),
                    f"<code>{escape(s.rule_id)}</code>",
                )
                for s in summary.subjects
            ],
        ),
        f"<h2>New since {escape(since)} ({len(summary.new)})</h2>",
        _table(
            ("first seen", "host", "rule", "subject", "fingerprint"),
            [
                (
                    escape(iso_ms(n.first_seen_ms)),
                    escape(n.host),
                    f"{_badge(n.severity)}<code>{escape(n.rule_id)}</code>",
                    escape(n.subject),
                    f"<code>{escape(n.fingerprint)}</code>",
                )
                for n in summary.new
            ],
        ),
        f"<h2>Hosts that have not reported since {escape(since)} ({len(summary.silent)})</h2>",
        _table(
            ("host", "last run", "ended"),
            [
                (
                    escape(h.host),
                    f"<code>{escape(h.last_run)}</code>",
                    escape(iso_ms(h.last_report_ms)),
                )
                for h in summary.silent
            ],
        ),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _cards(summary: FleetSummary) -> list[str]:
    worst = max((r for r in summary.rules if r.hosts), key=_rank, default=None)
    css = _CSS.get(worst.severity, "info") if worst else "info"
    cards = [
        f'<div class="card info"><b>{summary.hosts}</b>Hosts</div>',
        f'<div class="card info"><b>{summary.runs}</b>Runs</div>',
        f'<div class="card {css}"><b>{sum(1 for r in summary.rules if r.hosts)}</b>'
        "Rules with findings</div>",
        f'<div class="card medium"><b>{len(summary.new)}</b>New findings</div>',
        f'<div class="card supp"><b>{len(summary.silent)}</b>Silent hosts</div>',
    ]
    return ["<h2>Summary</h2>", '<div class="cards">', *cards, "</div>"]


def _rank(rule: RuleRow) -> int:
    try:
        return Severity(rule.severity).rank
    except ValueError:
        return -1


def _badge(severity: str) -> str:
    return f'<span class="badge {_CSS.get(severity, "info")}">{escape(severity)}</span>'


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A table of already-escaped cells, or a line saying there is nothing."""
    if not rows:
        return "<p>None.</p>"
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>"
