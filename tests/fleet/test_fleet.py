"""rba fleet: DuckDB over a real lake of replayed traces from synthetic hosts, in text,
JSON and HTML; and the one line said when the fleet extra is not installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fleet.traces import write_traces

ROOT = Path(__file__).resolve().parents[2]
HIDE = "import sys; sys.modules.update({m: None for m in ('pyarrow', 'duckdb', 'distributed')})"


def rba_without_extra(*argv: str) -> subprocess.CompletedProcess[str]:
    """``rba ARGV`` in a fresh interpreter where pyarrow, duckdb and distributed cannot
    be imported (as on a core install)."""
    code = f"{HIDE}; from behavior.commands.cli import main; sys.exit(main({list(argv)!r}))"
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "argv",
    [["lake", "add", "L", "r.json"], ["fleet", "L"], ["replay", "t.rbt", "--lake", "L"]],
)
def test_without_the_extra_one_line_says_what_to_install(tmp_path: Path, argv: list[str]) -> None:
    argv = [str(tmp_path / a) if a in ("L", "r.json", "t.rbt") else a for a in argv]
    done = rba_without_extra(*argv)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "pip install 'rba[fleet]'" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "L").exists()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Day 0: hosts 0-5 report; day 1: hosts 0-3 report again, and host 0 now also runs
    the unprotected library on a new listener port... (see tests/fleet/traces.py)."""
    pytest.importorskip("pyarrow", reason="needs the rba[fleet] extra (pyarrow)")
    pytest.importorskip("duckdb", reason="needs the rba[fleet] extra (duckdb)")
    from behavior.commands.cli import main

    base = tmp_path_factory.mktemp("fleet")
    traces = write_traces(base, 6, day=0) + write_traces(base, 4, day=1)
    # day 1 of hosts 4 and 5 is missing: they stopped reporting; a 7th host appears on day 1
    from tests.fleet.traces import write_host_trace

    traces.append(write_host_trace(base, 6, day=1))
    assert main(["replay", *map(str, traces), "--lake", str(base / "lake"), "--jobs", "2"]) == 0
    return base / "lake"


DAY1 = "2023-11-15"  # the traces' day 0 is 2023-11-14


def test_fleet_answers_per_rule_subjects_new_and_silent(lake: Path) -> None:
    from behavior.commands.fleet import parse_since
    from behavior.fleet.query import fleet_summary

    summary = fleet_summary(str(lake), parse_since(DAY1))
    assert (summary.hosts, summary.runs) == (7, 11)
    rules = {r.rule_id: (r.hosts, r.findings, r.sightings) for r in summary.rules}
    # day 1 only: hosts 0-3 and 6; the library on hosts 0, 3 and 6 (every third host)
    assert rules == {
        "insecure-client-login": (5, 5, 5),
        "unused-listening-port": (5, 5, 5),
        "software-without-dep": (3, 3, 3),
        "software-without-stack-cookies": (3, 3, 3),
    }
    top = summary.subjects[0]
    assert (top.rule_id, top.subject, top.hosts) == (
        "insecure-client-login", "/usr/bin/telnet to telnet 23", 5,
    )  # fmt: skip
    library = next(s for s in summary.subjects if s.rule_id == "software-without-dep")
    assert (library.subject, library.package, library.hosts) == ("/opt/app/bin/app", "acme-app", 3)
    # new since day 1: only host 6's findings (hosts 0-3 had the same ones on day 0)
    assert {n.host for n in summary.new} == {"host0006"}
    assert len(summary.new) == 4
    assert [h.host for h in summary.silent] == ["host0004", "host0005"]
    assert summary.silent[0].last_run == "run-host0004-d0"
    everything = fleet_summary(str(lake), 0)
    assert {r.rule_id: r.hosts for r in everything.rules}["insecure-client-login"] == 7
    assert len(everything.new) == 7 * 2 + 3 * 2 and everything.silent == ()


def test_fleet_cli_formats(lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from behavior.commands.cli import main

    assert main(["fleet", str(lake), "--since", DAY1, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["since"] == "2023-11-15T00:00:00.000Z" and data["hosts"] == 7
    assert [h["host"] for h in data["silent"]] == ["host0004", "host0005"]
    assert data["silent"][0]["last_report"] == "2023-11-14T22:14:20.000Z"
    assert main(["fleet", str(lake), "--since", DAY1]) == 0
    text = capsys.readouterr().out
    assert "5 host(s)  /usr/bin/telnet to telnet 23" in text
    assert "3 host(s)  /opt/app/bin/app (package acme-app)" in text
    assert "host0004  last run run-host0004-d0" in text
    out = tmp_path / "fleet.html"
    assert (
        main(["fleet", str(lake), "--since", DAY1, "--format", "html", "--output", str(out)]) == 0
    )
    html = out.read_text()
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert "<script" not in html and "http" not in html.split("</style>", 1)[1]
    assert "<h1>Fleet of 7 host(s)</h1>" in html and "acme-app" in html
    assert os.stat(out).st_mode & 0o777 == 0o600


def test_fleet_cli_errors_are_one_line(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from behavior.commands.cli import main

    for argv in (
        ["fleet", str(tmp_path)],
        ["fleet", str(lake), "--since", "yesterday"],
        ["fleet", str(lake), "--format", "pdf"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("rba fleet: ") and err.count("\n") == 1
    broken = tmp_path / "broken"
    part = broken / "ext/rba-scan-activity/region=x/accountId=000000000000/eventDay=1"
    part.mkdir(parents=True)
    (part / "x.parquet").write_bytes(b"PAR1 not really parquet")
    assert main(["fleet", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "cannot query the lake" in err and err.count("\n") == 1
