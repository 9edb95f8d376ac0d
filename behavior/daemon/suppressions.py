"""Suppressions in the daemon's configuration: parsed, validated and carried to every run.

The daemon parses ``[[suppression]]`` tables into :class:`Suppression` (rule id, a match
on the subject, a mandatory reason, an optional expiry) and passes them to
:func:`apply_suppressions` for every report it stores. The engine lives in
:mod:`behavior.suppressions`, shared with ``rba assess|replay --suppressions FILE``:
suppressed findings move to the report's suppressed section with their reason (never
dropped), and expired entries are reported as expired.
"""

from __future__ import annotations

from behavior.suppressions import MATCH_KEYS, Suppression, apply_suppressions, parse_suppression

__all__ = ["MATCH_KEYS", "Suppression", "apply_suppressions", "parse_suppression"]
