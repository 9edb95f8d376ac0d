"""Issue 12 item 9: a stdout that cannot be written is a one-line error and exit 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import RBA, REPO
from tests.faults.traces import record_trace

CLOSED = -100  # not subprocess.PIPE (-1) nor DEVNULL (-3)


def _rba(args: list[str], stdout: int) -> subprocess.CompletedProcess[str]:
    """Run rba with stdout as given (CLOSED: closed)."""

    def close_stdout() -> None:
        os.close(1)

    return subprocess.run(
        [*RBA, *args], check=False, cwd=REPO, text=True, timeout=120, stderr=subprocess.PIPE,
        stdout=None if stdout == CLOSED else stdout, stdin=subprocess.DEVNULL,
        preexec_fn=close_stdout if stdout == CLOSED else None,
    )  # fmt: skip


@pytest.fixture
def dev_full() -> int:
    if not os.path.exists("/dev/full"):
        pytest.skip("this system has no /dev/full")
    fd = os.open("/dev/full", os.O_WRONLY)
    yield fd  # type: ignore[misc]
    os.close(fd)


def test_rules_onto_a_full_device(dev_full: int) -> None:
    result = _rba(["rules"], dev_full)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "rba rules: cannot write to standard output: No space left on device"
    ]


@pytest.mark.parametrize("command", ["rules", "replay"])
def test_a_closed_stdout_is_an_error_not_silence(command: str, tmp_path: Path) -> None:
    args = ["rules"] if command == "rules" else ["replay", str(record_trace(tmp_path / "t"))]
    result = _rba(args, CLOSED)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"rba {command}: cannot write to standard output: it is closed"
    ]


def test_a_closed_stdout_does_not_receive_the_file_written(tmp_path: Path) -> None:
    """With fd 1 closed, the report file must not become fd 1 and the report must not
    be sent to it twice: it is written once, to --output, and rba succeeds."""
    trace, out = str(record_trace(tmp_path / "t")), tmp_path / "r.json"
    result = _rba(["replay", trace, "--format", "json", "--output", str(out)], CLOSED)
    assert result.returncode == 0, result.stderr
    expected = _rba(["replay", trace, "--format", "json"], subprocess.PIPE)
    assert out.read_text().strip() == expected.stdout.strip()


def test_replay_onto_a_full_device(dev_full: int, tmp_path: Path) -> None:
    result = _rba(["replay", str(record_trace(tmp_path / "t")), "--format", "json"], dev_full)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "rba replay: cannot write to standard output: No space left on device"
    ]
