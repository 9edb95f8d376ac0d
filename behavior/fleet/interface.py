"""The fleet layer's interface: its error, the extra it needs, and the records its
queries return.

The fleet layer turns rba JSON reports (the public contract of docs/design.md) into a findings
lake: OCSF findings as Parquet in Amazon Security Lake's layout, which DuckDB reads here and
Athena, Trino, Spark or ClickHouse read at fleet scale. pyarrow, DuckDB and Dask come from
the optional extra ``rba[fleet]``; :func:`require_fleet_extra` says in one line what to
install when one of them is missing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from behavior.interface import RbaError

FLEET_EXTRA = "pip install 'rba[fleet]'"


class FleetError(RbaError):
    """A lake that cannot be read or written, or a report that cannot go into one."""


class MissingExtraError(FleetError):
    """pyarrow, duckdb or dask is not installed."""


def require_fleet_extra(*modules: str) -> None:
    """Raise MissingExtraError, naming the install command, unless every module imports."""
    missing = [m for m in modules if _absent(m)]
    if missing:
        raise MissingExtraError(f"needs {', '.join(missing)}: {FLEET_EXTRA}")


def _absent(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a parent package missing, or hidden (None in sys.modules)
        return True


@dataclass(frozen=True)
class AddResult:
    """What one :func:`behavior.fleet.lake.add_reports` call did."""

    reports: int
    findings_added: int
    findings_present: int  # already in the lake: same fingerprint and run
    runs_added: int
    files: tuple[str, ...]  # the Parquet files written, relative to the lake


@dataclass(frozen=True)
class RuleRow:
    """One rule across the fleet: the hosts it fired on and its distinct findings."""

    rule_id: str
    severity: str
    hosts: int
    findings: int  # distinct fingerprints
    sightings: int  # rows: the same finding seen by several runs counts once per run
    suppressed: int  # distinct fingerprints only ever seen suppressed


@dataclass(frozen=True)
class SubjectRow:
    """A subject (a library, a program, a listener) and how many hosts it was found on."""

    rule_id: str
    subject: str
    package: str
    hosts: int


@dataclass(frozen=True)
class NewFinding:
    """A fingerprint first seen at or after ``since``."""

    fingerprint: str
    rule_id: str
    severity: str
    host: str
    subject: str
    first_seen_ms: int


@dataclass(frozen=True)
class SilentHost:
    """A host whose last run ended before ``since``."""

    host: str
    last_run: str
    last_report_ms: int


@dataclass(frozen=True)
class FleetSummary:
    """The answers of ``rba fleet``: per rule, top subjects, new and silent hosts."""

    lake: str
    since_ms: int
    hosts: int
    runs: int
    rules: tuple[RuleRow, ...]
    subjects: tuple[SubjectRow, ...]
    new: tuple[NewFinding, ...]
    silent: tuple[SilentHost, ...]
