"""Template schedules: ``every 6h`` or ``daily 02:00`` (local time), and when they are due."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from behavior.durations import format_duration, parse_duration
from behavior.interface import UsageError

_DAILY = re.compile(r"^daily\s+(?:at\s+)?(\d{1,2}):(\d{2})$")
_EVERY = re.compile(r"^every\s+(\S+)$")
MIN_INTERVAL_S = 60.0
MAX_INTERVAL_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Schedule:
    """Either a fixed interval (``every_s``) or a daily local time (``daily_at``)."""

    every_s: float | None = None
    daily_at: dt.time | None = None

    def describe(self) -> str:
        """The schedule as the configuration writes it."""
        if self.every_s is not None:
            return f"every {format_duration(self.every_s)}"
        assert self.daily_at is not None
        return f"daily {self.daily_at.strftime('%H:%M')}"

    def next_after(self, last_start: dt.datetime | None, now: dt.datetime) -> dt.datetime:
        """The next start time, given the last start (None: never started) and now.

        Both datetimes are timezone-aware. An interval schedule that never ran is due now;
        a missed daily time is not caught up, the next one is taken."""
        if self.every_s is not None:
            if last_start is None:
                return now
            return last_start + dt.timedelta(seconds=self.every_s)
        assert self.daily_at is not None
        local_now = now.astimezone()
        candidate = local_now.replace(
            hour=self.daily_at.hour, minute=self.daily_at.minute, second=0, microsecond=0
        )
        if candidate <= local_now or (last_start is not None and last_start >= candidate):
            candidate += dt.timedelta(days=1)
        return candidate


def parse_schedule(text: str) -> Schedule:
    """Parse ``every <duration>`` (1m..7 days) or ``daily [at] HH:MM``; UsageError if bad."""
    cleaned = " ".join(text.strip().lower().split())
    daily = _DAILY.match(cleaned)
    if daily:
        hour, minute = int(daily.group(1)), int(daily.group(2))
        if hour > 23 or minute > 59:
            raise UsageError(f"{text!r} is not a time of day (use HH:MM, 00:00..23:59)")
        return Schedule(daily_at=dt.time(hour, minute))
    every = _EVERY.match(cleaned)
    if every:
        seconds = parse_duration(every.group(1), minimum=MIN_INTERVAL_S, maximum=MAX_INTERVAL_S)
        return Schedule(every_s=seconds)
    raise UsageError(f"invalid schedule {text!r}: use 'every 24h' or 'daily 02:00'")
