"""UDP services (issue 15): a real snmpd answering real snmpget clients from a peer
namespace, under the eBPF probes and under polling.

snmpd runs on the host side of the veth, so it is this host's service and the peer's
requests come from a non-loopback address. What must hold:

- snmpd's replies (datagrams to the peer's ephemeral port, in answer to the peer) are
  never an insecure *client* finding (docs/assess.md, "Server replies").
- snmpd (bound before the window: the start snapshot) and in.tftpd (bound inside it:
  ``bind``) are UDP services: ``insecure-server-protocol`` with ``transport: udp``, by
  content under eBPF (used, with the peers counted), by port or program under polling.
- SNMP is judged by what peers sent: a window with only v3 requests is no finding.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.assess import AssessRun, Finding, Report, evidence_value
from tests.support.netns import PeerNamespace, peer_namespace

pytestmark = [pytest.mark.netns, pytest.mark.root]

WINDOW_S = 8
SNMP_PORT = 161
COMMUNITY = "rbae2e"
V3_USER = "rbae2e"
CLIENT_RULES = ("insecure-client-login", "insecure-client-general")


TFTP_PORT = 69
TFTP_FILE = "boot.txt"


@dataclass(frozen=True)
class Outcome:
    probes: str
    report: Report
    snmpd_pid: int
    answered: tuple[str, ...]  # snmpget versions that got an answer
    tftpd_pid: int
    fetched: bool  # the tftp client got the file
    host_ip: str  # the services' bind address (the host side of the veth)

    def udp_service(self, port: int) -> list[Finding]:
        return self.report.select("insecure-server-protocol", port=port, transport="udp")


def _wait_udp_bound(pid: int, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["ss", "-Hlunp", "sport", f"= :{port}"],
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout  # fmt: skip
        if f"pid={pid}," in out:
            return
        time.sleep(0.05)
    raise AssertionError(f"snmpd (pid {pid}) not bound to UDP {port} after {timeout:g}s")


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PeerNamespace, int]]:
    """snmpd on the host side of a fresh peer namespace's veth: v2c community and a
    noAuthNoPriv v3 user, UDP 161 only (``-I -smux``: no AgentX, no SMUX)."""
    for tool in ("snmpd", "snmpget"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (scripts/install-test.sh)")
    work = tmp_path_factory.mktemp("snmpd")
    conf = work / "snmpd.conf"
    conf.write_text(f"rocommunity {COMMUNITY}\ncreateUser {V3_USER}\nrouser {V3_USER} noauth\n")
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(work / "persist"), "MIBS": ""}
    with peer_namespace() as ns, (work / "snmpd.log").open("wb") as log:
        argv = ["snmpd", "-f", "-Lo", "-I", "-smux", "-C", "-c", str(conf)]
        proc = subprocess.Popen(
            [*argv, f"udp:{ns.host_ip}:{SNMP_PORT}"], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            _wait_udp_bound(proc.pid, SNMP_PORT)
            yield ns, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def _snmpget(ns: PeerNamespace, version: str) -> bool:
    """One snmpget from the peer namespace to snmpd; whether it was answered."""
    auth = ["-l", "noAuthNoPriv", "-u", V3_USER] if version == "3" else ["-c", COMMUNITY]
    argv = ["snmpget", "-m", "", f"-v{version}", *auth, "-r", "1", "-t", "2"]
    result = ns.run([*argv, f"{ns.host_ip}:{SNMP_PORT}", "1.3.6.1.2.1.1.5.0"])
    return result.returncode == 0 and ".1.5.0 = STRING:" in result.stdout


def _tftp_get(ns: PeerNamespace, work: Path) -> bool:
    """``tftp`` from the peer namespace fetches the served file into ``work``."""
    target = work / "fetched.txt"
    argv = ["tftp", ns.host_ip, str(TFTP_PORT), "-m", "octet", "-c", "get", TFTP_FILE]
    ns.run([*argv, str(target)])
    return target.exists() and target.read_text() == "rba tftp\n"


def _assess(snmpd: tuple[PeerNamespace, int], work: Path, probes: str) -> Outcome:
    ns, pid = snmpd
    root = work / "tftproot"
    root.mkdir()
    (root / TFTP_FILE).write_text("rba tftp\n")
    root.chmod(0o755)
    work.chmod(0o755)
    (root / TFTP_FILE).chmod(0o644)
    argv = ["in.tftpd", "-L", "-a", f"{ns.host_ip}:{TFTP_PORT}", "-s", str(root)]
    with AssessRun(work, duration=WINDOW_S, probes=probes) as run:
        answered = tuple(v for v in ("2c", "3", "2c") if _snmpget(ns, v))
        tftpd = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_udp_bound(tftpd.pid, TFTP_PORT)
            fetched = _tftp_get(ns, work)
            time.sleep(1.5)  # a poll sees the bound socket
        finally:
            tftpd.terminate()
            tftpd.wait(timeout=10)
    return Outcome(probes, run.report, pid, answered, tftpd.pid, fetched, ns.host_ip)


@pytest.fixture(scope="module")
def ebpf_outcome(
    snmpd: tuple[PeerNamespace, int], tmp_path_factory: pytest.TempPathFactory
) -> Outcome:
    from tests.conftest import BPF_MISSING

    if BPF_MISSING:
        pytest.skip(f"eBPF unavailable: {BPF_MISSING}")
    return _assess(snmpd, tmp_path_factory.mktemp("udp-ebpf"), "ebpf")


@pytest.fixture(scope="module")
def poll_outcome(
    snmpd: tuple[PeerNamespace, int], tmp_path_factory: pytest.TempPathFactory
) -> Outcome:
    return _assess(snmpd, tmp_path_factory.mktemp("udp-poll"), "poll")


@pytest.fixture(params=["ebpf", "poll"])
def outcome(request: pytest.FixtureRequest) -> Outcome:
    result: Outcome = request.getfixturevalue(f"{request.param}_outcome")
    return result


def test_snmpd_answered_both_versions(outcome: Outcome) -> None:
    assert set(outcome.answered) == {"2c", "3"}, "snmpd did not answer: the scenario is void"


def test_servers_replies_are_no_client_finding(outcome: Outcome) -> None:
    assert outcome.fetched, "in.tftpd did not serve the file: the scenario is void"
    servers = {outcome.snmpd_pid, outcome.tftpd_pid}
    wrong = [
        f
        for f in outcome.report.findings
        if f["rule_id"] in CLIENT_RULES
        and servers & {evidence_value(f, "process.pid"), *(evidence_value(f, "pids") or ())}
    ]
    assert wrong == [], outcome.report.summary()


def _only_service(outcome: Outcome, port: int, pid: int) -> Finding:
    found = outcome.udp_service(port)
    assert len(found) == 1, outcome.report.summary()
    assert found[0]["evidence"]["process"]["pid"] == pid
    return found[0]


def test_snmpd_is_an_insecure_udp_service(outcome: Outcome) -> None:
    f = _only_service(outcome, SNMP_PORT, outcome.snmpd_pid)
    ev = f["evidence"]
    assert ev["protocol"] == "snmp" and ev["bind_addresses"] == [outcome.host_ip]
    if outcome.probes == "ebpf":
        # Identified by what the peers sent (community versions); one peer endpoint per
        # snmpget run.
        assert (ev["basis"], ev["usage"], ev["peers"]) == ("content", "used", 3)
    else:
        assert (ev["basis"], ev["usage"]) == ("port", "unknown")


def test_tftpd_bound_in_the_window_is_an_insecure_udp_service(outcome: Outcome) -> None:
    f = _only_service(outcome, TFTP_PORT, outcome.tftpd_pid)
    ev = f["evidence"]
    assert ev["protocol"] == "tftp"
    assert ev["process"]["user"] == "root" and ev["process"]["comm"] == "in.tftpd"
    if outcome.probes == "ebpf":
        assert (ev["basis"], ev["usage"], ev["peers"]) == ("content", "used", 1)
        assert ev["sources"] == ["ebpf"]
    else:
        assert (ev["basis"], ev["usage"]) == ("program", "unknown")


def test_unused_listening_port_stays_tcp(outcome: Outcome) -> None:
    for port in (SNMP_PORT, TFTP_PORT):
        assert outcome.report.select("unused-listening-port", port=port) == []


def test_snmp_v3_only_is_no_server_finding(
    snmpd: tuple[PeerNamespace, int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.conftest import BPF_MISSING

    if BPF_MISSING:
        pytest.skip(f"eBPF unavailable: {BPF_MISSING}")
    ns, _pid = snmpd
    with AssessRun(tmp_path_factory.mktemp("udp-v3"), duration=6, probes="ebpf") as run:
        assert _snmpget(ns, "3")
    found = run.report.select("insecure-server-protocol", port=SNMP_PORT, transport="udp")
    assert found == [], run.report.summary()


# One sendmmsg() of two SNMP v2c requests to the peer's UDP 161 (nothing answers).
SENDMMSG_CLIENT = r"""
import ctypes, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
addr = bytes([2, 0, 0, 161]) + socket.inet_aton(sys.argv[1]) + bytes(8)
name = ctypes.create_string_buffer(addr, len(addr))
data = bytes.fromhex("302602010104067262616532650419a0170204")
buf = ctypes.create_string_buffer(data, len(data))
iov = iovec(ctypes.cast(buf, ctypes.c_void_p), len(data))
msgs = (mmsghdr * 2)()
for m in msgs:
    m.hdr.name = ctypes.cast(name, ctypes.c_void_p)
    m.hdr.namelen = len(addr)
    m.hdr.iov = ctypes.pointer(iov)
    m.hdr.iovlen = 1
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent = libc.sendmmsg(s.fileno(), msgs, 2, 0)
sys.exit(0 if sent == 2 else 1)
"""


def test_sendmmsg_is_a_udp_send(
    snmpd: tuple[PeerNamespace, int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.conftest import BPF_MISSING

    if BPF_MISSING:
        pytest.skip(f"eBPF unavailable: {BPF_MISSING}")
    ns, _pid = snmpd
    with AssessRun(tmp_path_factory.mktemp("udp-mmsg"), duration=5, probes="ebpf") as run:
        client = subprocess.run(
            [sys.executable, "-c", SENDMMSG_CLIENT, ns.peer_ip], timeout=10, check=False
        )
        assert client.returncode == 0
    found = [
        f
        for f in run.report.select("insecure-client-general", remote__port=SNMP_PORT)
        if f["evidence"]["remote"]["address"] == ns.peer_ip
    ]
    assert len(found) == 1 and found[0]["evidence"]["transport"] == "udp", run.report.summary()
