"""``rba status``: the daemon's runs (state, time left, events, losses) and its health."""

from __future__ import annotations

import argparse
import json
from typing import Any

from behavior.daemon.client import add_socket_argument, call
from behavior.daemon.protocol import StatusRequest
from behavior.durations import format_duration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rba status``."""
    parser.add_argument("--format", choices=("text", "json"), type=str.lower, default="text")
    add_socket_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Print the daemon's status."""
    status = call(args.socket, StatusRequest())
    if args.format == "json":
        print(json.dumps(status, indent=2))
    else:
        print(render_status(status))
    return 0


def render_status(status: dict[str, Any]) -> str:
    """The status as a few readable lines (80 columns)."""
    daemon, probes = status["daemon"], status["daemon"]["probes"]
    lines = [
        f"daemon: pid {daemon['pid']}, up {format_duration(daemon['uptime_s'])}, "
        f"config {daemon['config']}",
        f"probes: {probes['backend']} (choice {probes['choice']}, "
        f"{probes['sessions_opened']} session(s) opened), {probes['events_per_s']} events/s, "
        f"{probes['lost_since_start']} lost since start",
        f"last error: {probes['last_error'] or 'none'}",
        "templates:",
    ]
    for t in status["templates"]:
        when = f"{t['schedule']}, next {t['next_run']}" if t.get("schedule") else "on demand"
        lines.append(f"  {t['name']:<16} {format_duration(t['duration_s']):>8}  {when}")
    lines.append("runs:" if status["runs"] else "runs: none")
    for r in status["runs"]:
        left = format_duration(r["time_left_s"]) if "time_left_s" in r else "-"
        extra = " partial" if r.get("partial") else ""
        lines.append(f"  {r['id']}  {r['state']}{extra}")
        lines.append(
            f"    left {left}, {r['events']} events, {r['lost_events']} lost, "
            f"{r['findings']} finding(s)"
        )
        if r.get("reason"):
            lines.append(f"    reason: {r['reason']}")
    return "\n".join(lines)
