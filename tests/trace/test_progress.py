"""Long captures and replays draw a progress line when stderr is a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

from tests.conftest import RBA, REPO


def _run_on_tty(*args: str) -> tuple[int, str]:
    """Run rba with stderr on a pseudo-terminal; return its status and what it drew."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*RBA, *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=follower, close_fds=True
    )
    os.close(follower)
    drawn = bytearray()
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    return proc.wait(timeout=120), drawn.decode("utf-8", "replace")


def test_capture_and_replay_draw_progress_on_a_terminal(tmp_path: Path) -> None:
    trace = tmp_path / "t.rbt"
    code, drawn = _run_on_tty(
        "capture", "--duration", "2s", "--probes", "poll", "--output", str(trace)
    )
    assert code == 0, drawn
    assert "\r\x1b[K[" in drawn and "left," in drawn and " events" in drawn
    code, drawn = _run_on_tty("replay", str(trace), "--output", str(tmp_path / "r.txt"))
    assert code == 0, drawn
    assert "[100.0%] replayed" in drawn
