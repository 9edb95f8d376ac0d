"""rba replay TRACE... --lake: 100 real traces replayed on a real Dask LocalCluster of
two workers leave the lake a serial replay leaves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyarrow", reason="needs the rba[fleet] extra (pyarrow)")
duckdb = pytest.importorskip("duckdb", reason="needs the rba[fleet] extra (duckdb)")
distributed = pytest.importorskip("distributed", reason="needs the rba[fleet] extra (dask)")

from behavior.commands.cli import main  # noqa: E402
from tests.fleet.traces import write_traces  # noqa: E402

TRACES = 100
ROOT = Path(__file__).resolve().parents[2]


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


CLUSTER_SCRIPT = """
import sys

import distributed

from behavior.commands.cli import main

if __name__ == "__main__":
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=50,
    ) as cluster:
        code = main(["replay", *sys.argv[1:], "--dask", cluster.scheduler_address])
    sys.exit(code)
"""


def _replay_on_local_cluster(tmp_path: Path, argv: list[str]) -> tuple[int, str]:
    """``rba replay ARGV --dask`` against a LocalCluster of 2 worker processes, all in a
    session of their own, killed whole if they outlive the timeout (a cluster that
    hangs while shutting down must not hang the suite)."""
    script = tmp_path / "cluster_replay.py"
    script.write_text(CLUSTER_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), *argv], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the LocalCluster replay did not finish in 300 s: {out[-2000:]}")
    return proc.returncode, out


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
    code, out = _replay_on_local_cluster(tmp_path, [*traces, "--lake", str(clustered)])
    assert code == 0, out
    assert f"{TRACES} of {TRACES} trace(s) replayed" in out
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
