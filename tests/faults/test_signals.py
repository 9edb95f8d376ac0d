"""Issue 12 item 10 and the signal storms: SIGHUP (a dropped SSH session), SIGTERM and
SIGINT end a real window early; the partial report or trace is still written, whatever
arrives afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from probes.trace import open_trace
from tests.conftest import RBA, REPO

STORM = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


def _start(args: list[str], trace: Path) -> subprocess.Popen[str]:
    """A real rba window on the polling probes; returns once its trace is published
    (the window has begun)."""
    proc = subprocess.Popen(
        [*RBA, *args, "--probes", "poll", "--duration", "1h"], cwd=REPO, text=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while not trace.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"the window never began (rc {proc.returncode}): {err}")
        time.sleep(0.1)
    time.sleep(1.5)  # a few polls into the window
    return proc


def _assess(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    trace, report = tmp_path / "t.rbt", tmp_path / "r.json"
    args = ["assess", "--format", "json", "--output", str(report), "--record", str(trace)]
    return _start(args, trace), trace, report


def _partial_report(report: Path) -> dict[str, object]:
    run = json.loads(report.read_text())["run"]
    assert run["partial"] is True and run["events"] > 0
    return run  # type: ignore[no-any-return]


def test_sighup_ends_assess_early_with_its_report(tmp_path: Path) -> None:
    proc, trace, report = _assess(tmp_path)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    _partial_report(report)
    assert open_trace(str(trace)).end["partial"] is True  # type: ignore[index]


@pytest.mark.parametrize("command", ["assess", "capture"])
def test_a_storm_of_signals_still_leaves_the_report_and_trace(command: str, tmp_path: Path) -> None:
    """Three hundred signals of three kinds, while the window runs and while it is
    being finished: one ends the window, the rest change nothing."""
    if command == "assess":
        proc, trace, report = _assess(tmp_path)
    else:
        trace = tmp_path / "t.rbt"
        proc = _start(["capture", "--output", str(trace)], trace)
    for i in range(300):
        if proc.poll() is not None:
            break
        try:
            os.kill(proc.pid, STORM[i % 3])
        except ProcessLookupError:
            break
        time.sleep(0.005)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    index = open_trace(str(trace))
    assert index.damage is None and index.end is not None and index.end["partial"] is True
    if command == "assess":
        _partial_report(report)
    else:
        assert "ended early, partial" in err
