"""The protocol rules with content labels (PROTO_LABEL events): the label decides over
port and program, and the evidence says ``basis: content``."""

from __future__ import annotations

from typing import Any

from behavior.rules import insecure_client_general, insecure_client_login, insecure_server_protocol
from probes.events import EventArray, Flag, Kind, StringTable
from tests.behavior.conftest import Evaluate
from tests.behavior.synth import accept, batch, connect, event, listen

LOGIN = insecure_client_login.RULE
GENERAL = insecure_client_general.RULE
SERVER = insecure_server_protocol.RULE


def label(
    strings: StringTable, pid: int, remote: str, port: int, text: str, **kw: Any
) -> EventArray:
    """A PROTO_LABEL of ``pid``'s connection to ``remote:port``."""
    kw.setdefault("flags", Flag.ACTIVE)
    kw.setdefault("aux", 6)
    return event(
        strings, Kind.PROTO_LABEL, pid=pid, daddr=remote, dport=port, str_a=text, t=0.5, **kw
    )


def _found(evaluate: Evaluate, events: EventArray) -> set[tuple[str, int, str, str]]:
    return {
        (f.rule_id, f.evidence["remote"]["port"], f.evidence["protocol"], f.evidence["basis"])
        for rule in (LOGIN, GENERAL)
        for f in evaluate(rule, events).findings
    }


def test_tls_on_a_cleartext_port_is_no_finding(strings: StringTable, evaluate: Evaluate) -> None:
    events = batch(
        connect(strings, 1, "192.0.2.7", 80),
        label(strings, 1, "192.0.2.7", 80, "tls"),
        connect(strings, 2, "192.0.2.7", 23, comm="telnet"),
        label(strings, 2, "192.0.2.7", 23, "ssh"),
    )
    assert _found(evaluate, events) == set()


def test_cleartext_on_any_port_is_a_finding(strings: StringTable, evaluate: Evaluate) -> None:
    events = batch(
        connect(strings, 1, "192.0.2.7", 8080),
        label(strings, 1, "192.0.2.7", 8080, "http"),
        connect(strings, 2, "192.0.2.7", 2323),
        label(strings, 2, "192.0.2.7", 2323, "telnet"),
        connect(strings, 3, "192.0.2.7", 443),
        label(strings, 3, "192.0.2.7", 443, "rfb"),
    )
    assert _found(evaluate, events) == {
        ("insecure-client-general", 8080, "http", "content"),
        ("insecure-client-login", 2323, "telnet", "content"),
        ("insecure-client-general", 443, "vnc", "content"),
    }


def test_upgrades_and_snmp_versions(strings: StringTable, evaluate: Evaluate) -> None:
    events = batch(
        connect(strings, 1, "192.0.2.7", 25),
        label(strings, 1, "192.0.2.7", 25, "smtp+starttls"),
        connect(strings, 2, "192.0.2.7", 2526),
        label(strings, 2, "192.0.2.7", 2526, "smtp"),
        event(strings, Kind.UDP_SEND, pid=3, daddr="192.0.2.8", dport=161, comm="snmpget"),
        label(strings, 3, "192.0.2.8", 161, "snmp-v3", aux=17),
        event(strings, Kind.UDP_SEND, pid=4, daddr="192.0.2.8", dport=1161, comm="snmpget"),
        label(strings, 4, "192.0.2.8", 1161, "snmp-v2c", aux=17),
    )
    assert _found(evaluate, events) == {
        ("insecure-client-general", 2526, "smtp", "content"),
        ("insecure-client-general", 1161, "snmp", "content"),
    }


def test_a_label_of_another_connection_does_not_apply(
    strings: StringTable, evaluate: Evaluate
) -> None:
    # Same process, other port; and same endpoint, other process: port basis stays.
    events = batch(
        connect(strings, 1, "192.0.2.7", 80),
        label(strings, 1, "192.0.2.7", 443, "tls"),
        label(strings, 2, "192.0.2.7", 80, "tls"),
        event(strings, Kind.UDP_SEND, pid=3, daddr="192.0.2.8", dport=161, comm="snmpget"),
        label(strings, 3, "192.0.2.8", 161, "snmp-v3"),  # a TCP label: not this UDP send
    )
    assert _found(evaluate, events) == {
        ("insecure-client-general", 80, "http", "port"),
        ("insecure-client-general", 161, "snmp", "port"),
    }


def test_server_labels_decide_for_a_process_with_one_port(
    strings: StringTable, evaluate: Evaluate
) -> None:
    events = batch(
        listen(strings, 7, "10.0.0.1", 80),
        accept(strings, "10.0.0.1", 80, "10.0.0.2", t=1),
        label(strings, 7, "10.0.0.2", 50000, "tls", flags=Flag.PASSIVE),
        listen(strings, 8, "10.0.0.1", 8080),
        label(strings, 8, "10.0.0.2", 50001, "http", flags=Flag.PASSIVE),
        # Two ports in one process: its labels cannot say which port, so port basis.
        listen(strings, 9, "10.0.0.1", 21),
        listen(strings, 9, "10.0.0.1", 990),
        label(strings, 9, "10.0.0.2", 50002, "tls", flags=Flag.PASSIVE),
    )
    found = {
        f.evidence["port"]: (f.evidence["protocol"], f.evidence["basis"])
        for f in evaluate(SERVER, events).findings
    }
    assert found == {8080: ("http", "content"), 21: ("ftp", "port")}


def test_polling_notes_say_content_is_not_seen(strings: StringTable, evaluate: Evaluate) -> None:
    events = connect(strings, 1, "192.0.2.7", 23)
    for rule in (LOGIN, GENERAL, SERVER):
        note = evaluate(rule, events, sources=("poll",)).note
        assert "port and program only" in note
