"""Run the real ``rba assess`` (or ``rba capture``) around a scenario; read the report.

Usage::

    with AssessRun(workdir, duration=8, probes="ebpf") as run:
        ...drive clients and servers...     # between start-of-window and its end
    report = run.report                     # parsed JSON (docs/design.md's contract)
    report.select("insecure-client-login", pid=client.pid)

Readiness: the scenario must start only once the window is open and the probes are
attached, or short events would be missed. ``rba assess`` and ``rba capture`` announce
that with a notice line on stderr matching :data:`READY_LINE` (printed whether or not
stderr is a TTY), after the probes are attached and the start snapshot is taken.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import RBA, REPO

READY_LINE = re.compile(r"^rba: window (open|started)\b", re.IGNORECASE)
READY_TIMEOUT_S = 60.0  # bcc compiles its C at load: seconds on a busy 2-core machine
EVAL_TIMEOUT_S = 90.0  # from the end of the window to the report on disk

Finding = dict[str, Any]


class AssessError(Exception):
    """``rba assess`` failed, or the scenario did not fit its window."""


def evidence_value(finding: Finding, key: str) -> Any:
    """The evidence value at ``key``; a dotted key walks nested objects
    (``"process.pid"``). Missing keys give None."""
    value: Any = finding.get("evidence", {})
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def names_any(finding: Finding, pids: set[int], path: str) -> bool:
    """Whether the finding's evidence names one of ``pids`` (under any ``pid``, ``pids``
    or ``server_pid`` key, at any depth) or the file ``path`` (as any value)."""

    def walk(value: Any, key: str = "") -> bool:
        if isinstance(value, dict):
            return any(walk(v, k) for k, v in value.items())
        if isinstance(value, list):
            return any(walk(v, key) for v in value)
        if key in ("pid", "pids", "server_pid"):
            return value in pids
        return bool(value == path)

    return walk(finding.get("evidence", {}))


@dataclass(frozen=True)
class Report:
    """A parsed ``rba assess --format json`` report."""

    data: dict[str, Any]

    @property
    def run(self) -> dict[str, Any]:
        """The run-level facts (``id``, ``sources``, ``events``, ``rules``...)."""
        run: dict[str, Any] = self.data["run"]
        return run

    @property
    def findings(self) -> list[Finding]:
        """Every finding, as JSON objects."""
        findings: list[Finding] = self.data["findings"]
        return findings

    def select(self, rule_id: str | None = None, **evidence: Any) -> list[Finding]:
        """Findings of ``rule_id`` (any rule if None) whose evidence has every given
        key/value; use ``__`` for nesting (``process__pid=42`` is ``process.pid``)."""
        return [
            f
            for f in self.findings
            if (rule_id is None or f["rule_id"] == rule_id)
            and all(evidence_value(f, k.replace("__", ".")) == v for k, v in evidence.items())
        ]

    def summary(self) -> str:
        """One line per finding, for assertion messages."""
        return "\n".join(
            f"{f['rule_id']} [{f['severity']}] {json.dumps(f.get('evidence'), sort_keys=True)}"
            for f in self.findings
        )


_Run = TypeVar("_Run", bound="WindowRun")  # typing.Self needs Python 3.11


class WindowRun:
    """A windowed ``rba`` command (``assess``, ``capture``) running in the background.

    Entering starts it and returns once its window is open; leaving waits for it to end
    (or kills it if the block raised) and checks that the block fit in the window."""

    def __init__(self, argv: list[str], *, duration: float, probes: str) -> None:
        self.argv = argv
        self.duration = duration
        self.probes = probes
        self.proc: subprocess.Popen[str] | None = None
        self.stderr_lines: list[str] = []
        self._ready_line = threading.Event()
        self.window_opened = 0.0  # monotonic time the window was seen open

    @property
    def pid(self) -> int:
        """The pid of the ``rba`` process."""
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self: _Run) -> _Run:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one reader thread; reports go to --output
            text=True,
        )
        threading.Thread(target=self._read_stderr, daemon=True).start()
        try:
            self._wait_ready()
        except BaseException:
            self._kill()
            raise
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self._kill()
            return
        overrun = time.monotonic() - (self.window_opened + self.duration)
        self._finish()
        if overrun > -0.5:
            raise AssessError(
                f"the scenario ended {overrun + 0.5:.1f}s too late for the {self.duration:g}s "
                "window: lengthen the window or shorten the scenario"
            )
        self.finished()

    def finished(self) -> None:
        """Hook run after a successful end (subclasses read their output here)."""

    def stderr(self) -> str:
        """Everything the command wrote on stderr (and stdout) so far."""
        return "".join(self.stderr_lines)

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stderr_lines.append(line)
            if READY_LINE.match(line.strip()):
                self._ready_line.set()

    def _wait_ready(self) -> None:
        assert self.proc is not None
        started = time.monotonic()
        # The window is open once rba says so: its "window open" line comes after the
        # probes are attached and the start snapshot is taken, never before.
        while (now := time.monotonic()) - started < READY_TIMEOUT_S:
            if self.proc.poll() is not None:
                raise AssessError(
                    f"rba assess exited early ({self.proc.returncode}): {self._describe()}"
                )
            if self._ready_line.is_set():
                self.window_opened = now
                return
            time.sleep(0.02)
        raise AssessError(f"no open window after {READY_TIMEOUT_S:g}s: {self._describe()}")

    def _finish(self) -> None:
        assert self.proc is not None
        try:
            self.proc.wait(timeout=self.duration + EVAL_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            self._kill()
            raise AssessError(f"rba did not end: {self._describe()}") from e
        if self.proc.returncode not in (0, 1):  # 1: findings at/above --fail-on
            raise AssessError(f"rba exited {self.proc.returncode}: {self._describe()}")

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def _describe(self) -> str:
        return f"argv={' '.join(self.argv)!r} stderr={self.stderr()[-2000:]!r}"


class AssessRun(WindowRun):
    """``rba assess --duration Ns --format json --output FILE --probes P`` around a block;
    :attr:`report` holds the parsed report afterwards."""

    def __init__(
        self, workdir: Path, *, duration: float, probes: str = "auto", extra: tuple[str, ...] = ()
    ) -> None:
        self.output = workdir / f"assess-{probes}-{time.monotonic_ns()}.json"
        argv = [*RBA, "assess", "--duration", f"{duration:g}s", "--format", "json"]
        argv += ["--output", str(self.output), "--probes", probes, *extra]
        super().__init__(argv, duration=duration, probes=probes)
        self._report: Report | None = None

    @property
    def report(self) -> Report:
        """The parsed report (available after the ``with`` block)."""
        if self._report is None:
            raise AssessError("no report: the assessment has not finished")
        return self._report

    def finished(self) -> None:
        try:
            self._report = Report(json.loads(self.output.read_text()))
        except (OSError, ValueError) as e:
            raise AssessError(f"unreadable report {self.output}: {e}; {self._describe()}") from e
