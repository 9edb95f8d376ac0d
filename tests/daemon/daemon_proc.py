"""A real ``rba daemon`` process for the acceptance tests.

It runs with its own configuration, state directory and control socket in temporary
directories, with the systemd unit's capability bounding set and NoNewPrivileges
(``setpriv --bounding-set ... --no-new-privs``), so every test also proves that the
unit's capabilities suffice.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from behavior.daemon.client import DaemonError, call
from behavior.daemon.protocol import make_request
from tests.conftest import RBA, REPO

# Keep in sync with packaging/rba.service (tests/daemon/test_unit_file.py checks it).
UNIT_CAPS = ("bpf", "perfmon", "sys_resource", "sys_ptrace", "dac_read_search")
START_TIMEOUT_S = 30.0
FINISHED = ("completed", "failed", "canceled")


class DaemonProcess:
    """Start with :meth:`start`; always :meth:`close` (a fixture does)."""

    def __init__(
        self,
        workdir: Path,
        config_text: str,
        *,
        caps: tuple[str, ...] = UNIT_CAPS,
        read_only_system: bool = False,
    ) -> None:
        self.workdir = workdir
        self.caps = caps
        self.read_only_system = read_only_system
        # Every user can traverse the socket's directory (pytest's tmp_path is 0700), so
        # only the socket's own protections stand between another user and the daemon.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="rba-daemon-", dir="/tmp"))
        self.socket_dir.chmod(0o755)
        self.socket = str(self.socket_dir / "control.sock")
        self.state_dir = workdir / "state"
        self.config = workdir / "rba.toml"
        self.log_path = workdir / "daemon.log"
        self.write_config(config_text)
        self.proc: subprocess.Popen[bytes] | None = None
        # Plays systemd's part of the readiness protocol (Type=notify).
        self.notify_socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify_socket.bind(str(self.socket_dir / "notify"))
        self.notify_socket.setblocking(False)
        self.notifications: list[str] = []

    def write_config(self, text: str, *, daemon_settings: str = "") -> None:
        """(Re)write the configuration: ``daemon_settings`` are extra lines of the
        ``[daemon]`` table, whose paths point into the test's directories."""
        header = f'[daemon]\nstate_dir = "{self.state_dir}"\nsocket = "{self.socket}"\n'
        self.config.write_text(header + daemon_settings + "\n" + text)

    def start(self) -> DaemonProcess:
        """Start the daemon and wait until it answers ``status``."""
        bounding = "-all," + ",".join(f"+{c}" for c in self.caps)
        argv = ["setpriv", "--no-new-privs", f"--bounding-set={bounding}", *RBA, "daemon"]
        if self.read_only_system:
            argv = self._read_only_system(argv)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*argv, "--config", str(self.config)],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "NOTIFY_SOCKET": str(self.socket_dir / "notify")},
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log()}")
            try:
                self.status()
                return self
            except DaemonError:
                time.sleep(0.1)
        raise AssertionError(f"daemon did not answer within {START_TIMEOUT_S}s: {self.log()}")

    def _read_only_system(self, argv: list[str]) -> list[str]:
        """``argv`` in a private mount namespace where, as with systemd's
        ``ProtectSystem=strict`` plus ``ReadWritePaths``, every file system is read-only
        but the state and socket directories. The shell refuses to go on if a write
        elsewhere still succeeds, then execs ``argv`` (same pid)."""
        self.state_dir.mkdir(mode=0o700, exist_ok=True)
        script = (
            'for d in "$1" "$2"; do mount --bind "$d" "$d"; done\n'
            "mount -o remount,bind,ro /\n"
            'if touch "$3" 2>/dev/null; then echo "root is writable" >&2; exit 3; fi\n'
            "shift 3\n"
            'exec "$@"\n'
        )
        probe = str(self.workdir / "must-not-be-writable")
        return [
            *("unshare", "--mount", "--propagation", "private", "sh", "-ec", script, "sh"),
            *(str(self.state_dir), str(self.socket_dir), probe, *argv),
        ]

    @property
    def pid(self) -> int:
        """The daemon's pid."""
        assert self.proc is not None
        return self.proc.pid

    def request(self, op: str, **fields: str) -> Any:
        """Send one request over the socket; DaemonError when refused."""
        return call(self.socket, make_request(op, **fields), timeout=60)

    def status(self) -> dict[str, Any]:
        """The ``status`` result."""
        result: dict[str, Any] = self.request("status")
        return result

    def run_of(self, run_id: str) -> dict[str, Any]:
        """The status entry of ``run_id``."""
        runs = {r["id"]: r for r in self.status()["runs"]}
        assert run_id in runs, f"{run_id} not in {sorted(runs)}"
        return runs[run_id]

    def wait_finished(self, run_id: str, timeout: float = 90.0) -> dict[str, Any]:
        """Wait until ``run_id`` is completed, failed or canceled; return its entry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.run_of(run_id)
            if entry["state"] in FINISHED:
                return entry
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} not finished after {timeout}s: {self.log()}")

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the daemon."""
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the daemon to exit; its status."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def fds_to(self, target: str) -> int:
        """How many of the daemon's fds point to ``target`` (``anon_inode:bpf-prog`` for
        loaded BPF programs, ``anon_inode:[perf_event]`` for attached tracepoints)."""
        count = 0
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                if os.readlink(f"/proc/{self.pid}/fd/{fd}") == target:
                    count += 1
            except OSError:
                continue
        return count

    def notified(self) -> list[str]:
        """Every sd_notify message the daemon sent so far, in order."""
        while True:
            try:
                self.notifications.append(self.notify_socket.recv(4096).decode())
            except BlockingIOError:
                return self.notifications

    def log(self) -> str:
        """Everything the daemon logged so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        """Kill the daemon if it still runs; remove the socket directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.notify_socket.close()
        shutil.rmtree(self.socket_dir, ignore_errors=True)
