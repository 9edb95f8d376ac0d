"""The CLI's shared pieces: durations, atomic output, exit codes for bad usage."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from behavior.durations import format_duration, parse_duration
from behavior.formats.output import write_atomic
from behavior.interface import UsageError
from tests.conftest import run_rba


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h", 3600), ("24h", 86400), ("2.5s", 2.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5d", "-3s", "1h30", "30"])
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


def test_unwritable_output_fails_before_the_window() -> None:
    """A 24 h window must not run only to find its report cannot be written."""
    result = run_rba(
        "assess", "--duration", "24h", "--probes", "poll", "--output", "/nonexistent/r.json",
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "rba assess: cannot write report /nonexistent/r.json: No such file or directory"
    ]


def test_report_that_cannot_be_written_at_the_end_goes_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The directory vanished during the window: the report is printed, not lost."""
    import argparse

    from behavior.commands.report_options import report_options
    from behavior.interface import Report, RunInfo

    target = tmp_path / "gone" / "report.json"
    target.parent.mkdir()
    args = argparse.Namespace(
        format="json", output=str(target), fail_on=None, suppressions=None,
        aws_account_id=None, aws_region=None, min_severity=None,
    )  # fmt: skip
    options = report_options(args)
    target.parent.rmdir()
    run = RunInfo("r1", "h", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", 1.0, (), 0, 0, ())
    assert options.deliver(Report(run, ()), "assess") == 2
    captured = capsys.readouterr()
    assert '"id": "r1"' in captured.out
    assert "the report follows on stdout" in captured.err
