"""The daemon and a full disk (issue 12 items 3 and 13): a real tmpfs of 2 MiB as the
store, filled for real. The daemon stays up, a run that cannot store its findings fails
with the reason, findings win over the trace, and the daemon starts on a full disk and
says so in ``status``."""

from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.daemon_proc import DaemonProcess

pytestmark = [pytest.mark.ebpf, pytest.mark.root]

TEMPLATES = """
[[template]]
name = "traced"
duration = "8s"
trace = true

[[template]]
name = "plain"
duration = "2s"
"""


@pytest.fixture
def small_store(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/state`` as a 2 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(state)],
                   check=True)  # fmt: skip
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def fill(directory: Path, *, leave: int = 0) -> Path:
    """Write a filler file into ``directory`` until at most ``leave`` bytes are free."""
    filler = directory / f"filler-{secrets.token_hex(3)}"
    with open(filler, "wb", buffering=0) as f:
        while True:
            st = os.statvfs(directory)
            room = st.f_bavail * st.f_frsize - leave
            if room <= 0:
                break
            try:
                f.write(b"\0" * min(room, 1 << 16))
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break
    return filler


def churn(seconds: float, daemon: DaemonProcess) -> None:
    """Processes with long random command lines (events and strings for the trace) until
    the trace hits the full disk, or ``seconds`` passed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and "without its trace" not in daemon.log():
        pid = os.posix_spawn("/bin/true", ["true", secrets.token_hex(2048)], os.environ)
        os.waitpid(pid, 0)


@pytest.fixture
def daemon(tmp_path: Path, small_store: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path, TEMPLATES)
    assert proc.state_dir == small_store
    try:
        yield proc
    finally:
        proc.close()


def test_a_trace_that_fills_the_store_yields_to_the_findings(daemon: DaemonProcess) -> None:
    daemon.start()
    fill(daemon.state_dir, leave=512 * 1024)
    run_id = daemon.request("run", template="traced")
    churn(7.0, daemon)
    entry = daemon.wait_finished(run_id)
    assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()
    assert entry["state"] == "completed", (entry, daemon.log())
    assert "trace:" in entry["reason"] and "No space left" in entry["reason"], (entry, daemon.log())
    report = json.loads((daemon.state_dir / "runs" / run_id / "report.json").read_text())
    assert report["run"]["id"] == run_id and report["run"]["events"] > 0
    assert "the run goes on without its trace" in daemon.log()
    # The trace made room for the findings; the daemon still serves and shows the disk.
    assert not (daemon.state_dir / "runs" / run_id / "trace.rbt").exists()
    assert "removed to make room for the findings" in entry["reason"]
    disk = daemon.status()["daemon"]["disk"]
    assert 0 < disk["free_bytes"] < disk["total_bytes"] == 2 * 1024 * 1024, disk


def test_a_run_that_cannot_store_its_findings_fails_and_the_daemon_stays(
    daemon: DaemonProcess,
) -> None:
    daemon.start()
    run_id = daemon.request("run", template="plain")
    fill(daemon.state_dir)
    entry = daemon.wait_finished(run_id)
    assert entry["state"] == "failed", entry
    assert "No space left" in entry["reason"], entry
    status = daemon.status()
    assert status["daemon"]["disk"]["full"] is True
    assert "No space left" in status["daemon"]["disk"]["last_error"]
    assert daemon.proc is not None and daemon.proc.poll() is None


def test_the_daemon_starts_on_a_full_disk_and_reports_it(daemon: DaemonProcess) -> None:
    daemon.start()
    killed = daemon.request("run", template="traced")
    time.sleep(1.0)
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit(timeout=10)
    fill(daemon.state_dir)
    daemon.start()  # recovery cannot write the interrupted run's new state: it starts anyway
    status = daemon.status()
    disk = status["daemon"]["disk"]
    assert disk["full"] is True and disk["free_bytes"] == 0, disk
    runs = {r["id"]: r for r in status["runs"]}
    assert runs[killed]["state"] == "failed"
    assert "cannot save the state" in daemon.log()
    # It answers and refuses cleanly while full; once room is back, runs work again.
    for filler in daemon.state_dir.glob("filler-*"):
        filler.unlink()
    done = daemon.wait_finished(daemon.request("run", template="plain"))
    assert done["state"] == "completed", done
    disk = daemon.status()["daemon"]["disk"]
    assert disk["last_error"] == "" and disk["free_bytes"] > 0, (disk, daemon.log()[-3000:])
