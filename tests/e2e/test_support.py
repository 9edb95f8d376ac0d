"""The end-to-end environment proven on its own, without rba: the namespace really is
separate and torn down, the real servers really serve, and the real clients really
complete their sessions (asserted on what the servers answered)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import binaries, clients, netns
from tests.support.servers import HTTP_BODY, Server, ServerError, ServerSet

pytestmark = [pytest.mark.netns, pytest.mark.root]


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@dataclass
class Env:
    ns: netns.PeerNamespace
    peer: dict[str, Server]
    host: dict[str, Server]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("support")
    with (
        netns.peer_namespace() as ns,
        ServerSet(work, ns) as peer,
        ServerSet(work, None) as host,
    ):
        ip = ns.peer_ip
        yield Env(
            ns,
            peer={
                "telnetd": peer.telnetd(ip),
                "vsftpd": peer.vsftpd(ip),
                "http": peer.http(ip),
                "https": peer.https(ip),
            },
            host={
                "vsftpd": host.vsftpd(ns.host_ip),
                "idle": host.listener(ns.host_ip, 40117),
                "used": host.listener(ns.host_ip, 40118),
            },
        )


def test_namespace_is_separate_and_torn_down() -> None:
    eth0_before = _ip("-o", "addr", "show", "dev", "eth0")
    with netns.peer_namespace() as ns:
        assert ns.name in _ip("netns", "list")
        assert f"{ns.host_ip}/" in _ip("-o", "addr", "show", "dev", ns.host_veth)
        inside = ns.run(["ip", "-o", "-4", "addr"]).stdout
        assert f"{ns.peer_ip}/" in inside
        assert ns.host_ip not in inside
        # The namespace has no default route: nothing inside can reach beyond the host.
        assert "default" not in ns.run(["ip", "route"]).stdout
        sleeper = ns.spawn(["sleep", "60"])
    assert sleeper.poll() is not None  # killed at teardown
    assert ns.name not in _ip("netns", "list")
    assert ns.host_veth not in _ip("-o", "link")
    assert _ip("-o", "addr", "show", "dev", "eth0") == eth0_before


def test_parallel_namespaces_get_disjoint_subnets() -> None:
    with netns.peer_namespace() as a, netns.peer_namespace() as b:
        assert not a.subnet.overlaps(b.subnet)
        assert a.name != b.name and a.host_veth != b.host_veth
        # Each peer is reached over its own veth, from the host.
        for ns in (a, b):
            route = _ip("-4", "route", "get", ns.peer_ip)
            assert f"dev {ns.host_veth} " in route


def test_stale_namespaces_of_dead_runs_are_removed() -> None:
    dead = _unused_pid()
    stale_ns = f"{netns.NS_PREFIX}{dead}-0"
    stale_veth = f"{netns.VETH_PREFIX}{dead}x0"
    _ip("netns", "add", stale_ns)
    _ip("link", "add", stale_veth, "type", "veth", "peer", "name", "rbstalepeer")
    removed = netns.clean_stale()
    assert stale_ns in removed and stale_veth in removed
    assert stale_ns not in _ip("netns", "list")
    assert stale_veth not in _ip("-o", "link")


def _unused_pid() -> int:
    pid = 4_000_000
    while os.path.exists(f"/proc/{pid}"):
        pid += 1
    return pid


def test_telnet_reaches_telnetd_login_prompt(env: Env) -> None:
    run = clients.telnet(env.ns.peer_ip)
    assert f"Connected to {env.ns.peer_ip}" in run.output
    assert "login:" in run.output  # /bin/login, started by inetutils telnetd
    assert run.returncode == 0 and run.pid > 0


def test_ftp_logs_in_to_vsftpd(env: Env) -> None:
    run = clients.ftp(env.ns.peer_ip)
    assert "220 (vsFTPd" in run.output
    assert "230 Login successful." in run.output
    assert "221 Goodbye." in run.output


def test_curl_gets_http_200(env: Env) -> None:
    run = clients.curl(f"http://{env.ns.peer_ip}/")
    assert run.output.splitlines()[-1] == "200"
    assert HTTP_BODY.strip() in run.output


def test_curl_gets_https_200_and_it_is_really_tls(env: Env) -> None:
    run = clients.curl(f"https://{env.ns.peer_ip}/", insecure=True)
    assert run.output.splitlines()[-1] == "200"
    assert HTTP_BODY.strip() in run.output
    verified = clients.curl(f"https://{env.ns.peer_ip}/")  # self-signed: must be refused
    assert verified.returncode == 60, verified.output
    plain = clients.curl(f"http://{env.ns.peer_ip}:443/")
    assert plain.output.splitlines()[-1] != "200"


def test_host_vsftpd_listens_in_the_host_namespace(env: Env) -> None:
    server = env.host["vsftpd"]
    out = subprocess.run(
        ["ss", "-Hltnp", "src", f"{server.address}:{server.port}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"pid={server.pid}," in out
    run = clients.ftp(env.ns.host_ip)
    assert "230 Login successful." in run.output


def test_listener_sees_exactly_the_connections_made(env: Env) -> None:
    run = clients.hold_connection(env.ns, env.ns.host_ip, env.host["used"].port, 0.3)
    assert run.pid > 0
    accepted = env.host["used"].wait_output(f"accepted {env.ns.peer_ip}:")
    assert accepted.count("accepted ") == 1
    assert env.host["idle"].output() == ""  # readiness checks never connect


def test_built_programs_have_the_intended_hardening(tmp_path: Path) -> None:
    programs = binaries.build_all(tmp_path)

    def checksec(path: Path) -> str:
        return subprocess.run(
            ["checksec", "--output=csv", f"--file={path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    hardened = checksec(programs.hardened)
    assert "Full RELRO,Canary found,NX enabled,PIE enabled" in hardened
    segments = subprocess.run(
        ["readelf", "-lW", str(programs.hardened)], check=True, capture_output=True, text=True
    ).stdout
    assert "INTERP" not in segments  # static: it maps neither ld.so nor libc
    assert "No Canary found,NX disabled" in checksec(programs.execstack)
    assert "Canary found,NX enabled" in checksec(programs.preload)
    assert subprocess.run([str(programs.execstack), "50"], check=False).returncode == 0


def test_a_server_that_cannot_start_says_why(env: Env, tmp_path: Path) -> None:
    """vsftpd writes its start-up errors only to fd 0: the failure carries its reason and
    who holds the port."""
    taken = env.peer["vsftpd"]
    with ServerSet(tmp_path, env.ns) as second, pytest.raises(ServerError) as failure:
        second.vsftpd(taken.address, taken.port)
    message = str(failure.value)
    assert message.startswith(f"vsftpd exited with 2 ({taken.address}:{taken.port} in the peer")
    assert "500 OOPS: could not bind listening IPv4 socket" in message
    assert f"pid={taken.pid}," in message  # the vsftpd already listening there
