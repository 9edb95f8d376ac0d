"""rba lake add: real Parquet files in Security Lake's layout, read back with pyarrow and
DuckDB; idempotence, atomic files, the DDL's types, and hostile reports."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

pq = pytest.importorskip("pyarrow.parquet", reason="needs the rba[fleet] extra (pyarrow)")
duckdb = pytest.importorskip("duckdb", reason="needs the rba[fleet] extra (duckdb)")

from behavior.commands.cli import main  # noqa: E402
from behavior.fleet.interface import FleetError  # noqa: E402
from behavior.fleet.lake import add_reports  # noqa: E402
from behavior.fleet.schema import SOURCES, athena_ddl, duckdb_type  # noqa: E402
from behavior.formats.json_format import report_to_dict  # noqa: E402
from behavior.interface import NullObserver  # noqa: E402
from behavior.recording.loading import load_recording  # noqa: E402
from behavior.recording.replay import replay  # noqa: E402
from tests.fleet.traces import write_host_trace  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"
PARTITION = "region=eu-west-1/accountId=012345678901/eventDay=20231114"


def host_report(tmp_path: Path, i: int, day: int = 0) -> dict[str, Any]:
    """The JSON report of replaying host ``i``'s real trace."""
    trace = write_host_trace(tmp_path, i, day=day)
    return report_to_dict(replay(load_recording(str(trace)), NullObserver()))


def lake_files(lake: Path) -> list[str]:
    return sorted(str(p.relative_to(lake)) for p in lake.rglob("*") if p.is_file())


def test_reports_land_in_one_directory_per_ocsf_class(tmp_path: Path) -> None:
    report = host_report(tmp_path, 0)  # telnet, a listener, a library without DEP/cookies
    lake = tmp_path / "lake"
    result = add_reports(str(lake), [report], region="eu-west-1", account_id="012345678901")
    assert (result.reports, result.findings_added, result.runs_added) == (1, 4, 1)
    files = lake_files(lake)
    assert [f.split("/")[1] for f in files] == [
        "rba-detection", "rba-scan-activity", "rba-vulnerability",
    ]  # fmt: skip
    assert all(f"/{PARTITION}/" in f and f.endswith(".parquet") for f in files)
    detection = pq.read_table(lake / files[0]).to_pylist()
    vulnerability = pq.read_table(lake / files[2]).to_pylist()
    assert {r["rule_uid"] for r in detection} == {"insecure-client-login", "unused-listening-port"}
    assert {r["class_uid"] for r in detection} == {2004}
    assert {r["rule_uid"] for r in vulnerability} == {
        "software-without-dep", "software-without-stack-cookies",
    }  # fmt: skip
    assert {(r["class_uid"], r["file_path"], r["package"]) for r in vulnerability} == {
        (2002, "/opt/app/bin/app", "acme-app")
    }
    fingerprints = {f["fingerprint"] for f in report["findings"]}
    assert {r["finding_uid"] for r in detection + vulnerability} == fingerprints
    telnet = next(r for r in detection if r["rule_uid"] == "insecure-client-login")
    assert (telnet["process_name"], telnet["dst_port"], telnet["protocol"]) == (
        "/usr/bin/telnet", 23, "telnet",
    )  # fmt: skip
    assert json.loads(telnet["evidence"])["remote"] == {"address": "198.51.100.7", "port": 23}
    assert telnet["host"] == "host0000" and telnet["run_uid"] == "run-host0000-d0"
    assert telnet["device_uid"] == report["run"]["machine_id"]
    run = pq.read_table(lake / files[1]).to_pylist()
    assert len(run) == 1 and run[0]["num_detections"] == 4 and run[0]["events"] == 5
    times = [r["start_time"] for r in detection]
    assert times == sorted(times)


def test_files_are_zstd_atomic_and_private(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    add_reports(str(lake), [host_report(tmp_path, 0)])
    for path in lake.rglob("*"):
        if path.is_file():
            assert path.suffix == ".parquet", f"a temporary file was left: {path}"
            assert path.stat().st_mode & 0o777 == 0o600
            meta = pq.ParquetFile(path).metadata
            codecs = {meta.row_group(0).column(c).compression for c in range(meta.num_columns)}
            assert codecs == {"ZSTD"}
        else:
            assert path.stat().st_mode & 0o777 == 0o750


def test_adding_the_same_report_twice_adds_nothing(tmp_path: Path) -> None:
    report = host_report(tmp_path, 3)
    lake = tmp_path / "lake"
    first = add_reports(str(lake), [report])
    before = {f: (lake / f).read_bytes() for f in lake_files(lake)}
    again = add_reports(str(lake), [report, report])
    assert (again.findings_added, again.runs_added, again.files) == (0, 0, ())
    assert again.findings_present == 2 * first.findings_added
    assert {f: (lake / f).read_bytes() for f in lake_files(lake)} == before
    # The same run with one more finding: only that one is added, in a part of its own.
    extra = json.loads(json.dumps(report))
    extra["findings"].append(dict(extra["findings"][0], fingerprint="f" * 32))
    more = add_reports(str(lake), [extra])
    assert (more.findings_added, more.findings_present, more.runs_added) == (1, 4, 0)
    rows = duckdb.sql(
        f"SELECT finding_uid, run_uid FROM read_parquet('{lake}/ext/rba-detection/*/*/*/*.parquet')"
    ).fetchall()
    assert len(rows) == len(set(rows)) == 3


def test_suppressed_findings_keep_their_status(tmp_path: Path) -> None:
    report = host_report(tmp_path, 1)
    hidden = report["findings"].pop()
    report["suppressed"] = [dict(hidden, suppression={"reason": "known"})]
    lake = tmp_path / "lake"
    add_reports(str(lake), [report])
    rows = duckdb.sql(
        f"SELECT rule_uid, status_id, status FROM read_parquet('{lake}/ext/*/*/*/*/*.parquet', "
        "union_by_name = true) WHERE class_uid <> 6007 ORDER BY status_id"
    ).fetchall()
    assert rows[-1] == (hidden["rule_id"], 3, "Suppressed")
    assert all(r[1:] == (1, "New") for r in rows[:-1]) and len(rows) == 2


def _ddl_columns(text: str, table: str) -> list[tuple[str, str]]:
    body = re.search(rf"CREATE EXTERNAL TABLE {table} \((.*?)\n\)", text, re.S)
    assert body, f"docs/fleet.md has no DDL for {table}"
    return re.findall(r"`(\w+)`\s+([\w<>]+)", body.group(1))


def test_duckdb_reads_the_documented_ddl_types_as_written(tmp_path: Path) -> None:
    """The DDL in docs/fleet.md is the code's, and every column of real lake files reads
    in DuckDB with the type that DDL gives; LIST columns are proper 3-level LISTs."""
    docs = DOCS.read_text()
    lake = tmp_path / "lake"
    add_reports(str(lake), [host_report(tmp_path, 0)])
    for source in SOURCES:
        assert athena_ddl(source) in docs
        files = f"{lake}/ext/{source.name}/*/*/*/*.parquet"
        described = duckdb.sql(
            f"DESCRIBE SELECT * FROM read_parquet('{files}', hive_partitioning = true, "
            "hive_types = {'region': VARCHAR, 'accountId': VARCHAR, 'eventDay': VARCHAR})"
        ).fetchall()
        read = {name: kind for name, kind, *_ in described}
        ddl = _ddl_columns(docs, source.table)
        assert [n for n, _ in ddl] == [
            n for n in read if n not in ("region", "accountId", "eventDay")
        ]
        for name, hive in ddl:
            assert read[name] == duckdb_type(hive), f"{source.name}.{name}"
        assert {read[p] for p in ("region", "accountId", "eventDay")} == {"VARCHAR"}
        schema = pq.ParquetFile(next((lake / "ext" / source.name).rglob("*.parquet"))).schema
        for i in range(len(schema)):
            column = schema.column(i)
            if column.max_repetition_level:  # only inside a LIST group named list/element
                assert column.path.endswith(".list.element"), column.path


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\xffnot json", "not JSON"),
        (b"[1, 2]", "not an rba JSON report"),
        (b'{"run": {"id": "r", "host": "h", "ended_at": "never"}}', "not an ISO 8601 time"),
        (
            b'{"run": {"id": "r", "host": "h", "ended_at": "2023-11-14T22:14:20Z"},'
            b' "findings": [{"rule_id": "x", "severity": "Severe"}]}',
            "no valid severity",
        ),
        (b'{"run": {"id": "r", "host": "h", "ended_at": "2023-11-14T22:14:20Z"},'
         b' "findings": {"a": 1}}', "is not a list"),
    ],
)  # fmt: skip
def test_hostile_reports_are_one_line_errors_that_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    code, _, err = _cli(["lake", "add", str(tmp_path / "lake"), str(bad)], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert lake_files(tmp_path / "lake") == []


def test_cli_adds_reports_and_checks_the_partition_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(host_report(tmp_path, 2)))
    lake = str(tmp_path / "lake")
    code, out, _ = _cli(["lake", "add", lake, str(path), str(path)], capsys)
    assert code == 0
    assert out == f"2 report(s): 2 finding(s) and 1 run(s) added to {lake}, 2 finding(s) " \
        "already there; 2 file(s) written\n"  # fmt: skip
    code, _, err = _cli(["lake", "add", lake, str(path), "--region", "../etc"], capsys)
    assert code == 2 and "region" in err and err.count("\n") == 1
    code, _, err = _cli(["lake", "add", lake, str(path), "--account-id", "12"], capsys)
    assert code == 2 and err.count("\n") == 1
    with pytest.raises(FleetError, match="cannot create lake"):
        add_reports(str(path), [])
    assert not os.path.exists(os.path.join(tmp_path, "etc"))
