"""insecure-login-accepted names who logged in and from where (issue 15): a real telnet
client in a peer namespace logs in to inetutils telnetd on this host as a throwaway
user, under eBPF and under polling.

The user's password is random, set with chpasswd from stdin and typed on the client's
pty: it is never on a command line. The user is deleted afterwards.
"""

from __future__ import annotations

import os
import pty
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.assess import AssessRun
from tests.support.clients import _read_until
from tests.support.netns import PeerNamespace, peer_namespace
from tests.support.servers import ServerSet

pytestmark = [pytest.mark.netns, pytest.mark.root]

TELNET_PORT = 2424
WINDOW_S = 10


@dataclass(frozen=True)
class User:
    name: str
    password: str


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    """A throwaway local user with a random password (never on a command line)."""
    if shutil.which("useradd") is None or shutil.which("chpasswd") is None:
        pytest.skip("useradd/chpasswd not installed")
    name = f"rbal{os.getpid() % 100000}"
    password = secrets.token_urlsafe(12)
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", "-d", "/tmp", name], check=True, timeout=20)
    try:
        subprocess.run(
            ["chpasswd"], input=f"{name}:{password}\n", text=True, check=True, timeout=20
        )
        yield User(name, password)
    finally:
        subprocess.run(["userdel", "-f", name], check=False, timeout=20)


def _login(ns: PeerNamespace, address: str, user: User, timeout: float = 15.0) -> str:
    """Log in over telnet from the peer namespace, run ``id -un``, log out; the output."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        ns.cmd(["telnet", address, str(TELNET_PORT)]),
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    buf = bytearray()
    try:
        for prompt, answer in ((b"login:", user.name), (b"assword:", user.password)):
            if not _read_until(master, prompt, timeout, buf):
                raise AssertionError(f"no {prompt!r} prompt: {buf.decode(errors='replace')!r}")
            os.write(master, answer.encode() + b"\r")
        time.sleep(1.0)
        os.write(master, b"id -un; sleep 2; exit\r")
        _read_until(master, b"\0never", 5.0, buf)
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return buf.decode(errors="replace")


@pytest.mark.parametrize("probes", ["ebpf", "poll"])
def test_accepted_login_names_user_and_remote_host(probes: str, user: User, tmp_path: Path) -> None:
    from tests.conftest import BPF_MISSING

    if probes == "ebpf" and BPF_MISSING:
        pytest.skip(f"eBPF unavailable: {BPF_MISSING}")
    with peer_namespace() as ns, ServerSet(tmp_path, None) as servers:
        servers.telnetd(ns.host_ip, TELNET_PORT)
        with AssessRun(tmp_path, duration=WINDOW_S, probes=probes) as run:
            output = _login(ns, ns.host_ip, user)
        assert f"\n{user.name}" in output.replace("\r", ""), output
        peer = ns.peer_ip
    [found] = run.report.select("insecure-login-accepted", protocol="telnet")
    ev = found["evidence"]
    assert ev.get("user") == user.name, run.report.summary()
    assert ev.get("remote_host") == peer, run.report.summary()
    assert user.password not in str(run.report.data)
