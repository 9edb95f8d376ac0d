"""Cutting distro noise on purpose: ``--min-severity``, suppressions that match a package
by glob or any file an OS package owns, and colour only on a terminal without NO_COLOR.
The CLI parts run the real ``rba`` on a real polling window."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pytest

from behavior.commands.report_options import at_least
from behavior.formats.suppressions import apply_suppressions, parse_suppressions
from behavior.interface import Report, Severity
from tests.conftest import RBA, run_rba
from tests.formats.conftest import TODAY
from tests.formats.test_summary import STDLIB, busy_report
from tests.test_install_cli import _on_a_terminal

SGR = re.compile(rb"\x1b\[[0-9;]*m")  # colours (a progress line uses \x1b[K, not these)


def _suppress(report: Report, package: str, rule: str = "software-without-stack-cookies") -> Report:
    text = f"[[suppression]]\nrule = '{rule}'\npackage = '{package}'\nreason = 'distro'\n"
    return apply_suppressions(report, parse_suppressions(text, name="s.toml"), today=TODAY)


@pytest.mark.parametrize(
    ("package", "suppressed"),
    [
        ("libpython3*", 9),  # a glob over the package name
        (STDLIB, 9),  # the exact name still works
        ("libpython3.12*", 0),
        ("*", 9),  # any file an OS package owns: not the two unpackaged ones
        ("unpackaged", 2),  # only the files no package owns
        ("unpack*", 0),  # a glob never matches the unpackaged marker
    ],
)
def test_package_globs(report: Report, package: str, suppressed: int) -> None:
    busy = busy_report(report)
    cut = _suppress(busy, package)
    assert len(cut.suppressed) == suppressed
    assert len(cut.findings) == len(busy.findings) - suppressed
    assert all(s.finding.rule_id == "software-without-stack-cookies" for s in cut.suppressed)


def test_package_glob_never_matches_a_finding_without_a_package(report: Report) -> None:
    cut = _suppress(busy_report(report), "*", rule="software-without-dep")
    assert cut.suppressed == ()  # its only file is unpackaged


def test_min_severity_cuts_and_says_so(report: Report) -> None:
    busy = busy_report(report)
    cut = at_least(busy, Severity.MEDIUM)
    assert {f.severity for f in cut.findings} == {Severity.HIGH, Severity.MEDIUM}
    assert len(cut.findings) == 13
    assert cut.run.notes[-1] == (
        "--min-severity Medium: 4 finding(s) below Medium left out of this report"
    )
    assert at_least(busy, None) is busy
    assert len(at_least(busy, Severity.INFORMATIONAL).findings) == len(busy.findings)


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s polling window that saw an idle loopback listener (an Informational finding)."""
    tmp = tmp_path_factory.mktemp("noise")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    path = tmp / "window.trace"
    try:
        result = run_rba(
            "assess", "--duration", "2s", "--probes", "poll", "--poll-interval", "0.2s",
            "--format", "json", "--output", str(tmp / "live.json"), "--record", str(path),
        )  # fmt: skip
    finally:
        listener.close()
    assert result.returncode == 0, result.stderr
    return path


def test_replay_min_severity(trace: Path) -> None:
    full = json.loads(run_rba("replay", str(trace), "--format", "json", check=True).stdout)
    assert any(f["severity"] == "Informational" for f in full["findings"])
    result = run_rba("replay", str(trace), "--format", "json", "--min-severity", "low")
    assert result.returncode == 0, result.stderr
    cut = json.loads(result.stdout)
    assert all(f["severity"] != "Informational" for f in cut["findings"])
    dropped = len(full["findings"]) - len(cut["findings"])
    assert dropped > 0
    assert cut["run"]["notes"][-1].startswith(f"--min-severity Low: {dropped} finding(s)")
    assert cut["summary"]["total"] == len(cut["findings"])
    bad = run_rba("replay", str(trace), "--min-severity", "urgent")
    assert bad.returncode == 2 and "unknown severity 'urgent'" in bad.stderr


def test_colour_on_a_terminal_unless_no_color(trace: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    argv = [*RBA, "replay", str(trace)]
    painted = _on_a_terminal(argv, env)
    assert b"\x1b[2mINFORMATIONAL (" in painted and b"WHAT TO DO FIRST" in painted
    plain = _on_a_terminal(argv, {**env, "NO_COLOR": "1"})
    assert not SGR.search(plain) and b"WHAT TO DO FIRST" in plain
    piped = run_rba("replay", str(trace), env=env)  # not a terminal: no colour either
    assert "\x1b[" not in piped.stdout
