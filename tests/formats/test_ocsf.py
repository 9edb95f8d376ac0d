"""OCSF: every event validated against the OCSF 1.5.0 JSON Schema (bundled in the
ocsf-json-schema package, no network), the class mapping, and the fields consumers use."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from behavior.formats import Format, render
from behavior.formats.ocsf import ocsf_events
from behavior.interface import Report

Validator = Callable[[dict[str, Any]], list[str]]
BINARY = {"software-without-dep", "software-without-stack-cookies"}


def _by_rule(report: Report) -> dict[str, dict[str, Any]]:
    return {e["finding_info"]["analytic"]["uid"]: e for e in ocsf_events(report)}


def test_every_event_validates_against_the_schema(report: Report, ocsf_errors: Validator) -> None:
    events = json.loads(render(Format.OCSF, report))
    assert len(events) == len(report.findings) == 7
    for event in events:
        assert ocsf_errors(event) == [], event["finding_info"]["uid"]


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda e: e.pop("finding_info"), "'finding_info' is a required property"),
        (lambda e: e.update(severity_id=7), "severity_id"),
        (lambda e: e.update(rba_extra=1), "Additional properties"),
        (lambda e: e["metadata"].pop("product"), "'product' is a required property"),
        (lambda e: e.update(time="yesterday"), "is not of type 'integer'"),
    ],
)
def test_the_validator_rejects_broken_events(
    report: Report, ocsf_errors: Validator, mutation: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    event = copy.deepcopy(ocsf_events(report)[0])
    mutation(event)
    assert any(expected in err for err in ocsf_errors(event))


def test_class_mapping_behaviour_2004_binary_2002_with_cwe_693(report: Report) -> None:
    for rule, event in _by_rule(report).items():
        if rule in BINARY:
            assert (event["class_uid"], event["type_uid"]) == (2002, 200201)
            (vuln,) = event["vulnerabilities"]
            assert vuln["cwe"]["uid"] == "CWE-693"
            assert vuln["affected_code"][0]["file"]["path"] == "/opt/app/bin/app"
            assert vuln["remediation"]["desc"].startswith("Rebuild")
        else:
            assert (event["class_uid"], event["type_uid"]) == (2004, 200401)
            assert event["remediation"]["desc"]
            assert event["evidences"]
        assert event["category_uid"] == 2 and event["activity_id"] == 1


def test_fields_consumers_rely_on(report: Report) -> None:
    events = _by_rule(report)
    login = events["insecure-client-login"]
    assert login["metadata"]["product"]["name"] == "rba"
    assert login["metadata"]["version"] == "1.5.0"
    info = login["finding_info"]
    assert info["title"] == "Insecure client protocols (login)"
    assert info["desc"].startswith("A process on this host opened")
    assert "insecure-client-login" in info["types"]
    assert info["first_seen_time"] == 1700000005200 and info["last_seen_time"] == 1700000031000
    assert login["severity_id"] == 3 and login["count"] == 3
    assert login["device"]["hostname"] == "testhost"
    assert login["resources"][0] == {
        "type": "Host",
        "uid": "testhost",
        "name": "testhost",
        "hostname": "testhost",
    }
    (evidence,) = login["evidences"]
    assert evidence["process"]["pid"] == 20
    assert evidence["process"]["file"]["path"] == "/usr/bin/telnet"
    assert evidence["dst_endpoint"] == {"ip": "198.51.100.7", "port": 23, "svc_name": "telnet"}
    assert evidence["connection_info"]["direction"] == "Outbound"
    assert login["unmapped"]["rba"]["evidence"]["remote"]["port"] == 23
    severity_ids = {r: e["severity_id"] for r, e in events.items()}
    assert severity_ids["root-process-insecure-permissions"] == 4  # High
    assert severity_ids["insecure-client-general"] == 2  # Low
    assert severity_ids["unused-listening-port"] == 1  # Informational
    listener = events["insecure-server-protocol"]["evidences"][0]
    assert listener["connection_info"]["direction"] == "Inbound"
    assert listener["dst_endpoint"] == {"ip": "0.0.0.0", "port": 21}
    root = events["root-process-insecure-permissions"]["evidences"][0]
    assert root["file"]["path"] == "/opt/tool/bin/tool" and root["process"]["pid"] == 40


def test_uids_are_unique_and_stable(report: Report) -> None:
    uids = [e["finding_info"]["uid"] for e in ocsf_events(report)]
    assert len(set(uids)) == len(uids)
    assert uids == [e["finding_info"]["uid"] for e in ocsf_events(report)]
    assert uids == [f.fingerprint for f in report.findings]
    metadata = [e["metadata"]["uid"] for e in ocsf_events(report)]
    assert metadata == [f"20231114T221320Z-f0f0f0/{u}" for u in uids]


def test_jsonl_holds_the_same_events_one_per_line(report: Report) -> None:
    lines = render(Format.OCSF_JSONL, report).splitlines()
    assert [json.loads(line) for line in lines] == json.loads(render(Format.OCSF, report))


def test_empty_report(report: Report) -> None:
    empty = Report(run=report.run, findings=())
    assert render(Format.OCSF, empty) == "[]\n" and render(Format.OCSF_JSONL, empty) == ""


T0 = 1_700_000_000


def _rule_finding(rule_id: str, evidence: dict[str, Any]) -> Any:
    from behavior.rules import RULES
    from behavior.rules.interface import finding
    from behavior.subjects import subject_from_evidence

    info = next(r.info for r in RULES if r.info.id == rule_id)
    subject = subject_from_evidence(rule_id, evidence)
    assert subject is not None
    details = {k: v for k, v in evidence.items() if k not in subject.evidence()}
    made = finding(info, subject, details, count=2, first_ns=T0 * 10**9, last_ns=(T0 + 9) * 10**9)
    assert made.evidence == evidence  # the subject renders the evidence it was read from
    return made


# Evidence shapes of the rules the sample report does not produce (see the rule modules).
OTHER_SHAPES = [
    (
        "insecure-login-accepted",
        {"protocol": "telnet", "server": "inetd", "server_pid": 300, "program": "/bin/login",
         "pids": [301], "basis": "program", "user": "alice", "tty": "pts/3",
         "remote_host": "198.51.100.20"},
    ),
    (
        "insecure-login-accepted",
        {"protocol": "rsh", "server": "in.rshd", "server_pid": 310, "program": "/bin/sh",
         "pids": [311], "basis": "program"},
    ),
    (
        "insecure-client-general",
        {"process": {"pid": 9, "exe": "", "cmdline": "", "comm": "snmpget", "user": "",
                     "uid": 0}, "pids": [9], "remote": {"address": "2001:db8::7", "port": 161},
         "transport": "udp", "protocol": "snmp", "basis": "port", "netns": 1, "sources": ["poll"]},
    ),
    (
        "software-without-relro",
        {"path": "/usr/lib/x86_64-linux-gnu/libold.so.1", "package": "libold1", "format": "elf",
         "processes": [], "process_count": 0, "relro": "partial", "reason": "partial RELRO"},
    ),
    (
        "software-without-aslr",
        {"path": "C:/tools/app.exe", "package": "unpackaged", "format": "pe",
         "processes": [{"pid": 5, "exe": "/usr/bin/wine"}], "process_count": 1},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("rule_id", "evidence"), OTHER_SHAPES)
def test_other_rule_shapes_validate_in_ocsf_and_asff(
    report: Report, ocsf_errors: Validator, rule_id: str, evidence: dict[str, Any]
) -> None:
    from behavior.formats.asff import asff_findings
    from tests.formats.test_asff import _check_limits

    single = Report(run=report.run, findings=(_rule_finding(rule_id, evidence),))
    (event,) = ocsf_events(single)
    assert ocsf_errors(event) == []
    assert event["class_uid"] == (2002 if rule_id.startswith("software-") else 2004)
    (asff,) = asff_findings(single)
    _check_limits(asff)


def test_device_package_and_container_for_a_lake(report: Report, ocsf_errors: Validator) -> None:
    import dataclasses

    from behavior.subjects import ContainerRef, ListenerSubject

    run = dataclasses.replace(
        report.run,
        machine_id="3d1219c7c4c5404aaa1f6d2a48adfda4",
        os_name="Debian GNU/Linux",
        os_version="12",
        ips=("198.51.100.7", "2001:db8::7"),
    )
    listener = next(f for f in report.findings if isinstance(f.subject, ListenerSubject))
    assert isinstance(listener.subject, ListenerSubject)
    boxed = ContainerRef("4f3c2b1a", "podman", "web", "localhost/web:1")
    subject = dataclasses.replace(
        listener.subject, process=dataclasses.replace(listener.subject.process, container=boxed)
    )
    findings = (*report.findings, dataclasses.replace(listener, subject=subject))
    events = ocsf_events(Report(run=run, findings=findings))
    for event in events:
        assert ocsf_errors(event) == []
        device = event["device"]
        assert device["uid"] == run.machine_id and device["hostname"] == "testhost"
        assert device["os"] == {"name": "Debian GNU/Linux", "type_id": 200, "type": "Linux",
                                "version": "12"}  # fmt: skip
        assert [i["ip"] for i in device["network_interfaces"]] == list(run.ips)
    [dep] = [e for e in events if e["finding_info"]["analytic"]["uid"] == "software-without-dep"]
    assert dep["vulnerabilities"][0]["affected_packages"][0]["name"] == "acme-app"
    assert events[-1]["evidences"][0]["container"] == {
        "uid": "4f3c2b1a", "runtime": "podman", "name": "web",
        "image": {"name": "localhost/web:1", "uid": "localhost/web:1"},
    }  # fmt: skip
    assert all(e["finding_info"]["uid"] == f.fingerprint for e, f in zip(events, findings))
