"""``rba diff RUN RUN``: two runs of a real daemon (real probes), fetched over its socket
by run id, compare as their JSON reports do."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RBA, REPO
from tests.daemon.daemon_proc import DaemonProcess

pytestmark = [pytest.mark.root, pytest.mark.ebpf]

TEMPLATES = '[[template]]\nname = "short"\nduration = "3s"\n'


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path, TEMPLATES)
    try:
        yield proc.start()
    finally:
        proc.close()


def _rba(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RBA, *args], check=False, cwd=REPO, capture_output=True, text=True)


def test_diff_of_two_daemon_runs_by_id(daemon: DaemonProcess, tmp_path: Path) -> None:
    runs = []
    for _ in range(2):
        run_id = daemon.request("run", template="short")
        assert daemon.wait_finished(run_id)["state"] == "completed"
        runs.append(run_id)
    socket = str(daemon.socket)
    result = _rba("diff", *runs, "--socket", socket, "--format", "json")
    assert result.returncode == 0, result.stderr
    diff = json.loads(result.stdout)
    assert (diff["old_run"]["id"], diff["new_run"]["id"]) == tuple(runs)
    reports = []
    for run_id in runs:
        fetched = _rba("findings", run_id, "--socket", socket, "--format", "json")
        assert fetched.returncode == 0, fetched.stderr
        reports.append(json.loads(fetched.stdout))
    old, new = ({f["fingerprint"] for f in r["findings"]} for r in reports)
    assert {f["fingerprint"] for f in diff["new"]} == new - old
    assert {f["fingerprint"] for f in diff["resolved"]} == old - new
    assert {f["fingerprint"] for f in diff["persisting"]} == old & new
    # Files and run ids mix: the first run's report saved to a file gives the same diff.
    saved = tmp_path / "old.json"
    saved.write_text(json.dumps(reports[0]))
    again = _rba("diff", str(saved), runs[1], "--socket", socket, "--format", "json")
    assert json.loads(again.stdout)["new"] == diff["new"]
    missing = _rba("diff", "r-none", runs[1], "--socket", socket)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_findings_new_since_a_run_or_a_duration(daemon: DaemonProcess) -> None:
    runs = []
    for _ in range(2):
        run_id = daemon.request("run", template="short")
        assert daemon.wait_finished(run_id)["state"] == "completed"
        runs.append(run_id)
    socket = str(daemon.socket)
    expected = _rba("diff", *runs, "--socket", socket, "--format", "json")
    by_run = _rba("findings", runs[1], "--new-since", runs[0], "--socket", socket,
                  "--format", "json")  # fmt: skip
    assert by_run.returncode == 0, by_run.stderr
    assert json.loads(by_run.stdout) == json.loads(expected.stdout)
    # The first run started at least 1 s before the second (each lasts 3 s).
    by_time = _rba("findings", runs[1], "--new-since", "1s", "--socket", socket,
                   "--format", "json")  # fmt: skip
    assert by_time.returncode == 0, by_time.stderr
    assert json.loads(by_time.stdout)["old_run"]["id"] == runs[0]
    too_far = _rba("findings", runs[1], "--new-since", "2h", "--socket", socket)
    assert too_far.returncode == 2 and "no completed run" in too_far.stderr
    html = _rba("findings", runs[1], "--new-since", runs[0], "--socket", socket,
                "--format", "html")  # fmt: skip
    assert html.returncode == 2 and "--new-since gives a diff" in html.stderr
