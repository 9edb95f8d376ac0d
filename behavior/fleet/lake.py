"""Writing the findings lake: rba JSON reports in, Parquet files out.

Layout (Amazon Security Lake's): one OCSF class per source directory, hive partitions,
one file per run and class::

    LAKE/ext/rba-detection/region=R/accountId=A/eventDay=YYYYMMDD/RUN-HASH.parquet
    LAKE/ext/rba-vulnerability/...     (the four binary-hardening rules, as in OCSF output)
    LAKE/ext/rba-scan-activity/...     (one row per run, so a host with no findings has
                                        reported too)

- **Idempotent by (fingerprint, run).** A run's files are named after the run and its
  host; before writing, the rows already in that run's files are read back and only the
  missing ones are written, so adding the same report twice adds nothing.
- **Atomic.** Every file goes through :mod:`probes.files`, rba's one way to write a
  file: a fresh ``O_EXCL`` file next to the target, fsynced, renamed into place, mode
  0600; directories rba creates are 0750. A name depends only on the rows in the file,
  so two writers racing on the same report write the same bytes under the same name.
- **Deterministic.** Rows are sorted by time, rule and fingerprint, and a name depends on
  the rows only: a serial run and a parallel one leave the same lake.

The daemon calls :func:`add_reports` with the reports of finished runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import hashlib
import itertools
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from behavior.fleet.identity import provisional_fingerprint
from behavior.fleet.interface import AddResult, FleetError, require_fleet_extra
from behavior.fleet.schema import DETECTION, RUNS, VULNERABILITY, Source, arrow_schema
from behavior.formats.asff import (
    PLACEHOLDER_ACCOUNT_ID,
    PLACEHOLDER_REGION,
    check_account_id,
    check_region,
)
from behavior.formats.ecosystem import BINARY_RULES, epoch_ms, product_version
from behavior.formats.ocsf import ACTIVITY_CREATE, CLASS_NAMES, SEVERITY_IDS
from behavior.interface import Severity
from probes.files import FileWriteError, NewFile

MAX_REPORT_BYTES = 256 * 1024 * 1024
WRITERS = 8  # threads writing files (they mostly wait for fsync)
CHUNK = 256  # reports parsed ahead of the writers
STATUS_NEW, STATUS_SUPPRESSED = 1, 3
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

Row = dict[str, Any]


def add_reports(
    lake: str,
    reports: Iterable[Mapping[str, Any]],
    *,
    region: str = PLACEHOLDER_REGION,
    account_id: str = PLACEHOLDER_ACCOUNT_ID,
) -> AddResult:
    """Add rba JSON reports (as parsed dicts) to the lake at ``lake``.

    This is the seam the daemon's ``lake = "DIR"`` setting calls with each finished run's
    ``report_to_dict``. Raises FleetError (one line) for a malformed report, a bad region
    or account, or a lake that cannot be written; MissingExtraError without pyarrow."""
    require_fleet_extra("pyarrow")
    try:
        region, account_id = check_region(region), check_account_id(account_id)
    except ValueError as e:
        raise FleetError(str(e)) from None
    _make_root(lake)
    totals = [0, 0, 0, 0]
    files: list[str] = []
    iterator = iter(reports)
    # Writers in threads: each file costs two fsyncs, which wait on the disk, not the CPU.
    # The reports of one run stay in one thread, in order, so a run's idempotence check
    # always sees the files its earlier reports wrote.
    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        while chunk := list(itertools.islice(iterator, CHUNK)):
            runs: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
            for report in chunk:
                run = _run_fields(report)
                runs.setdefault((run["host"], run["run_uid"]), []).append(report)
            add = partial(_add_run, lake, region=region, account_id=account_id)
            for added, present, run_added, written in pool.map(add, runs.values()):
                totals = [totals[0], totals[1] + added, totals[2] + present, totals[3] + run_added]
                files += written
            totals[0] += len(chunk)
    return AddResult(totals[0], totals[1], totals[2], totals[3], tuple(files))


def _add_run(
    lake: str, reports: Sequence[Mapping[str, Any]], *, region: str, account_id: str
) -> tuple[int, int, int, list[str]]:
    """Add the reports of one run, in order: the sums of :func:`_add_one`."""
    totals, files = [0, 0, 0], []
    for report in reports:
        added, present, run_added, written = _add_one(lake, report, region, account_id)
        totals = [totals[0] + added, totals[1] + present, totals[2] + run_added]
        files += written
    return totals[0], totals[1], totals[2], files


def load_report(path: str) -> dict[str, Any]:
    """The JSON report at ``path`` as a dict; FleetError (one line) when it is not one."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_REPORT_BYTES + 1)
    except OSError as e:
        raise FleetError(f"cannot read report {path}: {e.strerror}") from None
    if len(data) > MAX_REPORT_BYTES:
        raise FleetError(f"{path}: larger than {MAX_REPORT_BYTES >> 20} MiB: not a report")
    try:
        report = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise FleetError(f"{path}: not JSON ({str(e)[:80]})") from None
    if not isinstance(report, dict) or not isinstance(report.get("run"), dict):
        raise FleetError(f"{path}: not an rba JSON report (no 'run' object)")
    return report


def _make_root(lake: str) -> None:
    try:
        os.makedirs(lake, mode=0o750, exist_ok=True)
    except OSError as e:
        raise FleetError(f"cannot create lake {lake}: {e.strerror}") from None
    if not os.path.isdir(lake):
        raise FleetError(f"{lake}: not a directory")


def _add_one(
    lake: str, report: Mapping[str, Any], region: str, account_id: str
) -> tuple[int, int, int, list[str]]:
    """Add one report: (findings added, findings present, runs added, files written)."""
    run = _run_fields(report)
    findings = _finding_rows(report, run)
    day = _event_day(run["time"], run["run_uid"])
    base = _file_base(run["host"], run["run_uid"])
    partition = os.path.join(f"region={region}", f"accountId={account_id}", f"eventDay={day}")
    written: list[str] = []
    added = present = 0
    for source in (DETECTION, VULNERABILITY):
        rows = [r for r in findings if r["class_uid"] == source.class_uid]
        new_rows, old = _missing(lake, source, partition, base, rows)
        present += old
        if new_rows:
            written.append(_write(lake, source, partition, base, new_rows))
            added += len(new_rows)
    run_row = _run_row(run, len(findings), report)
    runs_added = 0
    if not _missing(lake, RUNS, partition, base, [run_row])[1]:
        written.append(_write(lake, RUNS, partition, base, [run_row]))
        runs_added = 1
    return added, present, runs_added, written


# --- reading a report -------------------------------------------------------------


def _run_fields(report: Mapping[str, Any]) -> Row:
    run = report.get("run")
    if not isinstance(run, Mapping):
        raise FleetError("not an rba JSON report (no 'run' object)")
    run_id, host = run.get("id"), run.get("host")
    if not isinstance(run_id, str) or not run_id or not isinstance(host, str):
        raise FleetError("not an rba JSON report (run.id or run.host missing)")
    ended = epoch_ms(_text(run.get("ended_at")))
    if ended <= 0:
        raise FleetError(f"run {run_id}: run.ended_at is not an ISO 8601 time")
    sources = run.get("sources")
    return {
        "run_uid": run_id,
        "host": host or "unknown",
        "device_uid": _text(run.get("machine_id")),
        "time": ended,
        "data_sources": [str(s) for s in sources] if isinstance(sources, list) else [],
        "product_version": product_version(),
    }


def _finding_rows(report: Mapping[str, Any], run: Row) -> list[Row]:
    rows: list[Row] = []
    for key, status in (("findings", STATUS_NEW), ("suppressed", STATUS_SUPPRESSED)):
        items = report.get(key) or []
        if not isinstance(items, list):
            raise FleetError(f"run {run['run_uid']}: '{key}' is not a list")
        rows += [_finding_row(item, status, run) for item in items]
    rows.sort(key=lambda r: (r["start_time"], r["rule_uid"], r["finding_uid"]))
    return rows


def _finding_row(item: Any, status: int, run: Row) -> Row:
    if not isinstance(item, Mapping) or not isinstance(item.get("rule_id"), str):
        raise FleetError(f"run {run['run_uid']}: a finding without a rule_id")
    rule_id = item["rule_id"]
    try:
        severity = Severity(item.get("severity"))
    except ValueError:
        raise FleetError(f"run {run['run_uid']}: finding {rule_id} has no valid severity") from None
    evidence = _mapping(item.get("evidence"))
    subject = subject_of(rule_id, evidence)
    fingerprint = item.get("fingerprint")
    if not isinstance(fingerprint, str) or not fingerprint:
        fingerprint = provisional_fingerprint(run["host"], rule_id, subject["subject"])
    class_uid = VULNERABILITY.class_uid if rule_id in BINARY_RULES else DETECTION.class_uid
    count = item.get("count")
    return {
        **_common(run, class_uid, SEVERITY_IDS[severity], severity.value),
        "status_id": status,
        "status": "New" if status == STATUS_NEW else "Suppressed",
        "start_time": epoch_ms(_text(item.get("first_seen"))),
        "end_time": epoch_ms(_text(item.get("last_seen"))),
        "count": count if isinstance(count, int) and 0 <= count < 2**31 else 0,
        "message": _text(item.get("title")),
        "finding_uid": fingerprint,
        "rule_uid": rule_id,
        **subject,
        "data_sources": run["data_sources"],
        "evidence": json.dumps(evidence, sort_keys=True, ensure_ascii=False),
    }


def _common(run: Row, class_uid: int, severity_id: int, severity: str) -> Row:
    return {
        "class_uid": class_uid,
        "class_name": CLASS_NAMES.get(class_uid, "Scan Activity"),
        "category_uid": 6 if class_uid == RUNS.class_uid else 2,
        "activity_id": ACTIVITY_CREATE,
        "type_uid": class_uid * 100 + ACTIVITY_CREATE,
        "severity_id": severity_id,
        "severity": severity,
        "time": run["time"],
        "run_uid": run["run_uid"],
        "host": run["host"],
        "device_uid": run["device_uid"],
        "product_version": run["product_version"],
    }


def _run_row(run: Row, detections: int, report: Mapping[str, Any]) -> Row:
    info = report["run"]
    rules = info.get("rules") if isinstance(info.get("rules"), list) else []
    not_run = [
        str(r.get("rule_id")) for r in rules if isinstance(r, Mapping) and r.get("ran") is False
    ]
    started = epoch_ms(_text(info.get("started_at")))
    return {
        **_common(run, RUNS.class_uid, SEVERITY_IDS[Severity.INFORMATIONAL], "Informational"),
        "start_time": started,
        "end_time": run["time"],
        "duration_s": max(0, (run["time"] - started) // 1000) if started else 0,
        "partial": info.get("partial") is True,
        "replayed": info.get("replayed") is True,
        "events": _int(info.get("events")),
        "lost_events": _int(info.get("lost_events")),
        "num_detections": detections,
        "data_sources": run["data_sources"],
        "rules_not_run": sorted(not_run),
    }


def subject_of(rule_id: str, evidence: Mapping[str, Any]) -> Row:
    """The lake's subject columns of a finding: a one-line ``subject`` (no pids or
    times), and the package, file, program, port and protocol it names when it does."""
    process = _mapping(evidence.get("process"))
    program = _text(process.get("exe")) or _text(process.get("comm")) or _text(evidence.get("exe"))
    remote = _mapping(evidence.get("remote"))
    port = remote.get("port", evidence.get("port"))
    protocol = _text(evidence.get("protocol"))
    path = _text(evidence.get("path")) or _text(evidence.get("module"))
    if rule_id in BINARY_RULES or rule_id == "root-process-insecure-permissions":
        subject = path
    elif rule_id == "insecure-login-accepted":
        program = _text(evidence.get("server")) or program
        subject = f"{program} accepted {protocol or 'a login'}"
    elif "bind_addresses" in evidence:  # a listener
        subject = f"{program or 'unknown program'} listening on tcp/{port}"
    elif remote:
        subject = f"{program or 'unknown program'} to {protocol or 'port'} {port}"
    else:
        subject = path or program or rule_id
    return {
        "subject": subject,
        "package": _text(evidence.get("package")),
        "file_path": path,
        "process_name": program,
        "dst_port": port if isinstance(port, int) and 0 <= port < 65536 else None,
        "protocol": protocol,
    }


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and 0 <= value < 2**63 else 0


def _event_day(ms: int, run_id: str) -> str:
    try:
        moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise FleetError(f"run {run_id}: run.ended_at is out of range") from None
    return moment.strftime("%Y%m%d")


def _file_base(host: str, run_id: str) -> str:
    digest = hashlib.sha256(f"{host}\0{run_id}".encode()).hexdigest()[:12]
    return f"{_UNSAFE.sub('_', run_id)[:64]}-{digest}"


# --- writing ----------------------------------------------------------------------


def _missing(
    lake: str, source: Source, partition: str, base: str, rows: Sequence[Row]
) -> tuple[list[Row], int]:
    """The rows whose (fingerprint, run) is not yet in the run's files, and how many are."""
    directory = os.path.join(lake, "ext", source.name, partition)
    existing = sorted(
        glob.glob(os.path.join(glob.escape(directory), f"{glob.escape(base)}*.parquet"))
    )
    if not existing:
        return list(rows), 0
    keys = _keys(existing, source)
    new = [r for r in rows if _key(r, source) not in keys]
    return new, len(rows) - len(new)


def _key(row: Row, source: Source) -> tuple[str, str]:
    return (row["finding_uid"] if source is not RUNS else "", row["run_uid"])


def _keys(paths: Sequence[str], source: Source) -> set[tuple[str, str]]:
    import pyarrow.parquet as pq

    columns = ["run_uid"] if source is RUNS else ["finding_uid", "run_uid"]
    keys: set[tuple[str, str]] = set()
    for path in paths:
        try:
            table = pq.read_table(path, columns=columns)
        except (OSError, ValueError) as e:
            raise FleetError(f"{path}: unreadable lake file ({str(e)[:80]})") from None
        runs = table.column("run_uid").to_pylist()
        uids = table.column("finding_uid").to_pylist() if source is not RUNS else [""] * len(runs)
        keys.update(zip(uids, runs))
    return keys


def _write(lake: str, source: Source, partition: str, base: str, rows: Sequence[Row]) -> str:
    """Write ``rows`` as one zstd Parquet file through :mod:`probes.files` (O_EXCL temp
    file, fsync, rename, mode 0600); its path relative to the lake."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = os.path.join(lake, "ext", source.name, partition)
    name = base if not _exists_any(directory, base) else f"{base}+{_rows_digest(rows, source)}"
    relative = os.path.join("ext", source.name, partition, f"{name}.parquet")
    try:
        _make_dirs(lake, os.path.join("ext", source.name, partition))
        table = pa.Table.from_pylist(list(rows), schema=arrow_schema(source))
        new = NewFile(os.path.join(lake, relative))
    except (OSError, FileWriteError) as e:
        raise FleetError(f"cannot write lake {lake}: {getattr(e, 'strerror', None) or e}") from None
    try:
        pq.write_table(table, new.file, compression="zstd")
        new.publish()
    except (OSError, FileWriteError) as e:
        new.discard()
        raise FleetError(f"cannot write lake {lake}: {getattr(e, 'strerror', None) or e}") from None
    new.close()
    return relative


def _make_dirs(lake: str, relative: str) -> None:
    """Create ``relative`` under ``lake`` one level at a time, each new level 0750
    (``os.makedirs`` gives its mode to the last level only)."""
    path = lake
    for part in relative.split(os.sep):
        path = os.path.join(path, part)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o750)


def _exists_any(directory: str, base: str) -> bool:
    return os.path.exists(os.path.join(directory, f"{base}.parquet"))


def _rows_digest(rows: Sequence[Row], source: Source) -> str:
    keys = sorted(_key(r, source) for r in rows)
    return hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:12]
