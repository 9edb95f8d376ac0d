"""Acceptance of content-based protocol identification (issue 8) with real programs.

Servers run in a test-made peer namespace; real clients on the host talk to them while
``rba assess --probes ebpf --record TRACE`` watches. The ports are chosen so that port
numbers alone would get every case wrong: HTTPS on 80, HTTP on 8080, telnet on 2323,
SMTP with STARTTLS on 25 and without it on 2526. SNMP goes to 161 with net-snmp's
snmpget in v2c and v3 (no agent answers: the finding is about the client's datagram).

One client also sends a unique marker as the first bytes of its payload; no output of
rba (JSON report, text report of the replay, trace bytes inflated, stderr) may hold it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from probes.trace.format import CHUNK_HEADER, FILE_HEADER, FLAG_ZLIB
from tests.conftest import RBA
from tests.support import clients
from tests.support.assess import AssessRun, Finding, Report, evidence_value
from tests.support.netns import PeerNamespace, peer_namespace
from tests.support.servers import ServerSet

pytestmark = [pytest.mark.netns, pytest.mark.root, pytest.mark.ebpf]

WINDOW_S = 12
HTTPS_PORT, HTTP_PORT, TELNET_PORT, SMTP_TLS_PORT, SMTP_PLAIN_PORT = 80, 8080, 2323, 25, 2526
CLIENT_RULES = ("insecure-client-login", "insecure-client-general")
MARKER_CLIENT = (
    "import socket, sys\n"
    "s = socket.create_connection((sys.argv[1], int(sys.argv[2])))\n"
    "s.sendall(open(sys.argv[3], 'rb').read())\n"
    "s.recv(4096)\n"
)


@dataclass(frozen=True)
class Scenario:
    """Pids of the clients that ran inside the window."""

    https: int
    http: int
    telnet: int
    smtp_tls: int
    smtp_plain: int
    snmp_v2c: int
    snmp_v3: int
    marker: int


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    report: Report
    trace: Path
    stderr: str
    marker: str
    peer: str

    def client_findings(self, pid: int) -> list[Finding]:
        return [
            f
            for f in self.report.findings
            if f["rule_id"] in CLIENT_RULES and pid in (evidence_value(f, "pids") or [])
        ]


def _run(argv: list[str], timeout: float = 15) -> int:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.wait(timeout=timeout)
    return proc.pid


def _smtp(ns: PeerNamespace, port: int, mail: Path, *, starttls: bool) -> int:
    argv = ["curl", "-sS", "--max-time", "10", f"smtp://{ns.peer_ip}:{port}"]
    argv += ["--mail-from", "a@example.org", "--mail-rcpt", "b@example.org", "-T", str(mail)]
    argv += ["--ssl-reqd", "-k"] if starttls else []
    return _run(argv)


def _snmpget(ns: PeerNamespace, version: str) -> int:
    auth = ["-l", "noAuthNoPriv", "-u", "rba"] if version == "3" else ["-c", "public"]
    argv = ["snmpget", f"-v{version}", *auth, "-r", "0", "-t", "1", f"{ns.peer_ip}:161"]
    return _run([*argv, "1.3.6.1.2.1.1.1.0"])


def _drive(ns: PeerNamespace, work: Path, marker_file: Path) -> Scenario:
    mail = work / "mail.txt"
    mail.write_text("Subject: rba\r\n\r\nhello\r\n")
    peer = ns.peer_ip
    https = clients.curl(f"https://{peer}:{HTTPS_PORT}/", insecure=True)
    http = clients.curl(f"http://{peer}:{HTTP_PORT}/")
    assert https.output.endswith("200\n") and http.output.endswith("200\n")
    telnet = clients.telnet(peer, TELNET_PORT)
    marker = _run([sys.executable, "-c", MARKER_CLIENT, peer, str(HTTP_PORT), str(marker_file)])
    return Scenario(
        https=https.pid,
        http=http.pid,
        telnet=telnet.pid,
        smtp_tls=_smtp(ns, SMTP_TLS_PORT, mail, starttls=True),
        smtp_plain=_smtp(ns, SMTP_PLAIN_PORT, mail, starttls=False),
        snmp_v2c=_snmpget(ns, "2c"),
        snmp_v3=_snmpget(ns, "3"),
        marker=marker,
    )


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    for tool in ("curl", "telnet", "snmpget"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (scripts/install-test.sh)")
    work = tmp_path_factory.mktemp("content")
    marker = "rbamarker" + os.urandom(8).hex()
    marker_file = work / "request"
    marker_file.write_bytes(f"GET /{marker} HTTP/1.0\r\n\r\n".encode())
    trace = work / "window.rbt"
    with peer_namespace() as ns, ServerSet(work, ns) as servers:
        servers.https(ns.peer_ip, HTTPS_PORT)
        servers.http(ns.peer_ip, HTTP_PORT)
        servers.telnetd(ns.peer_ip, TELNET_PORT)
        servers.smtp(ns.peer_ip, SMTP_TLS_PORT, starttls=True)
        servers.smtp(ns.peer_ip, SMTP_PLAIN_PORT, starttls=False)
        extra = ("--record", str(trace))
        with AssessRun(work, duration=WINDOW_S, probes="ebpf", extra=extra) as run:
            scenario = _drive(ns, work, marker_file)
        yield Outcome(scenario, run.report, trace, run.stderr(), marker, ns.peer_ip)


def _only_client(outcome: Outcome, pid: int, rule_id: str, port: int, transport: str) -> Finding:
    found = outcome.client_findings(pid)
    assert [f["rule_id"] for f in found] == [rule_id], outcome.report.summary()
    ev = found[0]["evidence"]
    assert ev["remote"] == {"address": outcome.peer, "port": port}
    assert ev["transport"] == transport
    assert ev["basis"] == "content"
    return found[0]


def test_https_on_port_80_is_no_finding(outcome: Outcome) -> None:
    assert outcome.client_findings(outcome.scenario.https) == [], outcome.report.summary()


def test_http_on_8080_is_a_general_finding_by_content(outcome: Outcome) -> None:
    f = _only_client(outcome, outcome.scenario.http, "insecure-client-general", HTTP_PORT, "tcp")
    assert f["evidence"]["protocol"] == "http"


def test_telnet_on_2323_is_a_login_finding_by_content(outcome: Outcome) -> None:
    f = _only_client(outcome, outcome.scenario.telnet, "insecure-client-login", TELNET_PORT, "tcp")
    assert f["evidence"]["protocol"] == "telnet"


def test_smtp_with_starttls_is_no_finding_without_it_is(outcome: Outcome) -> None:
    assert outcome.client_findings(outcome.scenario.smtp_tls) == [], outcome.report.summary()
    f = _only_client(
        outcome, outcome.scenario.smtp_plain, "insecure-client-general", SMTP_PLAIN_PORT, "tcp"
    )
    assert f["evidence"]["protocol"] == "smtp"


def test_snmp_v2c_is_a_finding_v3_is_not(outcome: Outcome) -> None:
    f = _only_client(outcome, outcome.scenario.snmp_v2c, "insecure-client-general", 161, "udp")
    assert f["evidence"]["protocol"] == "snmp"
    assert outcome.client_findings(outcome.scenario.snmp_v3) == [], outcome.report.summary()


def _inflated_chunks(data: bytes) -> Iterator[bytes]:
    offset = FILE_HEADER.size
    while offset + CHUNK_HEADER.size <= len(data):
        _type, flags, _res, stored, _raw, _crc = CHUNK_HEADER.unpack_from(data, offset)
        payload = data[offset + CHUNK_HEADER.size : offset + CHUNK_HEADER.size + stored]
        yield zlib.decompress(payload) if flags & FLAG_ZLIB else payload
        offset += CHUNK_HEADER.size + stored


def test_no_payload_bytes_reach_any_output(outcome: Outcome) -> None:
    marker = outcome.marker.encode()
    # The marker client was seen and labelled: the bytes did pass through the classifier.
    f = _only_client(outcome, outcome.scenario.marker, "insecure-client-general", HTTP_PORT, "tcp")
    assert f["evidence"]["protocol"] == "http"
    data = outcome.trace.read_bytes()
    chunks = list(_inflated_chunks(data))
    assert len(chunks) >= 3
    assert marker not in data
    assert not any(marker in chunk for chunk in chunks)
    assert outcome.marker not in json.dumps(outcome.report.data)
    assert outcome.marker not in outcome.stderr
    for fmt in ("text", "json"):
        replay = subprocess.run(
            [*RBA, "replay", str(outcome.trace), "--format", fmt],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert replay.returncode in (0, 1), replay.stderr
        assert outcome.marker not in replay.stdout + replay.stderr


def test_replay_reproduces_the_content_findings(outcome: Outcome) -> None:
    replay = subprocess.run(
        [*RBA, "replay", str(outcome.trace), "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    replayed = json.loads(replay.stdout)["findings"]

    def basis(findings: list[Finding]) -> list[tuple[str, int, str]]:
        return sorted(
            (f["rule_id"], f["evidence"]["remote"]["port"], f["evidence"]["basis"])
            for f in findings
            if f["rule_id"] in CLIENT_RULES
        )

    assert basis(replayed) == basis(outcome.report.findings)
    assert ("insecure-client-general", HTTP_PORT, "content") in basis(replayed)
