"""Real Debian clients driven against test servers: telnet, ftp, curl, busybox nc.

Every client is started directly with ``subprocess.Popen`` (no shell in between), so the
recorded pid is the pid of the client program itself: the one the kernel sees connect
and the one a finding must name. Each returns a :class:`ClientRun` with the transcript,
so tests can assert that the session really happened (login prompt, 230, HTTP 200).
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import subprocess
import time
from dataclasses import dataclass

from tests.support.netns import PeerNamespace

TELNET_ESCAPE = b"\x1d"  # ^], telnet's default escape character
TCP_ESTABLISHED = "01"  # the state column of /proc/net/tcp


class ClientError(Exception):
    """A client did not complete its session; the message holds its transcript."""


@dataclass(frozen=True)
class ClientRun:
    """A finished client session."""

    argv: tuple[str, ...]
    pid: int
    returncode: int
    output: str


def _read_until(fd: int, marker: bytes, timeout: float, buf: bytearray) -> bool:
    """Read ``fd`` into ``buf`` until ``marker`` appears (True), EOF or timeout (False)."""
    deadline = time.monotonic() + timeout
    while marker not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side of the pty closed
            return False
        if not chunk:
            return False
        buf += chunk
    return True


def telnet(address: str, port: int = 23, *, hold: float = 0.0, timeout: float = 10.0) -> ClientRun:
    """Open a telnet session on a pty, wait for the server's ``login:`` prompt, keep the
    session ``hold`` seconds, then leave through the escape prompt (``^]`` + ``quit``)."""
    argv = ("telnet", address, str(port))
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    buf = bytearray()
    try:
        if not _read_until(master, b"login:", timeout, buf):
            raise ClientError(f"telnet: no login prompt: {buf.decode(errors='replace')!r}")
        time.sleep(hold)
        os.write(master, TELNET_ESCAPE)
        _read_until(master, b"telnet>", timeout, buf)
        os.write(master, b"quit\r")
        returncode = proc.wait(timeout=timeout)
        _read_until(master, b"\0never", 0.2, buf)  # collect what is left
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return ClientRun(argv, proc.pid, returncode, buf.decode(errors="replace"))


def ftp(
    address: str,
    port: int = 21,
    *,
    user: str = "anonymous",
    hold: float = 0.0,
    timeout: float = 10.0,
    ns: PeerNamespace | None = None,
) -> ClientRun:
    """Log in with tnftp (``ftp -n -v``): USER, PWD, then QUIT after ``hold`` seconds.
    From inside ``ns`` when given (``ip netns exec`` execs: the pid is still tnftp's)."""
    argv = ("ftp", "-n", "-v", address, str(port))
    proc = subprocess.Popen(
        ns.cmd(argv) if ns is not None else argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(f"user {user}\npwd\n")
    proc.stdin.flush()
    time.sleep(hold)
    return _finish(proc, argv, "quit\n", timeout)


def _finish(
    proc: subprocess.Popen[str], argv: tuple[str, ...], stdin: str | None, timeout: float
) -> ClientRun:
    """Feed ``stdin``, wait for the client to end and collect its output."""
    try:
        output, _ = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        proc.kill()
        output, _ = proc.communicate()
        raise ClientError(f"{argv[0]} did not finish in {timeout}s: {output!r}") from e
    return ClientRun(argv, proc.pid, proc.returncode, output)


def curl(url: str, *, insecure: bool = False, timeout: float = 10.0) -> ClientRun:
    """Fetch ``url`` with curl; the output ends with a line holding the HTTP status."""
    flags = ("-k",) if insecure else ()
    argv = ("curl", "-sS", "--max-time", str(timeout), "-w", "\n%{http_code}\n", *flags, url)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return _finish(proc, argv, None, timeout + 5)


def open_connection(
    ns: PeerNamespace | None, address: str, port: int, *, timeout: float = 10.0
) -> subprocess.Popen[bytes]:
    """Connect with ``busybox nc`` (from ``ns``, or the host) and keep the connection open
    until :func:`close_connection`. Returns once the connection is established, so a
    caller that closes it soon after still has made it."""
    argv = ["busybox", "nc", address, str(port)]
    proc = subprocess.Popen(
        ns.cmd(argv) if ns is not None else argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout
    while not _holds_established_tcp(proc.pid):
        if proc.poll() is not None or time.monotonic() > deadline:
            failed = close_connection(proc)
            raise ClientError(f"{failed.argv} never connected: {failed.output!r}")
        time.sleep(0.01)
    return proc


def _holds_established_tcp(pid: int) -> bool:
    """Whether process ``pid`` holds an established TCP socket (looked up in the tables
    of its own network namespace)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as rows:
            next(rows, None)  # the header
            for row in rows:
                fields = row.split()  # sl local remote st ... uid timeout inode
                if fields[3] == TCP_ESTABLISHED and fields[9] in inodes:
                    return True
    return False


def close_connection(proc: subprocess.Popen[bytes]) -> ClientRun:
    """End a client started by :func:`open_connection` (it never ends by itself)."""
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    output, _ = proc.communicate(timeout=5)
    argv = tuple(str(a) for a in proc.args)  # type: ignore[union-attr]
    return ClientRun(argv, proc.pid, proc.returncode, output.decode(errors="replace"))


def hold_connection(ns: PeerNamespace | None, address: str, port: int, seconds: float) -> ClientRun:
    """Connect with ``busybox nc``, keep the connection open ``seconds``, then end it."""
    proc = open_connection(ns, address, port)
    time.sleep(seconds)
    return close_connection(proc)
