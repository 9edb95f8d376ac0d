"""Which scheduled templates are due: the last start of each template, and the rule."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Collection, Iterable

from behavior.daemon.config import Template


class Scheduler:
    """Remembers when each template last started (recovered runs included)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_start: dict[str, dt.datetime] = {}

    def started(self, template: str, at: dt.datetime) -> None:
        """A run of ``template`` started (or was tried) at ``at``."""
        with self._lock:
            self._last_start[template] = at

    def recovered(self, template: str, started_at: str) -> None:
        """A stored run of ``template`` started at ``started_at`` (ISO 8601): keep the
        latest such start."""
        started = dt.datetime.fromisoformat(started_at)
        with self._lock:
            last = self._last_start.get(template)
            if last is None or started > last:
                self._last_start[template] = started

    def due(
        self, templates: Iterable[Template], busy: Collection[str], now: dt.datetime
    ) -> list[Template]:
        """The scheduled templates, not running now, whose next start is at or before
        ``now``."""
        with self._lock:
            return [
                t
                for t in templates
                if t.schedule is not None
                and t.name not in busy
                and now >= t.schedule.next_after(self._last_start.get(t.name), now)
            ]

    def next_run(self, template: Template, now: dt.datetime) -> dt.datetime | None:
        """When ``template`` starts next (None: it has no schedule)."""
        if template.schedule is None:
            return None
        with self._lock:
            last = self._last_start.get(template.name)
        return template.schedule.next_after(last, now)
