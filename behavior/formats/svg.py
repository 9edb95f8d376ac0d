"""Hand-written inline SVG for the HTML report's timeline: small, deterministic, and
needing nothing but the standard library (no plotting package, no script, no font).

Each function takes the report's JSON-ready ``timeline`` (see :mod:`behavior.window.timeline`)
and returns one ``<svg>`` element as text. Every mark has a ``<title>``, which browsers
show as a tooltip, so the exact numbers are one hover away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from behavior.durations import format_duration

WIDTH = 960
LEFT = 190  # room for row labels
RIGHT = 20
PLOT_W = WIDTH - LEFT - RIGHT
SERIES_COLORS = {"tcp-out": "#1f6fb4", "tcp-in": "#2a9d3a", "udp-out": "#e07b12"}
SERIES_LABELS = {
    "tcp-out": "TCP out (connects)",
    "tcp-in": "TCP in (accepted)",
    "udp-out": "UDP out (sends)",
}
ROW_H = 22
TICKS = 6


def _x(seconds: float, window_s: float) -> float:
    return LEFT + PLOT_W * min(max(seconds / window_s, 0.0), 1.0) if window_s > 0 else LEFT


def _time_axis(window_s: float, y: float) -> list[str]:
    parts = [f'<line class="axis" x1="{LEFT}" y1="{y}" x2="{LEFT + PLOT_W}" y2="{y}"/>']
    for i in range(TICKS + 1):
        seconds = window_s * i / TICKS
        x = _x(seconds, window_s)
        parts.append(f'<line class="tick" x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}"/>')
        parts.append(
            f'<text class="tl" x="{x:.1f}" y="{y + 16}" text-anchor="middle">'
            f"+{escape(format_duration(seconds))}</text>"
        )
    return parts


def _svg(height: float, label: str, body: Sequence[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" width="{WIDTH}" height="{height:.0f}">'
        + "".join(body)
        + "</svg>"
    )


def connections_chart(timeline: Mapping[str, Any]) -> str:
    """Connections per protocol over the window: a bar per series in each time bucket."""
    series: Mapping[str, Sequence[int]] = timeline["series"]
    window_s, bucket_s = float(timeline["window_s"]), float(timeline["bucket_s"])
    top = max([1, *(max(v, default=0) for v in series.values())])
    plot_h, y0 = 150.0, 20.0
    base = y0 + plot_h
    body = [
        f'<text class="tl" x="{LEFT - 8}" y="{y0 + 4}" text-anchor="end">{top}</text>',
        f'<text class="tl" x="{LEFT - 8}" y="{base}" text-anchor="end">0</text>',
        f'<text class="tl" x="{LEFT - 8}" y="{y0 + plot_h / 2}" text-anchor="end">'
        f"per {escape(format_duration(bucket_s))}</text>",
        f'<line class="grid" x1="{LEFT}" y1="{y0}" x2="{LEFT + PLOT_W}" y2="{y0}"/>',
    ]
    names = list(series)
    slot = PLOT_W / max(1, len(next(iter(series.values()), [])))
    width = max(1.0, (slot - 2) / max(1, len(names)))
    for k, name in enumerate(names):
        color = SERIES_COLORS.get(name, "#555")
        label = escape(SERIES_LABELS.get(name, name))
        for i, n in enumerate(series[name]):
            if not n:
                continue
            height = plot_h * n / top
            x = _x(i * bucket_s, window_s) + 1 + k * width
            body.append(
                f'<rect x="{x:.1f}" y="{base - height:.1f}" width="{width:.1f}" '
                f'height="{height:.1f}" fill="{color}"><title>{label}: {n} at '
                f"+{format_duration(i * bucket_s)}</title></rect>"
            )
    body += _time_axis(window_s, base)
    for i, name in enumerate(series):
        x = LEFT + i * 220
        body.append(
            f'<rect x="{x}" y="{base + 26}" width="12" height="12" '
            f'fill="{SERIES_COLORS.get(name, "#555")}"/>'
            f'<text class="tl" x="{x + 18}" y="{base + 36}">'
            f"{escape(SERIES_LABELS.get(name, name))} ({sum(series[name])})</text>"
        )
    return _svg(base + 46, "connections per protocol over time", body)


def listeners_chart(timeline: Mapping[str, Any], flagged_ports: set[int]) -> str:
    """Listener lifetimes as bars, accepted connections as marks on them."""
    listeners: Sequence[Mapping[str, Any]] = timeline["listeners"]
    window_s = float(timeline["window_s"])
    body: list[str] = []
    for row, s in enumerate(listeners):
        y = 10 + row * ROW_H
        x1, x2 = _x(s["start_s"], window_s), _x(s["end_s"], window_s)
        css = "bar flagged" if s["port"] in flagged_ports else "bar"
        label = f"{s['address']}:{s['port']} {s['comm']} ({s['pid']})"
        body.append(
            f'<text class="tl" x="{LEFT - 8}" y="{y + 12}" text-anchor="end">'
            f"{escape(label[:30])}</text>"
            f'<rect class="{css}" x="{x1:.1f}" y="{y + 3}" width="{max(x2 - x1, 1):.1f}" '
            f'height="{ROW_H - 8}"><title>{escape(label)}: listening '
            f"+{format_duration(s['start_s'])} .. +{format_duration(s['end_s'])}, "
            f"{s['accepted']} accepted</title></rect>"
        )
        for mark in s["accept_marks_s"]:
            x = _x(mark, window_s)
            body.append(
                f'<line class="accept" x1="{x:.1f}" y1="{y + 1}" x2="{x:.1f}" '
                f'y2="{y + ROW_H - 3}"><title>accepted at +{mark:g}s</title></line>'
            )
    height = 10 + len(listeners) * ROW_H
    body += _time_axis(window_s, height + 2)
    return _svg(height + 24, "listener lifetimes with accepted connections", body)


def execs_chart(timeline: Mapping[str, Any]) -> str:
    """One row per flagged binary, a mark at each exec."""
    execs: Sequence[Mapping[str, Any]] = timeline["execs"]
    window_s = float(timeline["window_s"])
    rows = list(dict.fromkeys(e["exe"] for e in execs))
    body: list[str] = []
    for row, exe in enumerate(rows):
        y = 10 + row * ROW_H
        name = exe if len(exe) <= 30 else "…" + exe[-29:]
        body.append(
            f'<text class="tl" x="{LEFT - 8}" y="{y + 12}" text-anchor="end">{escape(name)}</text>'
            f'<line class="grid" x1="{LEFT}" y1="{y + 8}" x2="{LEFT + PLOT_W}" y2="{y + 8}"/>'
        )
        for e in (e for e in execs if e["exe"] == exe):
            x = _x(e["t_s"], window_s)
            rules = ", ".join(e["rule_ids"])
            body.append(
                f'<circle class="exec" cx="{x:.1f}" cy="{y + 8}" r="5"><title>'
                f"{escape(exe)} pid {e['pid']} at +{e['t_s']:g}s ({escape(rules)})"
                "</title></circle>"
            )
    height = 10 + len(rows) * ROW_H
    body += _time_axis(window_s, height + 2)
    return _svg(height + 24, "execs of flagged binaries", body)
