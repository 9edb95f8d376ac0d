"""Acceptance of ``rba daemon`` (issue 6): a real daemon process, its real control socket,
real signals and real kernel probes (started with the systemd unit's capabilities)."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from behavior.daemon.client import DaemonError
from behavior.daemon.engine import FORMATS
from behavior.daemon.protocol import MAX_REQUEST_BYTES
from behavior.daemon.store import report_file
from tests.conftest import run_rba
from tests.daemon.daemon_proc import UNIT_CAPS, DaemonProcess
from tests.support.other_user import OtherUserPython

pytestmark = [pytest.mark.ebpf, pytest.mark.root]

RULE = "unused-listening-port"
BPF_PROG = "anon_inode:bpf-prog"
PERF_EVENT = "anon_inode:[perf_event]"
TEMPLATES = """
[[template]]
name = "short"
duration = "3s"

[[template]]
name = "long"
duration = "60s"

[[template]]
name = "traced"
duration = "3s"
trace = true

[[template]]
name = "long-traced"
duration = "60s"
trace = true
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path, TEMPLATES)
    try:
        yield proc.start()
    finally:
        proc.close()


def report_of(daemon: DaemonProcess, run_id: str) -> dict[str, object]:
    path = daemon.state_dir / "runs" / run_id / "report.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data: dict[str, object] = json.loads(path.read_text())
    return data


def listener(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1)
    return sock


def test_run_wait_store_findings_copies_and_suppressions(tmp_path: Path) -> None:
    copies = tmp_path / "findings"
    accepted, other = listener(), listener()  # idle all window: unused-listening-port
    port, other_port = accepted.getsockname()[1], other.getsockname()[1]
    config = f'[findings]\ndirectory = "{copies}"\n' + TEMPLATES
    config += f'\n[[suppression]]\nrule = "unused-listening-port"\nport = {port}\n'
    config += 'reason = "the test accepts this one"\n'
    proc = DaemonProcess(tmp_path, config)
    try:
        proc.start()
        st = os.stat(proc.socket)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_uid == 0
        result = run_rba("run", "short", "--wait", "--format", "json", "--socket", proc.socket)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        run_id = report["run"]["id"]
        entry = proc.run_of(run_id)
        assert entry["state"] == "completed" and entry["events"] == report["run"]["events"] > 0
        run_dir = proc.state_dir / "runs" / run_id
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        stored = {"state.json", *(report_file(fmt) for fmt in FORMATS)}
        assert set(os.listdir(run_dir)) == stored
        for name in os.listdir(run_dir):
            assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name
        copy = copies / f"{run_id}.json"
        assert json.loads(copy.read_text()) == report
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        status = run_rba("status", "--socket", proc.socket)
        assert status.returncode == 0 and f"{run_id}  completed" in status.stdout
        assert "probes: idle (last: ebpf+poll)" in status.stdout
        # The configured suppression moved its finding aside, with its reason.
        unused = [f["evidence"]["port"] for f in report["findings"] if f["rule_id"] == RULE]
        assert other_port in unused and port not in unused
        (moved,) = [s for s in report["suppressed"] if s["evidence"].get("port") == port]
        assert moved["rule_id"] == RULE
        assert moved["suppression"]["reason"] == "the test accepts this one"
    finally:
        proc.close()
        accepted.close()
        other.close()


def test_readiness_is_notified_once_the_socket_answers(daemon: DaemonProcess) -> None:
    deadline = time.monotonic() + 5  # sent right after the socket starts answering
    while not daemon.notified() and time.monotonic() < deadline:
        time.sleep(0.05)
    (ready,) = daemon.notified()
    assert ready.startswith(f"READY=1\nMAINPID={daemon.pid}\nSTATUS=serving {daemon.socket}")


def test_non_root_user_cannot_connect(daemon: DaemonProcess, other_user: OtherUserPython) -> None:
    client = other_user.argv("-m", "behavior.commands.cli", "run", "short")
    result = subprocess.run(
        [*client, "--socket", daemon.socket],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env=other_user.env(),
        check=False,
    )
    assert result.returncode == 2
    assert "permission denied" in result.stderr and "root only" in result.stderr
    assert daemon.status()["runs"] == []  # nothing was started


def test_garbage_oversized_and_half_closed_requests(daemon: DaemonProcess) -> None:
    def exchange(data: bytes, *, half_close: bool) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(20)
            sock.connect(daemon.socket)
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            return b"".join(iter(lambda: sock.recv(65536), b""))

    cases = [
        (b"\x00\x01garbage\xff\n", True, b"bad request: request is not UTF-8"),
        (b'{"op": "run", "template": "short", "extra": 1}\n', True, b"unexpected field"),
        (b"{" * (MAX_REQUEST_BYTES * 16), False, b"exceeds"),  # never a newline
        (b'{"op": "status"', True, b"ended after 15 bytes without a newline"),
        (b"", True, b"empty request"),
    ]
    for data, half_close, error in cases:
        reply = exchange(data, half_close=half_close)
        assert reply.startswith(b'{"ok": false') and error in reply, (data[:40], reply[:200])
        assert daemon.status()["daemon"]["pid"] == daemon.pid  # still answering
    # A client that connects and hangs up without a word.
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(daemon.socket)
    with pytest.raises(DaemonError, match="no template 'nope'"):
        daemon.request("run", template="nope")
    with pytest.raises(DaemonError, match="no run 'r-none'"):
        daemon.request("stop", run="r-none")
    assert daemon.status()["daemon"]["requests_refused"] >= len(cases)
    assert daemon.proc is not None and daemon.proc.poll() is None


def test_stop_keeps_partial_findings(daemon: DaemonProcess) -> None:
    run_id = daemon.request("run", template="long")
    time.sleep(1.5)
    entry = daemon.run_of(run_id)
    assert entry["state"] == "collecting" and 55 < entry["time_left_s"] <= 60
    result = run_rba("stop", run_id, "--socket", daemon.socket)
    assert result.returncode == 0, result.stderr
    entry = daemon.wait_finished(run_id, timeout=60)
    assert entry["state"] == "canceled" and entry["partial"] and entry["reason"]
    report = report_of(daemon, run_id)
    assert report["run"]["partial"] is True  # type: ignore[index]
    text = run_rba("findings", run_id, "--format", "text", "--socket", daemon.socket)
    assert text.returncode == 0 and "finding" in text.stdout
    again = run_rba("stop", run_id, "--socket", daemon.socket)
    assert again.returncode == 2 and "already canceled" in again.stderr


def test_sigterm_mid_run_writes_partial_report_and_exits_0(daemon: DaemonProcess) -> None:
    run_id = daemon.request("run", template="long")
    time.sleep(2.0)
    sent = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(timeout=10) == 0
    took = time.monotonic() - sent
    assert took < 10, took
    report = report_of(daemon, run_id)
    assert report["run"]["partial"] is True and report["run"]["id"] == run_id  # type: ignore[index]
    state = json.loads((daemon.state_dir / "runs" / run_id / "state.json").read_text())
    assert state["state"] == "canceled" and "SIGTERM" in state["reason"]
    assert not os.path.exists(daemon.socket)  # removed on the way out
    assert daemon.notified()[-1] == "STOPPING=1"


def test_sigkill_then_restart_shows_failed_and_keeps_completed(daemon: DaemonProcess) -> None:
    done = daemon.request("run", template="short")
    assert daemon.wait_finished(done)["state"] == "completed"
    before = report_of(daemon, done)
    killed = daemon.request("run", template="long-traced")
    time.sleep(2.0)
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit(timeout=10)
    daemon.start()  # a stale socket file is left behind: the new daemon replaces it
    runs = {r["id"]: r for r in daemon.status()["runs"]}
    assert runs[done]["state"] == "completed"
    assert runs[killed]["state"] == "failed"
    assert "stopped while the run was collecting" in runs[killed]["reason"]
    assert report_of(daemon, done) == before
    assert json.loads(daemon.request("findings", run=done, format="json")) == before
    with pytest.raises(DaemonError, match=f"run {killed} failed: the daemon stopped"):
        daemon.request("findings", run=killed, format="json")
    assert "was interrupted: now failed" in daemon.log()
    # What the killed run recorded up to the kill is still there, and replays.
    trace = daemon.state_dir / "runs" / killed / "trace.rbt"
    replayed = run_rba("replay", str(trace), "--format", "json")
    assert replayed.returncode == 0, replayed.stderr
    recovered = json.loads(replayed.stdout)
    assert recovered["run"]["id"] == killed and recovered["run"]["partial"] is True
    assert recovered["run"]["events"] > 0


def test_sighup_with_broken_config_keeps_the_old_one(daemon: DaemonProcess) -> None:
    daemon.write_config(TEMPLATES + '\n[[template]]\nname = "bad"\nduration = "5 days"\n')
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload refused" not in daemon.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    refused = [line for line in daemon.log().splitlines() if "reload" in line]
    assert len(refused) == 1, refused
    assert "template[4].duration: invalid duration '5 days'" in refused[0]
    names = ["short", "long", "traced", "long-traced"]
    assert [t["name"] for t in daemon.status()["templates"]] == names
    # READY=1 follows the "reload refused" line: give it a moment to arrive.
    deadline = time.monotonic() + 5
    while daemon.notified()[-2:] != ["RELOADING=1", "READY=1"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.notified()[-2:] == ["RELOADING=1", "READY=1"]
    daemon.write_config(TEMPLATES + '\n[[template]]\nname = "added"\nduration = "2s"\n')
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while len(daemon.status()["templates"]) != 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert daemon.wait_finished(daemon.request("run", template="added"))["state"] == "completed"


def test_overlapping_runs_share_one_probe_session(daemon: DaemonProcess) -> None:
    idle = listener()  # listening before both windows: each must see it in its snapshot
    port = idle.getsockname()[1]
    try:
        first = daemon.request("run", template="traced")
        programs, attached = daemon.fds_to(BPF_PROG), daemon.fds_to(PERF_EVENT)
        assert programs > 0 and attached > 0
        time.sleep(1.0)
        second = daemon.request("run", template="traced")
        # A second session would load a second copy of the programs and attach it.
        assert (daemon.fds_to(BPF_PROG), daemon.fds_to(PERF_EVENT)) == (programs, attached)
        for _ in range(5):  # some exec events, so that the rate is not zero on a quiet host
            subprocess.run(["true"], check=True)
        time.sleep(0.5)
        probes = daemon.status()["daemon"]["probes"]
        assert probes["session_active"] and probes["sessions_opened"] == 1
        assert probes["backend"] == "ebpf+poll" and probes["events_per_s"] > 0
        assert probes["lost_since_start"] >= 0 and probes["last_error"] == ""
        for run_id in (first, second):
            assert daemon.wait_finished(run_id)["state"] == "completed"
    finally:
        idle.close()
    assert daemon.status()["daemon"]["probes"]["sessions_opened"] == 1
    # The last run out detaches the probes, in the background (one perf event at a time,
    # tens of milliseconds each), so they are all gone soon after, not at once.
    deadline = time.monotonic() + 60
    while daemon.fds_to(PERF_EVENT) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert daemon.fds_to(PERF_EVENT) == 0
    assert daemon.fds_to(BPF_PROG) == programs  # (loaded programs are kept for reuse)
    for run_id in (first, second):
        report = report_of(daemon, run_id)
        assert report["run"]["id"] == run_id and report["run"]["events"] > 0  # type: ignore[index]
        ports = [
            f["evidence"].get("port")  # type: ignore[index]
            for f in report["findings"]  # type: ignore[attr-defined]
            if f["rule_id"] == "unused-listening-port"
        ]
        assert port in ports, (run_id, ports)
        # The run's trace replays, without privileges, to the very same findings.
        trace = daemon.state_dir / "runs" / run_id / "trace.rbt"
        assert stat.S_IMODE(trace.stat().st_mode) == 0o600
        replayed = run_rba("replay", str(trace), "--format", "json")
        assert replayed.returncode == 0, replayed.stderr
        again = json.loads(replayed.stdout)
        assert again["findings"] == report["findings"]
        assert again["run"] == {**report["run"], "replayed": True}  # type: ignore[dict-item]


def test_scheduled_template_runs_and_retention_bounds_the_store(tmp_path: Path) -> None:
    config = (
        '[retention]\nmax_runs = 2\n\n[[template]]\nname = "tick"\nduration = "1s"\n'
        'schedule = "every 1m"\n\n[[template]]\nname = "short"\nduration = "1s"\n'
    )
    proc = DaemonProcess(tmp_path, config)
    try:
        proc.start()
        deadline = time.monotonic() + 30
        while not proc.status()["runs"] and time.monotonic() < deadline:
            time.sleep(0.2)
        (scheduled,) = proc.status()["runs"]
        assert scheduled["template"] == "tick"
        proc.wait_finished(scheduled["id"])
        (tick,) = proc.status()["templates"][:1]
        assert tick["schedule"] == "every 1m" and tick["next_run"] > scheduled["started_at"]
        second = proc.request("run", template="short")
        proc.wait_finished(second)
        third = proc.request("run", template="short")
        proc.wait_finished(third)
        kept = sorted(os.listdir(proc.state_dir / "runs"))
        assert kept == sorted([second, third]), kept  # the oldest (scheduled) run went
        assert "retention: removed 1 old run(s)" in proc.log()
    finally:
        proc.close()


def test_without_bpf_capabilities_ebpf_is_refused_and_auto_falls_back(tmp_path: Path) -> None:
    no_bpf = tuple(c for c in UNIT_CAPS if c not in ("bpf", "perfmon"))
    proc = DaemonProcess(tmp_path, TEMPLATES, caps=no_bpf)
    proc.write_config(TEMPLATES, daemon_settings='probes = "ebpf"')
    try:
        proc.start()
        with pytest.raises(DaemonError, match="cannot start the run: ") as refused:
            proc.request("run", template="short")
        health = proc.status()["daemon"]["probes"]
        assert health["last_error"] == str(refused.value) and health["sessions_opened"] == 0
        (failed,) = proc.status()["runs"]
        assert failed["state"] == "failed" and failed["reason"] == str(refused.value)
        proc.write_config(TEMPLATES, daemon_settings='probes = "auto"')
        proc.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while proc.status()["daemon"]["probes"]["choice"] != "auto":
            assert time.monotonic() < deadline, proc.log()
            time.sleep(0.1)
        run_id = proc.request("run", template="short")
        assert proc.status()["daemon"]["probes"]["backend"] == "poll"
        assert proc.wait_finished(run_id)["state"] == "completed"
        report = report_of(proc, run_id)
        assert report["run"]["sources"] == ["poll"]  # type: ignore[index]
        notes = " ".join(report["run"]["notes"])  # type: ignore[index]
        assert "eBPF unavailable" in notes and "polling only" in notes, notes
    finally:
        proc.close()


def test_back_to_back_runs_leak_no_threads_or_descriptors(tmp_path: Path) -> None:
    proc = DaemonProcess(tmp_path, '[[template]]\nname = "one"\nduration = "1s"\n')

    def counts() -> tuple[int, int]:
        # Settled counts: a finished run's evaluation thread may take a moment to exit.
        last, deadline = (-1, -1), time.monotonic() + 5
        while time.monotonic() < deadline:
            now = len(os.listdir(f"/proc/{proc.pid}/task")), len(os.listdir(f"/proc/{proc.pid}/fd"))
            if now == last:
                return now
            last = now
            time.sleep(0.3)
        return last

    try:
        proc.start()
        proc.wait_finished(proc.request("run", template="one"))
        after_first = counts()  # bcc loaded, its programs pooled for reuse
        for _ in range(4):
            proc.wait_finished(proc.request("run", template="one"))
        assert counts() == after_first
        assert proc.status()["daemon"]["probes"]["sessions_opened"] == 5
    finally:
        proc.close()


def test_runs_with_a_read_only_system_but_its_two_directories(tmp_path: Path) -> None:
    """What packaging/rba.service's ProtectSystem=strict + ReadWritePaths leave writable
    (the state and socket directories) is all the daemon writes, traces included."""
    proc = DaemonProcess(tmp_path, TEMPLATES, read_only_system=True)
    try:
        proc.start()
        run_id = proc.request("run", template="traced")
        assert proc.wait_finished(run_id)["state"] == "completed"
        assert (
            json.loads(proc.request("findings", run=run_id, format="json"))["run"]["id"] == run_id
        )
        assert (proc.state_dir / "runs" / run_id / "trace.rbt").stat().st_size > 0
        proc.signal(signal.SIGTERM)
        assert proc.wait_exit(timeout=10) == 0
        assert "ERROR" not in proc.log(), proc.log()
        assert not (tmp_path / "must-not-be-writable").exists()
    finally:
        proc.close()


def test_account_region_and_lake_reach_asff_and_the_lake(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="the lake needs the rba[fleet] extra")
    lake = tmp_path / "lake"
    config = (
        f'[findings]\naccount = "123456789012"\nregion = "eu-west-1"\nlake = "{lake}"\n' + TEMPLATES
    )
    idle = listener()  # a finding for the lake and the ASFF rendering
    proc = DaemonProcess(tmp_path, config)
    try:
        proc.start()
        run_id = proc.request("run", template="short")
        assert proc.wait_finished(run_id)["state"] == "completed"
        asff = proc.request("findings", run=run_id, format="asff")
        batches = [json.loads(line) for line in asff.splitlines()]
        findings = [f for batch in batches for f in batch]
        assert findings and {f["AwsAccountId"] for f in findings} == {"123456789012"}
        assert all(":eu-west-1:" in f["ProductArn"] for f in findings)
        parts = [p.relative_to(lake).as_posix() for p in lake.rglob("*.parquet")]
        assert parts and all("region=eu-west-1/accountId=123456789012/" in p for p in parts)
        assert "cannot add it to the lake" not in proc.log()
    finally:
        idle.close()
        proc.close()
