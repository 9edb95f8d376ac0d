"""Real Debian servers for end-to-end tests, in the peer namespace or on the host.

Each ``start_*`` function launches one server as its own process (so findings can name
its pid and program), waits until its socket is listening, and registers it with a
:class:`ServerSet` that stops everything on exit. Readiness is checked with ``ss`` in the
server's namespace rather than by connecting, so readiness checks never add a connection
(which would spoil an "unused listening port" scenario or start a login).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.support.netns import PeerNamespace

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python runs the stdlib-only servers
SERVE = str(Path(__file__).with_name("serve.py"))
TELNETD = "/usr/sbin/telnetd"  # inetutils-telnetd
VSFTPD = "/usr/sbin/vsftpd"
HTTP_BODY = "rba e2e index\n"


class ServerError(Exception):
    """A server did not start; the message holds what it printed and who else holds its
    port."""


@dataclass
class Server:
    """A running server: its process, where it listens, and its log file."""

    name: str
    proc: subprocess.Popen[Any]
    address: str
    port: int
    log: Path

    @property
    def pid(self) -> int:
        """The pid of the listening program itself (no wrapper in between)."""
        return self.proc.pid

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 3 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)

    def output(self) -> str:
        """What the server has written to its log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_output(self, text: str, timeout: float = 10.0) -> str:
        """The log once it contains ``text`` (a server logs after the fact it reports,
        so a busy machine lets a reader come too early); fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while text not in (output := self.output()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never logged {text!r}: {output!r}")
            time.sleep(0.02)
        return output


class ServerSet(contextlib.AbstractContextManager["ServerSet"]):
    """Starts servers in a work directory; stops all of them on exit, even on failure.

    ``ns`` is where the servers run: a :class:`PeerNamespace`, or ``None`` for the host."""

    def __init__(self, workdir: Path, ns: PeerNamespace | None) -> None:
        self.workdir = workdir
        self.ns = ns
        self.servers: list[Server] = []

    def __exit__(self, *exc: object) -> None:
        for server in reversed(self.servers):
            server.stop()

    def _spawn(
        self, argv: Sequence[str], stdout: IO[Any], stdin_is_log: bool
    ) -> subprocess.Popen[Any]:
        kw: dict[str, Any] = {
            "stdin": stdout if stdin_is_log else subprocess.DEVNULL,
            "stdout": stdout,
            "stderr": subprocess.STDOUT,
        }
        if self.ns is not None:
            return self.ns.spawn(argv, **kw)
        return subprocess.Popen(argv, **kw)

    def _start(
        self, name: str, argv: Sequence[str], address: str, port: int, stdin_is_log: bool = False
    ) -> Server:
        """``stdin_is_log``: the log is also the server's fd 0, for vsftpd, which writes its
        start-up errors ("500 OOPS: ...") to fd 0 (the control connection) and nowhere else."""
        log = self.workdir / f"{name}-{port}.log"
        with log.open("w+b") as out:
            proc = self._spawn(argv, out, stdin_is_log)
        server = Server(name, proc, address, port, log)
        self.servers.append(server)
        self._wait_listening(server)
        return server

    def _listeners(self, port: int, address: str | None = None) -> str:
        """``ss`` lines of TCP listeners on ``port`` (at ``address``) in the server's
        namespace, with their programs."""
        argv = ["ss", "-Hltnp", "src", f"{address}:{port}" if address else f":{port}"]
        argv = self.ns.cmd(argv) if self.ns is not None else argv
        return subprocess.run(
            argv, check=False, capture_output=True, text=True, timeout=5
        ).stdout.strip()

    def _is_listening(self, server: Server) -> bool:
        """Whether the server's own process listens (not another one on that port)."""
        return f"pid={server.pid}," in self._listeners(server.port, server.address)

    def _failed(self, server: Server, what: str) -> ServerError:
        where = "the peer namespace" if self.ns is not None else "the host"
        output = server.output().strip() or "(no output)"
        holders = self._listeners(server.port) or "none"
        return ServerError(
            f"{server.name} {what} ({server.address}:{server.port} in {where}): {output}; "
            f"listeners on port {server.port} there: {holders}"
        )

    def _wait_listening(self, server: Server, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise self._failed(server, f"exited with {server.proc.returncode}")
            if self._is_listening(server):
                return
            time.sleep(0.05)
        raise self._failed(server, f"not listening after {timeout:g}s")

    def telnetd(self, address: str, port: int = 23) -> Server:
        """inetutils telnetd behind an inetd-style accept loop (it is inetd-only)."""
        argv = [SYSTEM_PYTHON, SERVE, "inetd", "--bind", address, "--port", str(port)]
        argv += ["--exec", TELNETD]
        return self._start("telnetd", argv, address, port)

    def vsftpd(self, address: str, port: int = 21) -> Server:
        """vsftpd in the foreground with anonymous read-only login (user ``anonymous``)."""
        base = self.workdir / f"vsftpd-{address}-{port}"
        root, empty = base / "root", base / "empty"
        for d in (root, empty):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)  # vsftpd refuses a writable anonymous root
        (root / "README").write_text("rba e2e ftp\n")
        conf = base / "vsftpd.conf"
        conf.write_text(
            "\n".join(
                [
                    "listen=YES",
                    "listen_ipv6=NO",
                    f"listen_address={address}",
                    f"listen_port={port}",
                    "background=NO",
                    "anonymous_enable=YES",
                    "no_anon_password=YES",
                    f"anon_root={root}",
                    "local_enable=NO",
                    "write_enable=NO",
                    f"secure_chroot_dir={empty}",
                    "connect_from_port_20=NO",
                    "xferlog_enable=NO",
                    "seccomp_sandbox=NO",
                    "",
                ]
            )
        )
        return self._start("vsftpd", [VSFTPD, str(conf)], address, port, stdin_is_log=True)

    def http(self, address: str, port: int = 80) -> Server:
        """python's http.server serving a one-file directory."""
        docroot = self._docroot()
        argv = [SYSTEM_PYTHON, "-m", "http.server", str(port), "--bind", address]
        argv += ["--directory", str(docroot)]
        return self._start("http", argv, address, port)

    def https(self, address: str, port: int = 443) -> Server:
        """http.server behind TLS with a fresh self-signed certificate."""
        cert, key = self.workdir / "cert.pem", self.workdir / "key.pem"
        if not cert.exists():
            make_self_signed_cert(cert, key, address)
        argv = [SYSTEM_PYTHON, SERVE, "https", "--bind", address, "--port", str(port)]
        argv += ["--cert", str(cert), "--key", str(key), "--directory", str(self._docroot())]
        return self._start("https", argv, address, port)

    def smtp(self, address: str, port: int = 25, *, starttls: bool = True) -> Server:
        """The minimal SMTP receiver of serve.py, offering STARTTLS when ``starttls``."""
        argv = [SYSTEM_PYTHON, SERVE, "smtp", "--bind", address, "--port", str(port)]
        if starttls:
            cert, key = self.workdir / "cert.pem", self.workdir / "key.pem"
            if not cert.exists():
                make_self_signed_cert(cert, key, address)
            argv += ["--cert", str(cert), "--key", str(key)]
        return self._start("smtp", argv, address, port)

    def listener(self, address: str, port: int) -> Server:
        """A plain TCP listener that logs ``accepted <peer>`` per connection."""
        argv = [SYSTEM_PYTHON, SERVE, "hold", "--bind", address, "--port", str(port)]
        return self._start("listener", argv, address, port)

    def _docroot(self) -> Path:
        docroot = self.workdir / "docroot"
        docroot.mkdir(exist_ok=True)
        (docroot / "index.html").write_text(HTTP_BODY)
        return docroot


def make_self_signed_cert(cert: Path, key: Path, address: str) -> None:
    """A throw-away RSA certificate for ``address`` made by ``openssl req -x509``."""
    argv = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
    argv += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=rba-e2e"]
    argv += ["-addext", f"subjectAltName=IP:{address}"]
    subprocess.run(
        argv,
        check=True,
        capture_output=True,
        timeout=30,
    )
