"""SIGKILL of a real ``rba capture`` at 25 points of its run: while starting, at and
just after the trace's creation, through the window, and while it is being finished.
Whatever is under the trace's name afterwards reads back, says how many events it
recovered, and replays."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from behavior.commands.trace import render_info
from behavior.recording.describe import describe
from behavior.recording.loading import load_recording
from behavior.recording.replay import replay
from probes.trace import open_trace, read_events
from tests.conftest import RBA, REPO

STARTING = [0.0, 0.1, 0.25, 0.5, 0.75]  # seconds after launch, before the trace exists
IN_WINDOW = [0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]
FINISHING = [0.0, 0.01, 0.03, 0.06, 0.1, 0.2, 0.4]  # after SIGTERM ended the window
POINTS = (
    [("starting", d) for d in STARTING]
    + [("window", d) for d in IN_WINDOW]
    + [("finishing", d) for d in FINISHING]
)


class _Quiet:
    def progress(self, done: float, total: float, detail: str) -> None:
        pass

    def notice(self, message: str) -> None:
        pass


def _killed_capture(trace: Path, phase: str, delay: float) -> None:
    proc = subprocess.Popen(
        [*RBA, "capture", "--probes", "poll", "--poll-interval", "0.05s", "--duration", "10m",
         "--output", str(trace)],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        if phase != "starting":
            deadline = time.monotonic() + 90
            while not trace.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            assert trace.exists(), "the capture never created its trace"
            if phase == "finishing":
                time.sleep(0.5)
                proc.send_signal(signal.SIGTERM)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(("phase", "delay"), POINTS, ids=[f"{p}-{d}" for p, d in POINTS])
def test_sigkill_leaves_a_trace_that_reads_back(phase: str, delay: float, tmp_path: Path) -> None:
    trace = tmp_path / "t.rbt"
    _killed_capture(trace, phase, delay)
    if not trace.exists():
        assert phase == "starting", "a published trace vanished"
        return  # killed before the trace was created: nothing under its name
    index = open_trace(str(trace))  # never 'nothing recovered': published after START
    assert sum(len(b) for b in read_events(index)) == index.events
    info = describe(str(trace))
    text = render_info(info)
    if not info["intact"]:
        assert f"integrity: NOT intact; recovered {index.events} events" in text
    report = replay(load_recording(str(trace)), _Quiet())
    assert report.run.partial == (not info["intact"] or bool(index.end and index.end["partial"]))
    leftovers = [p for p in os.listdir(tmp_path) if p != "t.rbt"]
    assert leftovers == [], leftovers  # the temporary name is gone once published
