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
from behavior.report import Report

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
    assert all(u.startswith("20231114T221320Z-f0f0f0/") for u in uids)


def test_jsonl_holds_the_same_events_one_per_line(report: Report) -> None:
    lines = render(Format.OCSF_JSONL, report).splitlines()
    assert [json.loads(line) for line in lines] == json.loads(render(Format.OCSF, report))


def test_empty_report(report: Report) -> None:
    empty = Report(run=report.run, findings=())
    assert render(Format.OCSF, empty) == "[]\n" and render(Format.OCSF_JSONL, empty) == ""
