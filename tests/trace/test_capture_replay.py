"""Capture and replay end to end: real probes, real servers and clients, real binaries.

One lab window is observed three ways at once: ``rba assess --record`` (live findings
plus a trace), and ``rba capture`` in a separate process. The recorded trace replays,
as ``nobody`` with bcc and psutil unimportable, to the live JSON byte for byte apart from
``run.replayed``. The gcc-built binaries are deleted before replaying, and their
verdicts still come out of the trace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RBA, REPO, run_rba
from tests.support.assess import EVAL_TIMEOUT_S, READY_LINE, READY_TIMEOUT_S, AssessRun
from tests.support.other_user import NOBODY, OtherUserPython
from tests.support.scenarios import IDLE_PORT, USED_PORT, drive, lab
from tests.support.timing import bounded, cpu_time_of

WINDOW_S = 10.0
CAPTURE_LIMIT_S = 600.0  # a capture meant to be ended by SIGINT, never by its duration

# Runs the CLI with bcc and psutil made unimportable: replay must not need them.
_NO_LIVE_MODULES = """
import sys
class _Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('bcc', 'psutil'):
            raise ImportError(f'{name} imported on the replay path')
        return None
sys.meta_path.insert(0, _Refuse())
from behavior.commands.cli import main
sys.exit(main(sys.argv[1:]))
"""


class Capture:
    """``rba capture`` in the background; entering returns once its window is open."""

    def __init__(self, trace: Path, duration: float, *extra: str) -> None:
        self.argv = [*RBA, "capture", "--duration", f"{duration:g}s", "--output", str(trace)]
        self.argv += list(extra)
        self.duration = duration
        self.lines: list[str] = []
        self._open = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Capture:
        self.proc = subprocess.Popen(
            self.argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader.start()
        if not self._open.wait(READY_TIMEOUT_S):
            self.proc.kill()
            raise AssertionError(f"capture never opened its window: {self.lines}")
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        assert self.proc is not None
        if exc_type is not None:
            self.proc.kill()
        self.proc.wait(timeout=self.duration + 120)

    def interrupt(self) -> None:
        """End the window now, as Ctrl-C does, and wait until the trace is closed: the
        window then ends exactly when the caller says, whatever the startup took."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=EVAL_TIMEOUT_S)
        self._reader.join(timeout=10)
        assert self.proc.returncode == 0, self.lines
        assert any("ended early, partial" in line for line in self.lines), self.lines

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if READY_LINE.match(line.strip()):
                self._open.set()


def replay_as_nobody(
    other_user: OtherUserPython, trace: Path, workdir: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``rba replay`` as uid/gid 65534 without supplementary groups, on a copy of the
    trace that ``nobody`` owns (as a user receiving the file would); returns the result
    and the path of ``--output`` (in a directory nobody owns)."""
    workdir.chmod(0o755)
    shared = Path(tempfile.mkdtemp(prefix="rba-replay-", dir=workdir))
    shared.chmod(0o755)
    copy = shared / trace.name
    shutil.copy(trace, copy)
    for path in (shared, copy):
        os.chown(path, NOBODY, NOBODY)
    output = shared / "report.out"
    argv = other_user.argv("-c", _NO_LIVE_MODULES, "replay", str(copy), *args)
    argv += ["--output", str(output)]
    env = other_user.env({"HOME": str(shared)})
    result = subprocess.run(
        argv, capture_output=True, text=True, cwd=shared, env=env, timeout=300, check=False
    )
    return result, output


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rba-trace-e2e-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _subject(finding: dict[str, Any]) -> tuple[Any, ...]:
    """What a finding is about (docs/rules.md, 'Subject of a finding'), without times."""
    ev = finding["evidence"]
    remote = ev.get("remote") or {}
    return (
        finding["rule_id"],
        ev.get("path"),
        ev.get("port"),
        remote.get("address"),
        remote.get("port"),
        ev.get("module"),
        ev.get("exe"),
        finding["count"],
    )


def _about_the_lab(finding: dict[str, Any], lab_marks: list[str]) -> bool:
    text = json.dumps(finding["evidence"])
    return any(mark in text for mark in lab_marks)


@pytest.mark.ebpf
@pytest.mark.netns
def test_replay_as_nobody_reproduces_the_live_window(
    workdir: Path, other_user: OtherUserPython
) -> None:
    recorded = workdir / "assess.rbt"
    captured = workdir / "capture.rbt"
    with lab(workdir) as the_lab:
        # The capture's window opens before the assessment's (whose startup may take
        # seconds under load) and is ended only after the assessment's has: it covers
        # the whole assessed window, and the lab does nothing outside that.
        with Capture(captured, CAPTURE_LIMIT_S, "--probes", "ebpf") as capture:
            with AssessRun(
                workdir, duration=WINDOW_S, probes="ebpf", extra=("--record", str(recorded))
            ) as run:
                drive(the_lab)
            capture.interrupt()
        live_bytes = run.output.read_bytes()
        programs = the_lab.files.programs
        marks = [the_lab.ns.peer_ip, str(the_lab.files.world_writable_dir.parent)]
        marks += [f'"port": {IDLE_PORT}', f'"port": {USED_PORT}']
        # The trace is self-contained: the binaries can go.
        for program in (programs.execstack, programs.hardened):
            program.unlink()

        result, output = replay_as_nobody(other_user, recorded, workdir, "--format", "json")
        assert result.returncode == 0, result.stderr
        replayed_bytes = output.read_bytes()
        assert stat_mode(output) == 0o600

        # Byte-identical apart from the replayed marker.
        assert live_bytes.count(b'"replayed": false') == 1
        assert replayed_bytes == live_bytes.replace(b'"replayed": false', b'"replayed": true')

        replayed = json.loads(replayed_bytes)
        dep = [
            f
            for f in replayed["findings"]
            if f["rule_id"] == "software-without-dep"
            and f["evidence"].get("path") == str(programs.execstack)
        ]
        assert dep, "the deleted execstack binary's DEP verdict is missing"
        assert not programs.execstack.exists()
        cookies = {
            f["evidence"].get("path")
            for f in replayed["findings"]
            if f["rule_id"] == "software-without-stack-cookies"
        }
        assert str(programs.execstack) in cookies and str(programs.hardened) not in cookies
        clients = {
            (f["rule_id"], f["evidence"]["remote"]["port"])
            for f in replayed["findings"]
            if f["rule_id"].startswith("insecure-client")
            and f["evidence"]["remote"]["address"] == the_lab.ns.peer_ip
        }
        assert {("insecure-client-login", 23), ("insecure-client-login", 21)} <= clients
        assert ("insecure-client-general", 80) in clients

        # The separate capture of the same window gives the same findings about the lab.
        result, output = replay_as_nobody(other_user, captured, workdir, "--format", "json")
        assert result.returncode == 0, result.stderr
        from_capture = json.loads(output.read_bytes())
    live = json.loads(live_bytes)
    assert from_capture["run"]["replayed"] is True
    assert from_capture["run"]["sources"] == live["run"]["sources"]
    want = sorted(_subject(f) for f in live["findings"] if _about_the_lab(f, marks))
    got = sorted(_subject(f) for f in from_capture["findings"] if _about_the_lab(f, marks))
    assert len(want) >= 5
    assert got == want

    info = run_rba("trace", "info", str(captured), "--format", "json", check=True)
    described = json.loads(info.stdout)
    assert described["intact"] is True
    assert described["header"]["purpose"] == "capture"
    assert described["sources"] == ["ebpf", "poll"]
    assert described["events_by_kind"]["tcp_connect"] >= 4
    assert described["events_by_kind"]["exec"] >= 4
    assert set(described["losses"]) == {"ebpf", "poll"}
    assert described["facts"]["file"] > 0 and described["facts"]["process"] > 0


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _background_activity(stop: threading.Event) -> None:
    """Short processes and loopback connections every 100 ms, all window long."""
    while not stop.is_set():
        subprocess.run(["true"], check=False)
        subprocess.run(
            ["curl", "-s", "-m", "0.2", "http://127.0.0.1:9/"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        stop.wait(0.1)


@pytest.mark.ebpf
def test_sigkilled_capture_replays_what_was_flushed_and_says_so(
    workdir: Path, other_user: OtherUserPython
) -> None:
    trace = workdir / "killed.rbt"
    stop = threading.Event()
    activity = threading.Thread(target=_background_activity, args=(stop,), daemon=True)
    try:
        with Capture(trace, 30, "--probes", "ebpf") as capture:
            activity.start()
            time.sleep(5)
            assert capture.proc is not None
            capture.proc.send_signal(signal.SIGKILL)
    finally:
        stop.set()
        activity.join()
    assert capture.proc.returncode == -signal.SIGKILL

    info = json.loads(run_rba("trace", "info", str(trace), "--format", "json", check=True).stdout)
    assert info["intact"] is False
    window = info["window"]
    assert window["ended_at_ns"] is None
    assert window["last_event_ns"] - window["started_at_ns"] >= 4e9
    # Loss counters were recorded while the window ran.
    assert set(info["losses"]) == {"ebpf", "poll"}
    assert info["losses"]["ebpf"]["events"] > 50
    text = run_rba("trace", "info", str(trace), check=True).stdout
    assert "no end marker" in text and "NOT intact" in text

    result, output = replay_as_nobody(other_user, trace, workdir, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "trace ended early" in result.stderr
    report = json.loads(output.read_bytes())
    run = report["run"]
    assert run["partial"] is True and run["replayed"] is True
    assert any("trace ended early" in note for note in run["notes"])
    assert not any("loss counters unknown" in note for note in run["notes"])
    recovered = [n for n in run["notes"] if re.match(r"recovered \d+s of the 30s window", n)]
    assert recovered, run["notes"]
    assert int(recovered[0].split()[1].rstrip("s")) >= 4
    assert run["duration_s"] >= 4.0
    assert run["events"] > 50  # 10 short processes and connections a second, at least


@pytest.fixture(scope="module")
def small_trace() -> Iterator[Path]:
    """A real 2-second capture (polling, so it needs no eBPF), kept small."""
    directory = Path(tempfile.mkdtemp(prefix="rba-trace-small-"))
    trace = directory / "small.rbt"
    run_rba("capture", "--duration", "2s", "--probes", "poll", "--output", str(trace), check=True)
    yield trace
    shutil.rmtree(directory, ignore_errors=True)


def test_replay_of_a_cut_real_trace_reports_what_it_recovered(
    small_trace: Path, tmp_path: Path
) -> None:
    from behavior.interface import NullObserver
    from behavior.recording.header import RecordingError
    from behavior.recording.loading import load_recording
    from behavior.recording.replay import replay

    data = small_trace.read_bytes()
    # A cut trace holds less than the whole one: reading it must not cost much more.
    whole, whole_cpu_s = cpu_time_of(
        lambda: replay(load_recording(str(small_trace)), NullObserver())
    )
    assert not whole.run.partial and not any("trace" in n for n in whole.run.notes)
    cut = tmp_path / "cut.rbt"
    partial = errors = 0
    for size in range(0, len(data), max(1, len(data) // 300)):
        cut.write_bytes(data[:size])
        with bounded(whole_cpu_s):
            try:
                report = replay(load_recording(str(cut)), NullObserver())
            except RecordingError as e:
                assert "\n" not in str(e)
                errors += 1
            else:
                partial += 1
                assert report.run.partial and report.run.replayed
                assert any("trace ended early" in n for n in report.run.notes)
                assert report.run.events <= whole.run.events
    assert partial and errors


def test_replay_cli_refuses_newer_major_version_and_garbage(
    small_trace: Path, tmp_path: Path
) -> None:
    newer = tmp_path / "newer.rbt"
    data = bytearray(small_trace.read_bytes())
    data[8:12] = (7).to_bytes(2, "little") + (0).to_bytes(2, "little")
    newer.write_bytes(bytes(data))
    result = run_rba("replay", str(newer))
    assert result.returncode == 2
    assert "format 7.0, newer than this rba reads (1.x)" in result.stderr
    assert result.stderr.count("\n") == 1
    garbage = tmp_path / "garbage.rbt"
    garbage.write_bytes(b"hello world\n")
    result = run_rba("trace", "info", str(garbage))
    assert result.returncode == 2 and "not an rba trace" in result.stderr


def test_redacted_capture_keeps_no_arguments_and_no_environment(tmp_path: Path) -> None:
    trace = tmp_path / "redacted.rbt"
    # sleep sums its arguments, so a unique number keeps it running for the poller to see
    # (a non-numeric secret makes sleep exit at once as an invalid interval).
    secret = "0." + str(int.from_bytes(os.urandom(6), "big")).zfill(15)
    in_environment = "envsecret-" + os.urandom(4).hex()

    options = ("--probes", "poll", "--poll-interval", "0.2s", "--redact-cmdline")
    with Capture(trace, CAPTURE_LIMIT_S, *options) as capture:
        # The window is open: a 1.5 s sleep lives across several 0.2 s polls in it.
        env = {**os.environ, "RBA_TEST_TOKEN": in_environment}
        subprocess.run(["sleep", "1.5", secret], check=True, env=env)
        capture.interrupt()
    from probes.trace import open_trace

    index = open_trace(str(trace))
    for hidden in (secret, in_environment, "RBA_TEST_TOKEN"):
        assert not any(hidden in s for s in index.strings)
        assert hidden not in json.dumps(index.records)
    assert any(s.startswith("sleep #") for s in index.strings), "the sleep was not seen"
    assert index.start["options"]["redact_cmdline"] is True


def test_replay_of_a_real_trace_with_flipped_bytes_is_partial_or_an_error(
    small_trace: Path, tmp_path: Path
) -> None:
    import numpy as np

    from behavior.interface import NullObserver
    from behavior.recording.header import RecordingError
    from behavior.recording.loading import load_recording
    from behavior.recording.replay import replay

    data = small_trace.read_bytes()
    # A damaged trace is read no further than the damage: never much dearer than whole.
    _, whole_cpu_s = cpu_time_of(lambda: replay(load_recording(str(small_trace)), NullObserver()))
    rng = np.random.default_rng(99)
    bad = tmp_path / "bad.rbt"
    outcomes = {"error": 0, "partial": 0}
    for _ in range(150):
        mutated = bytearray(data)
        pos = int(rng.integers(16, len(data)))  # past the reserved header bytes
        mutated[pos] ^= int(rng.integers(1, 256))
        bad.write_bytes(bytes(mutated))
        with bounded(whole_cpu_s):
            try:
                report = replay(load_recording(str(bad)), NullObserver())
            except RecordingError as e:
                assert "\n" not in str(e)
                outcomes["error"] += 1
            else:
                assert any("trace damaged" in n for n in report.run.notes)
                outcomes["partial"] += 1
    assert outcomes["partial"] > 0
