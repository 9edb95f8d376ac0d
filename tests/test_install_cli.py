"""The command-line conventions an installed tool owes its users: ``--version``, ``-q``,
``-o`` for ``--output``, ``--format`` in any case, durations with a unit, ``NO_COLOR``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pty
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import behavior
from behavior.commands.cli import build_parser
from tests.conftest import RBA, REPO, run_rba


def test_version_is_the_package_version() -> None:
    result = run_rba("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"rba {behavior.__version__}\n"


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command parser under ``parser``, with its command words."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for inner, deeper in _subparsers(sub):
                    yield f"{name} {inner}", deeper


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions for o in a.option_strings}


PARSERS = dict(_subparsers(build_parser()))


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_command_has_the_conventions(command: str) -> None:
    """-q/--quiet on every command, -o for every --output, --format in any case."""
    options = _options(PARSERS[command])
    if " " not in command:  # subcommands' own actions (trace info) inherit from their command
        assert "-q" in options and options["-q"] is options["--quiet"], command
    if "--output" in options:
        assert options["-o"] is options["--output"], command
    if "--format" in options:
        fmt = options["--format"]
        first = (fmt.choices and next(iter(fmt.choices))) or "json"
        assert callable(fmt.type) and fmt.type(first.upper()) == first, command


def test_format_is_case_insensitive_and_o_writes_the_output(tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    result = run_rba("scan", "--no-cache", "--format", "JSON", "-o", str(out), "/bin/true")
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())[0]["path"] == "/bin/true"
    rules = run_rba("rules", "--format", "Json")
    assert rules.returncode == 0, rules.stderr
    assert json.loads(rules.stdout)


@pytest.mark.parametrize("command", ["events", "assess", "capture"])
def test_a_duration_without_a_unit_is_refused(command: str, tmp_path: Path) -> None:
    extra = ["--output", str(tmp_path / "t.rbt")] if command == "capture" else []
    result = run_rba(command, "--duration", "15", *extra)
    assert result.returncode == 2
    assert result.stderr == f"rba {command}: duration '15' has no unit: write 15s, 15m or 15h\n"
    assert not list(tmp_path.iterdir())


def test_quiet_prints_no_notice() -> None:
    loud = run_rba("events", "--duration", "1s", "--probes", "poll")
    quiet = run_rba("events", "-q", "--duration", "1s", "--probes", "poll")
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert loud.stderr.startswith("rba: polling only (--probes poll)")  # what -q silences
    assert quiet.stderr == ""
    assert "-- sources: poll" in quiet.stdout


def _on_a_terminal(argv: list[str], env: dict[str, str]) -> bytes:
    """What ``argv`` writes to a pseudo-terminal as its stdout."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdout and stderr are the terminal
        os.chdir(REPO)
        os.execve(argv[0], argv, env)
    chunks = []
    with contextlib.suppress(OSError):  # EIO once the child has exited
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    os.close(fd)
    os.waitpid(pid, 0)
    return b"".join(chunks)


def test_no_color_is_honoured_on_a_terminal() -> None:
    argv = [*RBA, "scan", "--no-cache", "/bin/true"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "xterm", "HOME": "/tmp"}
    painted = _on_a_terminal(argv, env)
    plain = _on_a_terminal(argv, {**env, "NO_COLOR": "1"})
    color = re.compile(rb"\x1b\[[0-9;]*m")  # SGR: colours (the progress line uses \x1b[K)
    assert color.search(painted)  # colours on a terminal, so the check below can fail
    assert b"/bin/true" in plain and not color.search(plain)


def test_every_report_states_the_version(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = run_rba("assess", "-q", "--duration", "2s", "--probes", "poll", "-o", str(out))
    assert result.returncode in (0, 1), result.stderr
    assert result.stderr == ""  # -q
    text = out.read_text()
    assert text.startswith("rba assessment of ")
    # the text report's first line; JSON, ASFF, OCSF and HTML: tests/formats/golden
    assert f"(rba {behavior.__version__})" in text.splitlines()[0]
