"""Hand-written inline SVG for the HTML report's timeline: small, deterministic, and
needing nothing but the standard library (no plotting package, no script, no font).

Each function takes the report's JSON-ready ``timeline`` (see :mod:`behavior.window.timeline`)
and returns one ``<svg>`` element as text. Every mark has a ``<title>``, which browsers
show as a tooltip, so the exact numbers are one hover away.

The charts are :data:`WIDTH` user units wide and scale down to the page (a 390 px
phone): row labels sit above their row, not in a left column, so nothing needs a fixed
width. Time ticks fall on round numbers (1, 2 or 5 times a power of ten seconds, or
whole minutes and hours). Marks a finding names take that finding's severity colour,
from the ``sev-*`` classes the page's style defines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from behavior.durations import format_duration

WIDTH = 720
LEFT = 44  # room for the connection counts
RIGHT = 16
PLOT_W = WIDTH - LEFT - RIGHT
SERIES_COLORS = {"tcp-out": "#1f6fb4", "tcp-in": "#2a9d3a", "udp-out": "#e07b12"}
SERIES_LABELS = {
    "tcp-out": "TCP out (connects)",
    "tcp-in": "TCP in (accepted)",
    "udp-out": "UDP out (sends)",
}
LABEL_H = 15  # a row's label line, above its bar (room for the phone's larger text)
BAR_H = 7
ROW_H = LABEL_H + BAR_H + 3  # 40 listeners (the timeline's most) fit a printed page
MAX_TICKS = 6
_STEPS_S = (60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0)


def _x(seconds: float, window_s: float) -> float:
    return LEFT + PLOT_W * min(max(seconds / window_s, 0.0), 1.0) if window_s > 0 else LEFT


def tick_step(window_s: float, max_ticks: int = MAX_TICKS) -> float:
    """The smallest round step that puts at most ``max_ticks`` intervals on the window:
    1, 2 or 5 times a power of ten below a minute, then 1, 2, 5, 10, 15 or 30 minutes,
    then hours."""
    if window_s <= 0:
        return 1.0
    wanted = window_s / max_ticks
    if wanted <= 30:
        power = 10.0 ** math.floor(math.log10(wanted))
        for factor in (1.0, 2.0, 5.0, 10.0):
            if factor * power >= wanted:
                return factor * power
    for step in _STEPS_S:
        if step >= wanted:
            return step
    return 3600.0 * math.ceil(wanted / 3600.0)


def ticks(window_s: float) -> list[float]:
    """Round times from 0 to the window's end (see :func:`tick_step`)."""
    step = tick_step(window_s)
    count = int(window_s / step + 1e-9)
    return [round(i * step, 9) for i in range(count + 1)]


def _time_axis(window_s: float, y: float) -> list[str]:
    parts = [f'<line class="axis" x1="{LEFT}" y1="{y}" x2="{LEFT + PLOT_W}" y2="{y}"/>']
    for seconds in ticks(window_s):
        x = _x(seconds, window_s)
        anchor = "end" if x > LEFT + PLOT_W - 12 else "middle"  # the last label stays inside
        parts.append(f'<line class="tick" x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}"/>')
        parts.append(
            f'<text class="tl" x="{x:.1f}" y="{y + 16}" text-anchor="{anchor}">'
            f"+{escape(format_duration(seconds))}</text>"
        )
    return parts


def _svg(height: float, label: str, body: Sequence[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" width="{WIDTH}" height="{height:.0f}" '
        'preserveAspectRatio="xMinYMin meet">' + "".join(body) + "</svg>"
    )


def connections_chart(timeline: Mapping[str, Any]) -> str:
    """Connections per protocol over the window: a bar per series in each time bucket."""
    series: Mapping[str, Sequence[int]] = timeline["series"]
    window_s, bucket_s = float(timeline["window_s"]), float(timeline["bucket_s"])
    top = max([1, *(max(v, default=0) for v in series.values())])
    plot_h, y0 = 120.0, 24.0
    base = y0 + plot_h
    body = [
        f'<text class="tl" x="{LEFT}" y="12">connections per '
        f"{escape(format_duration(bucket_s))}</text>",
        f'<text class="tl" x="{LEFT - 6}" y="{y0 + 4}" text-anchor="end">{top}</text>',
        f'<text class="tl" x="{LEFT - 6}" y="{base}" text-anchor="end">0</text>',
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
        y = base + 32 + i * 20
        body.append(
            f'<rect x="{LEFT}" y="{y - 10}" width="12" height="12" '
            f'fill="{SERIES_COLORS.get(name, "#555")}"/>'
            f'<text class="tl" x="{LEFT + 18}" y="{y}">'
            f"{escape(SERIES_LABELS.get(name, name))} ({sum(series[name])})</text>"
        )
    return _svg(base + 30 + len(names) * 20, "connections per protocol over time", body)


def listeners_chart(timeline: Mapping[str, Any], severities: Mapping[int, str]) -> str:
    """Listener lifetimes as bars, accepted connections as marks on them. A port a
    finding names (``severities``: port -> severity class) is painted in its colour."""
    listeners: Sequence[Mapping[str, Any]] = timeline["listeners"]
    window_s = float(timeline["window_s"])
    body: list[str] = []
    for row, s in enumerate(listeners):
        y = 4 + row * ROW_H
        x1, x2 = _x(s["start_s"], window_s), _x(s["end_s"], window_s)
        css = f"bar sev-{severities[s['port']]}" if s["port"] in severities else "bar"
        label = f"{s['address']}:{s['port']} {s['comm']} ({s['pid']})"
        body.append(
            f'<text class="tl" x="{LEFT}" y="{y + LABEL_H - 3}">{escape(label[:60])}</text>'
            f'<rect class="{css}" x="{x1:.1f}" y="{y + LABEL_H}" '
            f'width="{max(x2 - x1, 1):.1f}" height="{BAR_H}"><title>{escape(label)}: '
            f"listening +{format_duration(s['start_s'])} .. +{format_duration(s['end_s'])}, "
            f"{s['accepted']} accepted</title></rect>"
        )
        for mark in s["accept_marks_s"]:
            x = _x(mark, window_s)
            body.append(
                f'<line class="accept" x1="{x:.1f}" y1="{y + LABEL_H - 2}" x2="{x:.1f}" '
                f'y2="{y + LABEL_H + BAR_H + 2}"><title>accepted at +{mark:g}s</title></line>'
            )
    height = 4 + len(listeners) * ROW_H
    body += _time_axis(window_s, height + 2)
    return _svg(height + 24, "listener lifetimes with accepted connections", body)


def execs_chart(timeline: Mapping[str, Any], severities: Mapping[str, str]) -> str:
    """One row per flagged binary, a mark at each exec in the colour of the most severe
    finding about the binary (``severities``: executable -> severity class)."""
    execs: Sequence[Mapping[str, Any]] = timeline["execs"]
    window_s = float(timeline["window_s"])
    rows = list(dict.fromkeys(e["exe"] for e in execs))
    body: list[str] = []
    for row, exe in enumerate(rows):
        y = 4 + row * ROW_H
        mid = y + LABEL_H + BAR_H / 2
        name = exe if len(exe) <= 60 else "…" + exe[-59:]
        css = f"exec sev-{severities.get(exe, 'info')}"
        body.append(
            f'<text class="tl" x="{LEFT}" y="{y + LABEL_H - 3}">{escape(name)}</text>'
            f'<line class="grid" x1="{LEFT}" y1="{mid}" x2="{LEFT + PLOT_W}" y2="{mid}"/>'
        )
        for e in (e for e in execs if e["exe"] == exe):
            x = _x(e["t_s"], window_s)
            rules = ", ".join(e["rule_ids"])
            body.append(
                f'<circle class="{css}" cx="{x:.1f}" cy="{mid}" r="4.5"><title>'
                f"{escape(exe)} pid {e['pid']} at +{e['t_s']:g}s ({escape(rules)})"
                "</title></circle>"
            )
    height = 4 + len(rows) * ROW_H
    body += _time_axis(window_s, height + 2)
    return _svg(height + 24, "execs of flagged binaries", body)
