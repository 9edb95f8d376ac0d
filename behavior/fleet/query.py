"""Fleet questions over a lake, answered by DuckDB embedded (no server).

The Parquet files are read in place with hive partitioning; the partition columns are
read as VARCHAR (DuckDB would otherwise cast ``accountId=000000000000`` to a number and
lose its zeros). Summaries count active findings; suppressed ones are counted apart.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from behavior.fleet.interface import (
    FleetError,
    FleetSummary,
    NewFinding,
    RuleRow,
    SilentHost,
    SubjectRow,
    require_fleet_extra,
)
from behavior.fleet.schema import DETECTION, RUNS, VULNERABILITY, Source, duckdb_type

DAY_MS = 24 * 3600 * 1000
TOP_SUBJECTS = 20
MAX_NEW = 1000
FINDING_COLUMNS = (
    "rule_uid", "severity", "severity_id", "status_id", "host", "finding_uid", "subject",
    "package", '"time"',
)  # fmt: skip
RUN_COLUMNS = ("host", "run_uid", '"time"')
_HIVE_TYPES = "{'region': VARCHAR, 'accountId': VARCHAR, 'eventDay': VARCHAR}"

_RULES = """
SELECT rule_uid, arg_max(severity, severity_id),
       count(DISTINCT host) FILTER (WHERE status_id = 1),
       count(DISTINCT finding_uid) FILTER (WHERE status_id = 1),
       count(*) FILTER (WHERE status_id = 1),
       count(DISTINCT finding_uid) FILTER (WHERE status_id = 3)
FROM findings WHERE time >= $since
GROUP BY rule_uid ORDER BY max(severity_id) DESC, 3 DESC, rule_uid
"""
_SUBJECTS = """
SELECT rule_uid, subject, package, count(DISTINCT host) AS hosts
FROM findings WHERE time >= $since AND status_id = 1
GROUP BY rule_uid, subject, package ORDER BY hosts DESC, rule_uid, subject, package
LIMIT $top
"""
_NEW = """
SELECT finding_uid, arg_min(rule_uid, time), arg_min(severity, time), arg_min(host, time),
       arg_min(subject, time), min(time) AS first
FROM findings WHERE status_id = 1
GROUP BY finding_uid HAVING min(time) >= $since
ORDER BY first, finding_uid LIMIT $limit
"""
_SILENT = """
SELECT host, arg_max(run_uid, time), max(time) AS last
FROM runs GROUP BY host HAVING max(time) < $since ORDER BY last, host
"""


def fleet_summary(lake: str, since_ms: int | None = None) -> FleetSummary:
    """Answer the fleet questions over ``lake``. ``since_ms`` (epoch ms) is D; None means
    24 hours before the newest run in the lake. Raises FleetError (one line)."""
    require_fleet_extra("duckdb")
    import duckdb

    if not os.path.isdir(os.path.join(lake, "ext")):
        raise FleetError(f"{lake}: not a lake (no ext/ directory: add reports with rba lake add)")
    con = duckdb.connect()
    try:
        _views(con, lake)
        hosts, runs, newest = con.execute(
            "SELECT count(DISTINCT host), count(*), coalesce(max(time), 0) FROM runs"
        ).fetchone() or (0, 0, 0)
        since = newest - DAY_MS if since_ms is None else since_ms
        rules = con.execute(_RULES, {"since": since}).fetchall()
        subjects = con.execute(_SUBJECTS, {"since": since, "top": TOP_SUBJECTS}).fetchall()
        new = con.execute(_NEW, {"since": since, "limit": MAX_NEW}).fetchall()
        silent = con.execute(_SILENT, {"since": since}).fetchall()
    except duckdb.Error as e:
        raise FleetError(
            f"{lake}: cannot query the lake ({str(e).splitlines()[0][:120]})"
        ) from None
    finally:
        con.close()
    return FleetSummary(
        lake=lake,
        since_ms=since,
        hosts=int(hosts),
        runs=int(runs),
        rules=tuple(RuleRow(*r) for r in rules),
        subjects=tuple(SubjectRow(*s) for s in subjects),
        new=tuple(NewFinding(*n) for n in new),
        silent=tuple(SilentHost(*s) for s in silent),
    )


def _views(con: Any, lake: str) -> None:
    """Tables ``findings`` (both finding classes) and ``runs`` from the lake's files."""
    finding_files = _files(lake, DETECTION) + _files(lake, VULNERABILITY)
    run_files = _files(lake, RUNS)
    # Each file is opened once: the questions read a few columns, held in memory.
    con.execute(
        f"CREATE TEMP TABLE findings AS SELECT {', '.join(FINDING_COLUMNS)} "
        f"FROM ({_reader(finding_files, DETECTION)})"
    )
    con.execute(
        f"CREATE TEMP TABLE runs AS SELECT {', '.join(RUN_COLUMNS)} "
        f"FROM ({_reader(run_files, RUNS)})"
    )


def _files(lake: str, source: Source) -> list[str]:
    """The glob of the source's Parquet files, in a list; empty when it has none."""
    pattern = os.path.join(lake, "ext", source.name, "*", "*", "*", "*.parquet")
    return [pattern] if next(glob.iglob(pattern), None) else []


def _reader(files: list[str], source: Source) -> str:
    """A SELECT over ``files``, or over no row of the source's columns when there is none."""
    if not files:
        columns = ", ".join(
            f'NULL::{duckdb_type(c.hive_type)} AS "{c.name}"' for c in source.columns
        )
        return f"SELECT {columns} WHERE false"
    quoted = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return (
        f"SELECT * FROM read_parquet([{quoted}], hive_partitioning = true, "
        f"union_by_name = true, hive_types = {_HIVE_TYPES})"
    )
