"""The lake's tables: one column list per source, from which both the Parquet schema and
the Athena/Glue DDL are made, so the two cannot drift apart.

Every column is a primitive (``int``, ``bigint``, ``string``, ``boolean``) or a proper
three-level Parquet LIST of strings (``array<string>``). There is no bare REPEATED field:
Athena rejects those (falcosidekick #728). Times are OCSF ``timestamp_t``, epoch
milliseconds as ``bigint``, as Security Lake stores them. Names follow the OCSF attribute
they carry (``finding_info.uid`` -> ``finding_uid``), flattened with ``_``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from behavior.formats.ocsf import DETECTION_FINDING, VULNERABILITY_FINDING

SCAN_ACTIVITY = 6007  # OCSF Application Activity: Scan Activity, one per rba run
PARTITIONS = ("region", "accountId", "eventDay")


@dataclass(frozen=True)
class Column:
    """One column: its name, its Hive/Athena type, and what it holds."""

    name: str
    hive_type: str  # int, bigint, string, boolean or array<string>
    doc: str


@dataclass(frozen=True)
class Source:
    """One OCSF class in its own source directory ``LAKE/ext/<name>/``."""

    name: str
    class_uid: int
    table: str  # the Athena table name the docs use
    columns: tuple[Column, ...]


_COMMON = (
    Column("class_uid", "int", "OCSF class: 2004 Detection, 2002 Vulnerability, 6007 Scan"),
    Column("class_name", "string", "OCSF class name"),
    Column("category_uid", "int", "OCSF category (2 Findings, 6 Application Activity)"),
    Column("activity_id", "int", "OCSF activity (1 Create)"),
    Column("type_uid", "bigint", "class_uid * 100 + activity_id"),
    Column("severity_id", "int", "OCSF severity id (1 Informational .. 4 High)"),
    Column("severity", "string", "rba severity: High, Medium, Low, Informational"),
    Column("time", "bigint", "when the run ended, epoch ms (the event time)"),
    Column("run_uid", "string", "the rba run id (metadata.correlation_uid)"),
    Column("host", "string", "device.hostname"),
    Column("device_uid", "string", "device.uid: the machine id when the report has it"),
    Column("product_version", "string", "the rba version that wrote the lake row"),
)

_FINDING = (
    *_COMMON,
    Column("status_id", "int", "OCSF status: 1 New, 3 Suppressed"),
    Column("status", "string", "New or Suppressed"),
    Column("start_time", "bigint", "first_seen, epoch ms"),
    Column("end_time", "bigint", "last_seen, epoch ms"),
    Column("count", "int", "times the subject was seen in the run"),
    Column("message", "string", "the finding's title"),
    Column("finding_uid", "string", "finding_info.uid: the finding's stable fingerprint"),
    Column("rule_uid", "string", "finding_info.analytic.uid: the rba rule id"),
    Column("subject", "string", "what the finding is about, one line (no pids, no times)"),
    Column("package", "string", "the package that owns the file, when known"),
    Column("file_path", "string", "the file judged or loaded, when there is one"),
    Column("process_name", "string", "the program (exe, or comm when unreadable)"),
    Column("dst_port", "int", "the remote or listening port, when there is one"),
    Column("protocol", "string", "the cleartext protocol named, when there is one"),
    Column("data_sources", "array<string>", "the probes the run used (ebpf, poll)"),
    Column("evidence", "string", "rba's whole evidence object as JSON (OCSF unmapped)"),
)

_RUN = (
    *_COMMON,
    Column("start_time", "bigint", "window start, epoch ms"),
    Column("end_time", "bigint", "window end, epoch ms"),
    Column("duration_s", "bigint", "window length in whole seconds"),
    Column("partial", "boolean", "the window was ended early"),
    Column("replayed", "boolean", "the report came from a replayed trace"),
    Column("events", "bigint", "events assessed"),
    Column("lost_events", "bigint", "events lost by the probes"),
    Column("num_detections", "int", "findings in the report, suppressed ones included"),
    Column("data_sources", "array<string>", "the probes the run used"),
    Column("rules_not_run", "array<string>", "rules that could not run"),
)

DETECTION = Source("rba-detection", DETECTION_FINDING, "rba_detection", _FINDING)
VULNERABILITY = Source("rba-vulnerability", VULNERABILITY_FINDING, "rba_vulnerability", _FINDING)
RUNS = Source("rba-scan-activity", SCAN_ACTIVITY, "rba_scan_activity", _RUN)
SOURCES = (DETECTION, VULNERABILITY, RUNS)


def arrow_schema(source: Source) -> Any:
    """The pyarrow schema of ``source`` (pyarrow is imported here: the extra)."""
    import pyarrow as pa

    types = {
        "int": pa.int32(),
        "bigint": pa.int64(),
        "string": pa.string(),
        "boolean": pa.bool_(),
        "array<string>": pa.list_(pa.string()),
    }
    return pa.schema([pa.field(c.name, types[c.hive_type]) for c in source.columns])


DUCKDB_TYPES = {
    "int": "INTEGER",
    "bigint": "BIGINT",
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
    "array<string>": "VARCHAR[]",
}


def duckdb_type(hive_type: str) -> str:
    """The DuckDB type that reads a column of ``hive_type`` as written."""
    return DUCKDB_TYPES[hive_type]


def athena_ddl(source: Source, location: str = "s3://BUCKET/LAKE") -> str:
    """``CREATE EXTERNAL TABLE`` for ``source`` under ``location`` (Athena / Glue)."""
    width = max(len(c.name) for c in source.columns) + 2
    columns = ",\n".join(
        f"  {('`' + c.name + '`').ljust(width)} {c.hive_type}" for c in source.columns
    )
    return (
        f"CREATE EXTERNAL TABLE {source.table} (\n{columns}\n)\n"
        "PARTITIONED BY (`region` string, `accountId` string, `eventDay` string)\n"
        "STORED AS PARQUET\n"
        f"LOCATION '{location.rstrip('/')}/ext/{source.name}/'\n"
        "TBLPROPERTIES ('parquet.compression'='ZSTD');"
    )
