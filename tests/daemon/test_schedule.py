"""Schedules: parsing and the next due time."""

from __future__ import annotations

import datetime as dt

import pytest

from behavior.daemon.schedule import parse_schedule
from behavior.interface import UsageError

UTC = dt.timezone.utc


def test_every_is_due_at_once_then_after_the_interval() -> None:
    sched = parse_schedule("every 6h")
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert sched.next_after(None, now) == now
    assert sched.next_after(now, now) == now + dt.timedelta(hours=6)
    assert sched.describe() == "every 6h"


def test_daily_takes_the_next_occurrence() -> None:
    sched = parse_schedule("daily at 02:00")
    assert sched.describe() == "daily 02:00"
    local = dt.datetime.now().astimezone().tzinfo
    before = dt.datetime(2026, 1, 1, 1, 0, tzinfo=local)
    after = dt.datetime(2026, 1, 1, 3, 0, tzinfo=local)
    assert sched.next_after(None, before) == dt.datetime(2026, 1, 1, 2, 0, tzinfo=local)
    assert sched.next_after(None, after) == dt.datetime(2026, 1, 2, 2, 0, tzinfo=local)
    ran = dt.datetime(2026, 1, 1, 2, 0, 1, tzinfo=local)
    at_two = dt.datetime(2026, 1, 1, 2, 0, 30, tzinfo=local)
    assert sched.next_after(ran, at_two) == dt.datetime(2026, 1, 2, 2, 0, tzinfo=local)


@pytest.mark.parametrize("text", ["every", "every 10s", "every 8d", "daily 2", "hourly", ""])
def test_bad_schedules(text: str) -> None:
    with pytest.raises(UsageError):
        parse_schedule(text)
