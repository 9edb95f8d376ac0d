"""The network rules with synthetic events: clients, listeners, servers, logins."""

from __future__ import annotations

from behavior.rules import (
    insecure_client_general,
    insecure_client_login,
    insecure_login_accepted,
    insecure_server_protocol,
    unused_listening_port,
)
from probes.events import Flag, Kind, Source, StringTable
from tests.behavior.conftest import Evaluate
from tests.behavior.synth import SEC, T0, accept, batch, connect, event, listen

LOGIN = insecure_client_login.RULE
GENERAL = insecure_client_general.RULE
UNUSED = unused_listening_port.RULE
SERVER = insecure_server_protocol.RULE


def _exec(strings: StringTable, pid: int, exe: str, cmdline: str = "", **kw: object):  # type: ignore[no-untyped-def]
    comm = exe.rsplit("/", 1)[-1][:15]
    return event(
        strings, Kind.EXEC, pid=pid, ppid=1, comm=comm, str_a=exe, str_b=cmdline or exe, **kw
    )


def test_telnet_client_finding_with_evidence(strings: StringTable, evaluate: Evaluate) -> None:
    events = batch(
        _exec(strings, 42, "/usr/bin/inetutils-telnet", "telnet 198.51.100.2", uid=1000),
        connect(strings, 42, "198.51.100.2", 23, comm="telnet", t=1),
        connect(strings, 42, "198.51.100.2", 23, comm="telnet", t=3),
    )
    [f] = evaluate(LOGIN, events).findings
    assert (f.rule_id, f.severity.value, f.count) == ("insecure-client-login", "Medium", 2)
    ev = f.evidence
    assert ev["process"]["pid"] == 42
    assert ev["process"]["exe"] == "/usr/bin/inetutils-telnet"
    assert ev["process"]["cmdline"] == "telnet 198.51.100.2"
    assert ev["process"]["user"] == "alice"
    assert ev["remote"] == {"address": "198.51.100.2", "port": 23}
    assert (ev["protocol"], ev["basis"], ev["transport"]) == ("telnet", "port", "tcp")
    assert f.first_seen == "2023-11-14T22:13:21.000Z"
    assert f.last_seen == "2023-11-14T22:13:23.000Z"
    assert evaluate(GENERAL, events).findings == ()


def test_loopback_peers_are_never_client_findings(strings: StringTable, evaluate: Evaluate) -> None:
    events = batch(
        connect(strings, 1, "127.0.0.1", 23),
        connect(strings, 1, "127.8.9.10", 21),
        connect(strings, 1, "::1", 80),
        connect(strings, 1, "::ffff:127.0.0.1", 110),
        connect(strings, 1, "0.0.0.0", 80),
        connect(strings, 1, "::", 80),
    )
    assert evaluate(LOGIN, events).findings == ()
    assert evaluate(GENERAL, events).findings == ()


def test_https_and_ssh_are_not_findings(strings: StringTable, evaluate: Evaluate) -> None:
    events = batch(connect(strings, 1, "192.0.2.7", 443), connect(strings, 1, "192.0.2.7", 22))
    assert evaluate(LOGIN, events).findings == ()
    assert evaluate(GENERAL, events).findings == ()


def test_general_protocols_by_port(strings: StringTable, evaluate: Evaluate) -> None:
    events = batch(
        connect(strings, 1, "192.0.2.7", 80),
        connect(strings, 1, "2001:db8::7", 6379),
        event(strings, Kind.UDP_SEND, pid=2, daddr="192.0.2.8", dport=161, comm="snmpget"),
        connect(strings, 3, "192.0.2.9", 5903),
    )
    found = {
        (f.evidence["protocol"], f.evidence["transport"])
        for f in evaluate(GENERAL, events).findings
    }
    assert found == {("http", "tcp"), ("redis", "tcp"), ("snmp", "udp"), ("vnc", "tcp")}


def test_one_finding_per_program_and_remote(strings: StringTable, evaluate: Evaluate) -> None:
    # Two runs of the same ftp client to the same server: one finding, both pids, count 2.
    events = batch(
        _exec(strings, 10, "/usr/bin/tnftp"),
        connect(strings, 10, "192.0.2.1", 21, t=1),
        _exec(strings, 11, "/usr/bin/tnftp", t=2),
        connect(strings, 11, "192.0.2.1", 21, t=3),
        connect(strings, 11, "192.0.2.2", 21, t=4),
    )
    findings = evaluate(LOGIN, events).findings
    assert len(findings) == 2
    first = next(f for f in findings if f.evidence["remote"]["address"] == "192.0.2.1")
    assert first.count == 2 and first.evidence["pids"] == [10, 11]


def test_login_client_program_on_unusual_port(strings: StringTable, evaluate: Evaluate) -> None:
    events = batch(
        _exec(strings, 5, "/usr/bin/inetutils-telnet"),
        connect(strings, 5, "192.0.2.1", 2323, comm="telnet"),
    )
    [f] = evaluate(LOGIN, events).findings
    assert (f.evidence["protocol"], f.evidence["basis"]) == ("telnet", "program")


def test_polling_only_client_rules_state_their_limits(
    strings: StringTable, evaluate: Evaluate
) -> None:
    events = connect(strings, 1, "192.0.2.7", 23, source=Source.POLL)
    result = evaluate(LOGIN, events, sources=("poll",))
    assert len(result.findings) == 1 and "polling only" in result.note
    assert evaluate(LOGIN, events, sources=("ebpf", "poll")).note == ""


# --- listeners ---------------------------------------------------------------------


def test_unused_listener_is_flagged_with_evidence(strings: StringTable, evaluate: Evaluate) -> None:
    events = batch(
        _exec(strings, 7, "/usr/bin/python3"), listen(strings, 7, "10.0.0.1", 40117, t=5)
    )
    [f] = evaluate(UNUSED, events).findings
    ev = f.evidence
    assert (f.severity.value, ev["port"], ev["accepted"]) == ("Informational", 40117, 0)
    assert ev["bind_addresses"] == ["10.0.0.1"] and ev["loopback_only"] is False
    assert ev["process"]["pid"] == 7 and ev["process"]["exe"] == "/usr/bin/python3"
    assert (ev["listening_s"], ev["window_s"], ev["confidence"]) == (55.0, 60.0, "normal")
    assert ev["sources"] == ["ebpf"]


def test_listener_with_one_accepted_connection_is_not_flagged(
    strings: StringTable, evaluate: Evaluate
) -> None:
    events = batch(
        listen(strings, 7, "0.0.0.0", 40118),
        accept(strings, "10.0.0.1", 40118, "10.0.0.2", t=3),
    )
    assert evaluate(UNUSED, events).findings == ()


def test_listener_shorter_than_half_the_window_is_not_judged(
    strings: StringTable, evaluate: Evaluate
) -> None:
    assert evaluate(UNUSED, listen(strings, 7, "0.0.0.0", 9000, t=31)).findings == ()
    assert len(evaluate(UNUSED, listen(strings, 7, "0.0.0.0", 9000, t=30)).findings) == 1


def test_listener_in_another_namespace_is_a_service_of_this_host(
    strings: StringTable, evaluate: Evaluate
) -> None:
    """A container's listener is judged too (issue 14); its process names the container."""
    [found] = evaluate(UNUSED, listen(strings, 7, "0.0.0.0", 9000, netns=77)).findings
    assert found.evidence["port"] == 9000


def test_polling_only_unused_verdict_has_lower_confidence(
    strings: StringTable, evaluate: Evaluate
) -> None:
    result = evaluate(
        UNUSED, listen(strings, 7, "0.0.0.0", 9000, source=Source.POLL), sources=("poll",)
    )
    [f] = result.findings
    assert f.evidence["confidence"] == "lower" and "lower confidence" in result.note


def test_insecure_server_by_port_and_by_program(strings: StringTable, evaluate: Evaluate) -> None:
    events = batch(
        listen(strings, 7, "0.0.0.0", 23, comm="inetd"),
        _exec(strings, 8, "/usr/sbin/vsftpd", "/usr/sbin/vsftpd /etc/x.conf"),
        listen(strings, 8, "10.0.0.1", 2121, comm="vsftpd"),
        listen(strings, 9, "0.0.0.0", 443, comm="nginx"),
        accept(strings, "10.0.0.1", 2121, "10.0.0.2", t=5),
    )
    found = {f.evidence["port"]: f.evidence for f in evaluate(SERVER, events).findings}
    assert set(found) == {23, 2121}
    assert (found[23]["protocol"], found[23]["basis"], found[23]["usage"]) == (
        "telnet",
        "port",
        "supported",
    )
    assert (found[2121]["protocol"], found[2121]["basis"]) == ("ftp", "program")
    assert (found[2121]["usage"], found[2121]["accepted"]) == ("used", 1)


def test_busybox_telnetd_is_known_by_its_applet(strings: StringTable, evaluate: Evaluate) -> None:
    events = batch(
        _exec(strings, 8, "/usr/bin/busybox", "busybox telnetd -F -p 2323"),
        listen(strings, 8, "0.0.0.0", 2323, comm="busybox"),
    )
    [f] = evaluate(SERVER, events).findings
    assert (f.evidence["protocol"], f.evidence["basis"]) == ("telnet", "program")


def test_login_accepted_over_telnet(strings: StringTable, evaluate: Evaluate) -> None:
    events = batch(
        event(
            strings, Kind.PROC_SNAPSHOT, pid=50, ppid=1, comm="telnetd", str_a="/usr/sbin/telnetd"
        ),
        event(strings, Kind.EXEC, pid=51, ppid=50, comm="login", str_a="/bin/login", t=2),
        event(strings, Kind.LOGIN, pid=51, str_a="alice", str_b="pts/3", str_c="198.51.100.2", t=3),
    )
    [f] = evaluate(insecure_login_accepted.RULE, events).findings
    ev = f.evidence
    assert (ev["protocol"], ev["server_pid"], ev["pids"]) == ("telnet", 50, [51])
    assert (ev["user"], ev["remote_host"]) == ("alice", "198.51.100.2")
    assert f.first_seen.endswith(":22.000Z") and T0 % SEC == 0


def test_login_accepted_from_a_utmp_session_under_telnetd(
    strings: StringTable, evaluate: Evaluate
) -> None:
    # Polling: the login program was already running when first seen (a snapshot), the
    # utmp session names its pid; its parent is telnetd.
    snap = {"kind": Kind.PROC_SNAPSHOT, "flags": Flag.SNAPSHOT, "source": Source.POLL}
    events = batch(
        event(strings, pid=60, ppid=1, comm="telnetd", str_a="/usr/sbin/telnetd", **snap),
        event(strings, pid=61, ppid=60, comm="login", str_a="/bin/login", **snap),
        event(strings, pid=70, ppid=1, comm="sshd", str_a="/usr/sbin/sshd", **snap),
        event(strings, pid=71, ppid=70, comm="bash", str_a="/bin/bash", **snap),
        event(strings, Kind.LOGIN, pid=61, str_a="bob", str_b="pts/1", str_c="10.1.1.1", t=1),
        event(strings, Kind.LOGIN, pid=71, str_a="eve", str_b="pts/2", str_c="10.1.1.2", t=1),
    )
    [f] = evaluate(insecure_login_accepted.RULE, events, sources=("poll",)).findings
    assert (f.evidence["protocol"], f.evidence["pids"], f.evidence["user"]) == (
        "telnet",
        [61],
        "bob",
    )


def test_unattributed_socket_joins_the_ports_known_owner(
    strings: StringTable, evaluate: Evaluate
) -> None:
    events = batch(
        listen(strings, 7, "0.0.0.0", 2200, comm="sshd"),
        listen(strings, 0, "::", 2200, comm="", source=Source.POLL),
    )
    [f] = evaluate(UNUSED, events).findings
    assert f.evidence["bind_addresses"] == ["0.0.0.0", "::"]
    assert f.evidence["process"]["pid"] == 7
