"""Issue 12 item 6: ESC, OSC, BEL and C1 controls from the observed system never reach
the terminal raw; they are shown escaped, and JSON keeps them losslessly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from behavior.formats.output import emit
from behavior.formats.terminal import for_terminal, visible
from probes.trace import ChunkType
from tests.conftest import run_rba
from tests.faults.traces import json_chunk, start_record, trace_bytes

# Retitles the window (OSC 0), rings (BEL), CSI in its 8-bit C1 form, and a lone surrogate.
HOSTILE = "ev\x1b]0;owned\x07il\x9b2J\udcff"
RAW = ("\x1b", "\x07", "\x9b")


def _assert_clean(text: str) -> None:
    assert not any(c in text for c in RAW), repr(text)


def test_the_sanitizer_escapes_c0_and_c1_visibly_and_json_losslessly() -> None:
    assert visible("a\x1bb\nc\x85") == "a\\u001bb\\u000ac\\u0085"
    assert for_terminal("line\tone\nline two\x7f") == "line\tone\nline two\\u007f"
    document = json.dumps({"comm": HOSTILE}, ensure_ascii=False)
    assert json.loads(for_terminal(document)) == {"comm": HOSTILE}


def test_trace_info_shows_a_hostile_header_escaped(tmp_path: Path) -> None:
    start = start_record()
    start["host"] = {"hostname": HOSTILE, "os": "\x1b[2J"}
    start["run_id"] = HOSTILE
    trace = tmp_path / "t.rbt"
    trace.write_bytes(
        trace_bytes(start, json_chunk(ChunkType.END, {"ended_at_ns": 10**18, "partial": False}))
    )
    text = run_rba("trace", "info", str(trace), timeout=60)
    assert text.returncode == 0, text.stderr
    _assert_clean(text.stdout)
    assert "ev\\u001b]0;owned\\u0007il\\u009b2J\\udcff" in text.stdout
    as_json = run_rba("trace", "info", str(trace), "--format", "json", timeout=60)
    _assert_clean(as_json.stdout)
    assert json.loads(as_json.stdout)["header"]["run_id"] == HOSTILE


def test_an_error_naming_a_hostile_path_is_one_escaped_line(tmp_path: Path) -> None:
    result = run_rba("replay", str(tmp_path / "no\x1b]0;x\x07\nsuch"), timeout=60)
    assert result.returncode == 2
    _assert_clean(result.stderr)
    assert len(result.stderr.splitlines()) == 1


def test_scan_text_shows_a_hostile_file_name_escaped(tmp_path: Path) -> None:
    shutil.copy("/bin/true", tmp_path / "t\x1b]0;owned\x07rue")
    result = run_rba("scan", "-r", str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stderr
    _assert_clean(result.stdout + result.stderr)
    assert "t\\u001b]0;owned\\u0007rue" in result.stdout


def test_emit_writes_a_report_file_escaped_and_keeps_own_colours(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emit(f"\x1b[32mok\x1b[0m {HOSTILE}", None, colors=True)
    out = capsys.readouterr().out
    assert out.startswith("\x1b[32mok\x1b[0m ev\\u001b]0;")
    emit(HOSTILE, str(tmp_path / "r.txt"))
    _assert_clean((tmp_path / "r.txt").read_text(errors="surrogateescape"))


@pytest.mark.skipif(os.geteuid() != 0, reason="rba events needs root to see every process")
def test_events_shows_a_hostile_comm_escaped() -> None:
    """A real process names itself with an OSC sequence (prctl PR_SET_NAME)."""
    rename = (
        "import ctypes, time; ctypes.CDLL(None).prctl(15, b'x\\x1b]0;own\\x07', 0, 0, 0); "
        "time.sleep(30)"
    )
    proc = subprocess.Popen([sys.executable, "-c", rename])
    try:
        time.sleep(0.5)
        result = run_rba("events", "--probes", "poll", "--duration", "2s", timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert result.returncode == 0, result.stderr
    _assert_clean(result.stdout)
    assert "x\\u001b]0;own\\u0007" in result.stdout


def test_the_text_report_shows_observed_notes_escaped_and_json_keeps_them(
    tmp_path: Path,
) -> None:
    """A trace's end notices reach the report's notes (text, JSON) as they were."""
    end = {"ended_at_ns": 10**18 + 30 * 10**9, "partial": False, "notices": [HOSTILE],
           "stats": {"poll": {"events": 0, "lost": 0, "gaps": [HOSTILE]}}}  # fmt: skip
    trace = tmp_path / "t.rbt"
    trace.write_bytes(trace_bytes(start_record(), json_chunk(ChunkType.END, end)))
    text = run_rba("replay", str(trace), timeout=120)
    assert text.returncode == 0, text.stderr
    _assert_clean(text.stdout)
    assert "ev\\u001b]0;owned\\u0007il" in text.stdout
    as_json = run_rba("replay", str(trace), "--format", "json", timeout=120)
    _assert_clean(as_json.stdout)
    notes = json.loads(as_json.stdout)["run"]["notes"]
    assert any(HOSTILE in note for note in notes), notes
