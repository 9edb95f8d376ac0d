"""The status view: what ``rba status`` shows of the runs, the templates and the health.

Built from snapshots: the run table's lock is not held while the probe session's
counters are read (that lock may be held for a while by a session opening).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

from behavior.daemon.config import DaemonConfig, Template
from behavior.daemon.runs import RunView
from behavior.daemon.scheduling import Scheduler
from behavior.daemon.sharing import SharedSession
from behavior.daemon.store import StoreUsage


@dataclass(frozen=True)
class DaemonFacts:
    """The daemon-wide facts of the view besides the runs."""

    config: DaemonConfig
    uptime_s: float
    requests_served: int
    requests_refused: int
    store: StoreUsage


def status_view(
    facts: DaemonFacts, runs: list[RunView], probes: SharedSession, scheduler: Scheduler
) -> dict[str, Any]:
    """The ``status`` result (plain JSON values)."""
    config = facts.config
    now = dt.datetime.now(dt.timezone.utc)
    return {
        "daemon": {
            "pid": os.getpid(),
            "uptime_s": round(facts.uptime_s, 1),
            "config": config.path,
            "state_dir": config.state_dir,
            "probes": probe_health(config, probes),
            "requests_served": facts.requests_served,
            "requests_refused": facts.requests_refused,
            "disk": {
                "path": facts.store.path,
                "free_bytes": facts.store.free_bytes,
                "total_bytes": facts.store.total_bytes,
                "full": facts.store.full,
                "last_error": facts.store.last_error,
            },
        },
        "templates": [_template_entry(t, scheduler, now) for t in config.templates],
        "runs": _run_entries(runs, probes),
    }


def _run_entries(runs: list[RunView], probes: SharedSession) -> list[dict[str, Any]]:
    live = [view for view in runs if view.subscription is not None]
    counters = probes.stats_now() if live else {}
    entries = []
    for view in runs:
        entry: dict[str, Any] = dict(dataclasses.asdict(view.record))
        if view.time_left_s is not None:
            entry["time_left_s"] = view.time_left_s
        if view.subscription is not None:
            entry["events"] = view.subscription.events
            lost = view.subscription.delta(counters).values()
            entry["lost_events"] = sum(s.lost for s in lost)
        entries.append(entry)
    return entries


def probe_health(config: DaemonConfig, probes: SharedSession) -> dict[str, Any]:
    """The shared probe session's health."""
    health = probes.health
    return {
        "choice": config.probes,
        "backend": "+".join(probes.sources()) or f"idle (last: {health.backend or '-'})",
        "session_active": probes.active,
        "sessions_opened": health.sessions_opened,
        "events_total": health.events_total,
        "events_per_s": round(probes.events_per_second(), 1),
        "lost_since_start": probes.lost_since_start(),
        "notices": list(probes.notices()),
        "last_error": health.last_error,
    }


def _template_entry(template: Template, scheduler: Scheduler, now: dt.datetime) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": template.name,
        "duration_s": template.duration_s,
        "rules": sorted(template.rules) if template.rules is not None else "all",
        "schedule": template.schedule.describe() if template.schedule else "",
    }
    next_run = scheduler.next_run(template, now)
    if next_run is not None:
        entry["next_run"] = iso(next_run)
    return entry


def iso(moment: dt.datetime) -> str:
    """``moment`` as ISO 8601 UTC with milliseconds and a ``Z``."""
    return (
        moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
