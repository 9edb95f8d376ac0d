"""The CLI's shared pieces: durations, atomic output, exit codes for bad usage."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from behavior.durations import format_duration, parse_duration
from behavior.errors import UsageError
from behavior.output import write_atomic
from tests.conftest import run_rba


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h", 3600), ("24h", 86400), ("2.5s", 2.5), ("30", 30)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5d", "-3s", "1h30"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_parse_duration_bounds() -> None:
    with pytest.raises(UsageError, match="outside"):
        parse_duration("25h")
    with pytest.raises(UsageError, match="outside"):
        parse_duration("10s", minimum=90)


def test_format_duration() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(0) == "0s"


def test_write_atomic_mode_0600(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    os.chmod(target, 0o644)
    write_atomic(str(target), "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_write_atomic_bad_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot write"):
        write_atomic(str(tmp_path / "missing" / "r.json"), "x")


def test_unknown_command_is_usage_error() -> None:
    result = run_rba("no-such-command")
    assert result.returncode == 2
