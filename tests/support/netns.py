"""A peer network namespace joined to the host by a veth pair.

Remote peers must not be loopback (loopback peers are never client findings) and test
traffic must never leave the machine, so each test run makes its own namespace: the host
side of the veth gets the first address of a free /28 of 198.51.100.0/24 (else of
203.0.113.0/24), the namespace side the second: 198.51.100.1 and 198.51.100.2 for the
first run. The namespace has no default route: traffic flows only between the host and
that namespace, and eth0 is never touched.

Names carry the creating pid, so parallel runs never clash, and leftovers of dead runs
are recognised and removed before a new namespace is made.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import itertools
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

NS_PREFIX = "rbae2e-"  # namespaces: rbae2e-<pid>-<n>
VETH_PREFIX = "rbv"  # host-side veth: rbv<pid>x<n> (15-char IFNAMSIZ limit)
_NS_NAME = re.compile(rf"^{NS_PREFIX}(\d+)-\d+$")
_VETH_NAME = re.compile(rf"^{VETH_PREFIX}(\d+)x\d+$")
_LOCK_PATH = "/run/lock/rba-e2e-netns.lock"
_BASE_SUBNETS = (ipaddress.IPv4Network("198.51.100.0/24"), ipaddress.IPv4Network("203.0.113.0/24"))
SUBNET_PREFIX = 28
# `ip route` prints these route types before the destination.
_ROUTE_TYPES = {"local", "broadcast", "unicast", "anycast", "multicast", "unreachable"}
_ROUTE_TYPES |= {"blackhole", "prohibit", "throw", "nat"}
_counter = itertools.count()


class NetnsError(Exception):
    """Setting up or using the test namespace failed; the message says which step."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=10)
    if check and result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def _pid_alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _kill_pids_in(ns_name: str) -> None:
    pids = _ip("netns", "pids", ns_name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def clean_stale() -> list[str]:
    """Remove namespaces and veths with our prefixes whose creating process is gone.
    Returns the names removed."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _NS_NAME.match(name)
        if match and not _pid_alive(int(match.group(1))):
            _kill_pids_in(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        match = _VETH_NAME.match(name)
        if match and not _pid_alive(int(match.group(1))):
            _ip("link", "del", name, check=False)
            removed.append(name)
    return removed


def _routed_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network any route of the host (all tables) covers."""
    nets = []
    for line in _ip("-4", "route", "show", "table", "all", check=False).stdout.splitlines():
        words = line.split()
        if not words:
            continue
        dest = words[1] if words[0] in _ROUTE_TYPES and len(words) > 1 else words[0]
        if dest == "default":
            continue
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.IPv4Network(dest, strict=False))
    return nets


def _free_subnet() -> ipaddress.IPv4Network:
    """The first /28 of the documentation ranges that no existing route overlaps.

    A /28 rather than a /24, so that parallel runs (say, the daemon's tests and the
    assess tests) each get their own slice: 198.51.100.0/28, 198.51.100.16/28, ..."""
    routed = _routed_networks()
    for base in _BASE_SUBNETS:
        for net in base.subnets(new_prefix=SUBNET_PREFIX):
            if not any(net.overlaps(r) for r in routed):
                return net
    raise NetnsError("no free /28 in 198.51.100.0/24 or 203.0.113.0/24 (all routed)")


@dataclass
class PeerNamespace:
    """A live peer namespace. Use :func:`peer_namespace` to make one."""

    name: str
    host_veth: str
    subnet: ipaddress.IPv4Network
    host_ip: str
    peer_ip: str
    _procs: list[subprocess.Popen[Any]] = field(default_factory=list)

    def cmd(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run inside the namespace (``ip netns exec``, which execs:
        the spawned pid is the program's own pid)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self, argv: Sequence[str], timeout: float = 20, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace to completion, capturing text output."""
        cmd = self.cmd(argv)
        return subprocess.run(
            cmd, check=False, capture_output=True, text=True, timeout=timeout, **kw
        )

    def spawn(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the namespace; it is killed at teardown if still running."""
        proc = subprocess.Popen(self.cmd(argv), **kw)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        """Kill everything still running in the namespace, then delete it and the veth."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        _kill_pids_in(self.name)
        _ip("netns", "del", self.name, check=False)
        _ip("link", "del", self.host_veth, check=False)  # normally gone with its peer


def _create(name: str, host_veth: str, subnet: ipaddress.IPv4Network) -> PeerNamespace:
    hosts = list(subnet.hosts())
    host_ip, peer_ip = str(hosts[0]), str(hosts[1])
    prefix = subnet.prefixlen
    ns = PeerNamespace(name, host_veth, subnet, host_ip, peer_ip)
    peer_veth = "rbpeer0"  # lives only inside the namespace
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_veth, "type", "veth", "peer", "name", peer_veth, "netns", name)
        _ip("addr", "add", f"{host_ip}/{prefix}", "dev", host_veth)
        _ip("link", "set", host_veth, "up")
        _ip("-n", name, "addr", "add", f"{peer_ip}/{prefix}", "dev", peer_veth)
        _ip("-n", name, "link", "set", peer_veth, "up")
        _ip("-n", name, "link", "set", "lo", "up")
    except BaseException:
        ns.close()
        raise
    return ns


def _wait_link_up(ns: PeerNamespace, timeout: float = 5.0) -> None:
    """Wait until the host veth has carrier, which it gets once its namespace end is up."""
    state_file = f"/sys/class/net/{ns.host_veth}/operstate"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(state_file) as f:
            if f.read().strip() == "up":
                return
        time.sleep(0.05)
    raise NetnsError(f"veth {ns.host_veth} has no carrier after {timeout}s")


@contextlib.contextmanager
def peer_namespace() -> Iterator[PeerNamespace]:
    """Create a peer namespace with a veth pair; always torn down on exit."""
    clean_stale()
    n = next(_counter)
    name = f"{NS_PREFIX}{os.getpid()}-{n}"
    host_veth = f"{VETH_PREFIX}{os.getpid()}x{n}"
    os.makedirs(os.path.dirname(_LOCK_PATH), exist_ok=True)
    with open(_LOCK_PATH, "w") as lock:  # serialise subnet choice across parallel runs
        fcntl.flock(lock, fcntl.LOCK_EX)
        ns = _create(name, host_veth, _free_subnet())
    try:
        _wait_link_up(ns)
        yield ns
    finally:
        ns.close()
