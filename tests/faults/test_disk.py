"""Issue 12 item 14 and the disk faults: a full disk (ENOSPC) and a dying one (EIO),
under a real rba capture and under the one file writer. Each gives one line, and what
was flushed before the fault stays readable."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from behavior.formats.output import write_atomic
from behavior.interface import UsageError
from probes.events import StringTable, empty
from probes.trace import TraceError, TraceWriter, open_trace, read_events
from tests.conftest import RBA, REPO
from tests.faults.disks import ext4_on_loop, fill, remount, shut_down, small_tmpfs


def _capture(trace: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*RBA, "capture", "--probes", "poll", "--poll-interval", "0.1s", "--duration", "10m",
         "--output", str(trace)],
        cwd=REPO, text=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while not trace.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the capture never began"
        time.sleep(0.05)
    time.sleep(1.5)  # flushed a few times
    return proc


def _one_line(proc: subprocess.Popen[str], reason: str) -> str:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    lines = [line for line in err.splitlines() if not line.startswith("rba: ")]  # notices
    assert len(lines) == 1 and "Traceback" not in err, err
    assert reason in lines[0], err
    return lines[0]


def _readable(trace: Path) -> int:
    index = open_trace(str(trace))
    assert not index.ended_cleanly
    assert sum(len(b) for b in read_events(index)) == index.events
    return index.events


def test_capture_onto_a_disk_that_fills_keeps_what_was_flushed(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small", "4m") as mount:
        trace = mount / "t.rbt"
        proc = _capture(trace)
        flushed = trace.stat().st_size
        fill(mount)
        line = _one_line(proc, "No space left on device")
        assert line.startswith(f"rba capture: cannot write trace {trace}")
        assert trace.stat().st_size >= flushed
        assert _readable(trace) > 0


def test_capture_onto_a_dying_disk_is_one_line_and_keeps_what_was_synced(tmp_path: Path) -> None:
    with ext4_on_loop(tmp_path / "disk") as mount:
        trace = mount / "t.rbt"
        proc = _capture(trace)
        synced = open_trace(str(trace)).events
        shut_down(mount)
        _one_line(proc, "Input/output error")
        remount(mount)
        assert _readable(trace) >= synced > 0


def test_trace_writer_enospc_mid_chunk(tmp_path: Path) -> None:
    """The disk fills inside a chunk: a torn tail, reported; everything before it read."""
    with small_tmpfs(tmp_path / "small", "1m") as mount:
        strings = StringTable()
        writer = TraceWriter(str(mount / "t.rbt"), {}, strings, compress=False, flush_interval=60)
        batch = empty(1000)
        written = 0
        with pytest.raises(TraceError, match="No space left on device"):
            while True:
                writer.add_events(batch)
                writer.flush()
                written += len(batch)
        with pytest.raises(TraceError, match="No space left on device"):
            writer.close({"ended_at_ns": 1})
        index = open_trace(str(mount / "t.rbt"))
        assert index.events == written and index.damage is not None and not index.ended_cleanly


def test_write_atomic_onto_a_full_disk_keeps_the_old_file(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small", "256k") as mount:
        report = mount / "r.json"
        report.write_text("old report")
        fill(mount)
        with pytest.raises(UsageError, match=r"^cannot write .*r\.json: No space left on device$"):
            write_atomic(str(report), "x" * 100_000)
        assert report.read_text() == "old report"
        assert sorted(os.listdir(mount)) == ["filler", "r.json"]  # no temporary left


def test_write_atomic_onto_a_dying_disk(tmp_path: Path) -> None:
    with ext4_on_loop(tmp_path / "disk") as mount:
        write_atomic(str(mount / "r.txt"), "first")
        shut_down(mount)
        with pytest.raises(UsageError, match="Input/output error"):
            write_atomic(str(mount / "r.txt"), "second")
        remount(mount)
        assert (mount / "r.txt").read_text() == "first"
