"""UDP services (issue 15): a real snmpd answering real snmpget clients from a peer
namespace, under the eBPF probes and under polling.

snmpd runs on the host side of the veth, so it is this host's service and the peer's
requests come from a non-loopback address. What must hold:

- snmpd's replies (datagrams to the peer's ephemeral port, in answer to the peer) are
  never an insecure *client* finding (docs/assess.md, "Server replies").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.assess import AssessRun, Report, names_any
from tests.support.netns import PeerNamespace, peer_namespace

pytestmark = [pytest.mark.netns, pytest.mark.root]

WINDOW_S = 8
SNMP_PORT = 161
COMMUNITY = "rbae2e"
V3_USER = "rbae2e"
CLIENT_RULES = ("insecure-client-login", "insecure-client-general")


@dataclass(frozen=True)
class Outcome:
    probes: str
    report: Report
    snmpd_pid: int
    answered: tuple[str, ...]  # snmpget versions that got an answer


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


def _assess(snmpd: tuple[PeerNamespace, int], work: Path, probes: str) -> Outcome:
    ns, pid = snmpd
    with AssessRun(work, duration=WINDOW_S, probes=probes) as run:
        answered = tuple(v for v in ("2c", "3", "2c") if _snmpget(ns, v))
    return Outcome(probes, run.report, pid, answered)


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


def test_snmpd_replies_are_no_client_finding(outcome: Outcome) -> None:
    wrong = [
        f
        for f in outcome.report.findings
        if f["rule_id"] in CLIENT_RULES and names_any(f, {outcome.snmpd_pid}, "")
    ]
    assert wrong == [], outcome.report.summary()
