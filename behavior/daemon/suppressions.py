"""Suppressions in the daemon's configuration: parsed, validated and carried to every run.

This is the hook for the formats issue's suppressions (a rule id, a match on the
subject, a mandatory reason, an optional expiry). The daemon parses ``[[suppression]]``
tables into :class:`Suppression` and passes them to :func:`apply_suppressions` for every
report it stores. Until the suppression engine lands, :func:`apply_suppressions` returns
the report unchanged: nothing is hidden, and nothing is silently dropped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from behavior.errors import UsageError
from behavior.report import Report

# Keys that select the subject of a finding (one of them at most per entry is typical,
# several are allowed and must all match).
MATCH_KEYS = ("port", "exe", "path", "remote", "package")


@dataclass(frozen=True)
class Suppression:
    """One entry: which rule, which subjects, why, and until when."""

    rule: str
    reason: str
    match: tuple[tuple[str, str | int], ...]  # (key, value) pairs from MATCH_KEYS
    expires: dt.date | None = None


def parse_suppression(where: str, table: Mapping[str, Any]) -> Suppression:
    """Validate one ``[[suppression]]`` table; ``where`` names it in errors."""
    allowed = {"rule", "reason", "expires", *MATCH_KEYS}
    for key in table:
        if key not in allowed:
            raise UsageError(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")
    rule, reason = table.get("rule"), table.get("reason")
    if not isinstance(rule, str) or not rule.strip():
        raise UsageError(f"{where}.rule: required, a rule id such as 'unused-listening-port'")
    if not isinstance(reason, str) or not reason.strip():
        raise UsageError(f"{where}.reason: required, say why the finding is accepted")
    match: list[tuple[str, str | int]] = []
    for key in MATCH_KEYS:
        if key not in table:
            continue
        value = table[key]
        if key == "port":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
                raise UsageError(f"{where}.port: must be an integer 1..65535, not {value!r}")
        elif not isinstance(value, str) or not value:
            raise UsageError(f"{where}.{key}: must be a non-empty string, not {value!r}")
        match.append((key, value))
    return Suppression(rule.strip(), reason.strip(), tuple(match), _parse_expiry(where, table))


def _parse_expiry(where: str, table: Mapping[str, Any]) -> dt.date | None:
    value = table.get("expires")
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise UsageError(f"{where}.expires: must be a date such as 2027-01-31, not {value!r}")


def apply_suppressions(report: Report, suppressions: Sequence[Suppression]) -> Report:
    """The report with ``suppressions`` applied.

    Identity until the formats issue's suppression engine lands; then this function
    delegates to it, and the daemon needs no other change."""
    del suppressions
    return report
