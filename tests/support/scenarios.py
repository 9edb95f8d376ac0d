"""The end-to-end lab and its scenario, shared by every test that needs real behaviour to
observe (assess, capture/replay, daemon).

:func:`lab` sets up, before any window opens: the peer namespace with telnetd, vsftpd,
http.server (80) and an HTTPS server (443); on the host side of the veth, vsftpd on 21
(nobody connects) and on 2121 (the namespace logs in), an idle listener and a listener
that will get one connection; gcc-built
programs; a world-writable directory holding a shared object; a script owned by
``nobody``. :func:`drive` then runs the scenario inside an open window and returns the
pids a test asserts on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import binaries, clients
from tests.support.netns import PeerNamespace, peer_namespace
from tests.support.servers import Server, ServerSet

# Host listener ports, distinct per test process: rules group listeners by port.
IDLE_PORT = 41000 + 2 * (os.getpid() % 2000)  # never gets a connection
USED_PORT = IDLE_PORT + 1  # gets exactly one
FTP_ALT_PORT = 2121  # host vsftpd on a port no protocol owns: known by its program
NOBODY_UID = 65534


@dataclass(frozen=True)
class Files:
    """Files the root-permission and binary scenarios use."""

    programs: binaries.Programs
    world_writable_dir: Path  # mode 0777, no sticky bit
    preload: Path  # a root-owned 0644 shared object inside it
    script: Path  # a shell script owned by nobody, in a root-owned 0755 directory


@dataclass(frozen=True)
class Lab:
    """Everything that exists before the window opens."""

    ns: PeerNamespace
    peer: dict[str, Server]  # telnetd, vsftpd, http, https (in the namespace)
    host: dict[str, Server]  # vsftpd, vsftpd_alt, idle, used (host side of the veth)
    files: Files


@dataclass(frozen=True)
class ScenarioRun:
    """What :func:`drive` did: the client sessions and the pids of what it ran."""

    telnet: clients.ClientRun
    ftp: clients.ClientRun
    http: clients.ClientRun
    https: clients.ClientRun
    ftp_from_peer: clients.ClientRun  # tnftp in the namespace -> host vsftpd on 2121
    used_listener_client: clients.ClientRun
    execstack_pid: int
    hardened_pid: int
    root_preload_pid: int  # /usr/bin/sleep as root with LD_PRELOAD from the 0777 dir
    root_script_pid: int  # /bin/sh as root running the nobody-owned script


def _make_files(base: Path) -> Files:
    base.chmod(0o755)  # every ancestor traversable: the world-writable dir is reachable
    programs = binaries.build_all(base)
    world_writable = base / "world-writable"
    world_writable.mkdir()
    world_writable.chmod(0o777)
    preload = world_writable / programs.preload.name
    shutil.move(programs.preload, preload)
    preload.chmod(0o644)
    script = base / "rba-e2e-nobody-script.sh"
    script.write_text('#!/bin/sh\nsleep "$1"\n')
    script.chmod(0o644)
    os.chown(script, NOBODY_UID, NOBODY_UID)
    return Files(programs, world_writable, preload, script)


@contextlib.contextmanager
def lab(workdir: Path) -> Iterator[Lab]:
    """Set the lab up in ``workdir`` (a root-owned directory); tear it all down on exit."""
    with (
        peer_namespace() as ns,
        ServerSet(workdir, ns) as peer,
        ServerSet(workdir, None) as host,
    ):
        files_dir = workdir / "files"
        files_dir.mkdir()
        yield Lab(
            ns=ns,
            peer={
                "telnetd": peer.telnetd(ns.peer_ip),
                "vsftpd": peer.vsftpd(ns.peer_ip),
                "http": peer.http(ns.peer_ip),
                "https": peer.https(ns.peer_ip),
            },
            host={
                "vsftpd": host.vsftpd(ns.host_ip),
                "vsftpd_alt": host.vsftpd(ns.host_ip, FTP_ALT_PORT),
                "idle": host.listener(ns.host_ip, IDLE_PORT),
                "used": host.listener(ns.host_ip, USED_PORT),
            },
            files=_make_files(files_dir),
        )


def _start(argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def _wait_all(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise


def drive(lab: Lab, *, hold: float = 0.0, program_ms: int = 50) -> ScenarioRun:
    """Run the scenario. ``hold`` keeps sessions and root processes alive that many extra
    seconds (polling only sees what lives across a poll); ``program_ms`` is how long the
    gcc-built programs live."""
    root_alive = f"{max(1.5, hold + 0.5):g}"
    background = [
        _start(["sleep", root_alive], env={**os.environ, "LD_PRELOAD": str(lab.files.preload)}),
        _start(["/bin/sh", str(lab.files.script), root_alive]),
        _start([str(lab.files.programs.execstack), str(program_ms)]),
        _start([str(lab.files.programs.hardened), str(program_ms)]),
    ]
    started = time.monotonic()
    connection = clients.open_connection(lab.ns, lab.ns.host_ip, USED_PORT)
    peer = lab.ns.peer_ip
    telnet = clients.telnet(peer, hold=hold)
    ftp = clients.ftp(peer)
    http = clients.curl(f"http://{peer}/")
    https = clients.curl(f"https://{peer}/", insecure=True)
    ftp_from_peer = clients.ftp(lab.ns.host_ip, FTP_ALT_PORT, ns=lab.ns)
    time.sleep(max(0.0, max(0.3, hold) - (time.monotonic() - started)))
    used_listener_client = clients.close_connection(connection)
    _wait_all(background, timeout=max(1.0, float(root_alive) + 10 - (time.monotonic() - started)))
    failed = [p.args for p in background if p.returncode != 0]
    if failed:
        raise RuntimeError(f"scenario programs failed: {failed}")
    return ScenarioRun(
        telnet=telnet,
        ftp=ftp,
        http=http,
        https=https,
        ftp_from_peer=ftp_from_peer,
        used_listener_client=used_listener_client,
        root_preload_pid=background[0].pid,
        root_script_pid=background[1].pid,
        execstack_pid=background[2].pid,
        hardened_pid=background[3].pid,
    )
