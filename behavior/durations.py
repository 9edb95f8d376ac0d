"""Durations as users write them: ``90s``, ``15m``, ``1h``, ``24h``."""

from __future__ import annotations

import re

from behavior.interface import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def parse_duration(text: str, *, minimum: float = 0.0, maximum: float = 24 * 3600) -> float:
    """Seconds for ``text``, a number with its unit (s, m or h). Raises UsageError when
    malformed, without a unit (is ``15`` seconds or minutes?) or outside [minimum, maximum]."""
    match = _PATTERN.match(text)
    if not match:
        raise UsageError(f"invalid duration {text!r}: use a number with s, m or h, e.g. 90s, 15m")
    number, unit = match.groups()
    if not unit:
        raise UsageError(f"duration {text!r} has no unit: write {number}s, {number}m or {number}h")
    seconds = float(number) * _UNITS[unit]
    if not minimum <= seconds <= maximum:
        raise UsageError(
            f"duration {text!r} is outside {format_duration(minimum)}..{format_duration(maximum)}"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """Compact text for a duration: 45s, 15m, 1h30m."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"
