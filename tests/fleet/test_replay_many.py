"""rba replay TRACE... --lake: 100 real traces replayed on a real Dask LocalCluster of
two workers leave the lake a serial replay leaves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyarrow", reason="needs the rba[fleet] extra (pyarrow)")
duckdb = pytest.importorskip("duckdb", reason="needs the rba[fleet] extra (duckdb)")
distributed = pytest.importorskip("distributed", reason="needs the rba[fleet] extra (dask)")

from behavior.commands.cli import main  # noqa: E402
from tests.fleet.traces import write_traces  # noqa: E402

TRACES = 100


def lake_contents(lake: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The lake's file names, and every row of every source, sorted."""
    files = sorted(str(p.relative_to(lake)) for p in lake.rglob("*.parquet"))
    rows: list[tuple[Any, ...]] = []
    for source in ("rba-detection", "rba-vulnerability", "rba-scan-activity"):
        rows += duckdb.sql(
            f"SELECT * FROM read_parquet('{lake}/ext/{source}/*/*/*/*.parquet', "
            "hive_partitioning = true) ORDER BY ALL"
        ).fetchall()
    return files, rows


def test_dask_cluster_replay_equals_a_serial_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces = [str(t) for t in write_traces(tmp_path, TRACES)]
    serial, clustered = tmp_path / "serial", tmp_path / "dask"
    assert main(["replay", *traces, "--lake", str(serial), "--jobs", "1"]) == 0
    assert capsys.readouterr().out == (
        f"{TRACES} of {TRACES} trace(s) replayed into {serial}: 268 finding(s) added, "
        "0 already there\n"
    )  # per host telnet and a listener; every third host (34) a library without DEP, cookies
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:  # fmt: skip
        code = main(
            ["replay", *traces, "--lake", str(clustered), "--dask", cluster.scheduler_address]
        )
    assert code == 0
    assert f"{TRACES} of {TRACES} trace(s) replayed" in capsys.readouterr().out
    files, rows = lake_contents(serial)
    assert len(files) == TRACES * 2 + 34  # detection and run per host, + vulnerability
    assert lake_contents(clustered) == (files, rows)


def test_a_bad_trace_is_named_and_the_others_still_land(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces = [str(t) for t in write_traces(tmp_path, 3)]
    bad = tmp_path / "bad.rbt"
    bad.write_bytes(b"not a trace at all")
    lake = tmp_path / "lake"
    assert main(["replay", *traces, str(bad), "--lake", str(lake), "--jobs", "2"]) == 2
    out, err = capsys.readouterr()
    assert out.startswith(f"3 of 4 trace(s) replayed into {lake}: ")
    assert err.startswith(f"rba replay: {bad}: ") and err.count("\n") == 1
    assert len(lake_contents(lake)[0]) == 3 * 2 + 1
    # again: nothing new, and --fail-on applies to the reports
    assert main(["replay", *traces, "--lake", str(lake), "--fail-on", "medium"]) == 1
    assert "0 finding(s) added, 8 already there" in capsys.readouterr().out


def test_many_traces_need_a_lake_and_a_reachable_scheduler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces = [str(t) for t in write_traces(tmp_path, 2)]
    assert main(["replay", *traces]) == 2
    assert "--lake LAKE" in capsys.readouterr().err
    lake = str(tmp_path / "lake")
    assert main(["replay", *traces, "--lake", lake, "--output", str(tmp_path / "x")]) == 2
    assert "--output does not apply" in capsys.readouterr().err
    assert main(["replay", *traces, "--lake", lake, "--min-severity", "high"]) == 2
    assert "--min-severity does not apply" in capsys.readouterr().err
