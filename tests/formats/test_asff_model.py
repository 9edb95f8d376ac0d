"""ASFF checked offline against botocore's service model of Security Hub's
BatchImportFindings (shapes, types, required members, lengths): the batches rba writes,
an EC2 host, a container, more than 100 findings, and archived findings from a diff."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from behavior.formats.asff import MAX_BATCH, asff_findings, render_asff, render_batches
from behavior.interface import Report
from behavior.subjects import ContainerRef, ListenerSubject

botocore_session = pytest.importorskip("botocore.session", reason="botocore (dev extra) absent")
from botocore.validate import ParamValidator  # noqa: E402


@pytest.fixture(scope="module")
def findings_shape() -> Any:
    model = botocore_session.get_session().get_service_model("securityhub")
    return model.operation_model("BatchImportFindings").input_shape


def _errors(batch: list[dict[str, Any]], shape: Any) -> str:
    report = ParamValidator().validate({"Findings": batch}, shape)
    return report.generate_report() if report.has_errors() else ""


def _batches(text: str) -> list[list[dict[str, Any]]]:
    return [json.loads(line) for line in text.splitlines()]


def test_every_batch_is_a_valid_batch_import_findings_call(
    suppressed_report: Report, findings_shape: Any
) -> None:
    (batch,) = _batches(render_asff(suppressed_report, "123456789012", "eu-west-1"))
    assert len(batch) == 7
    assert _errors(batch, findings_shape) == ""


def test_the_model_catches_what_security_hub_rejects(report: Report, findings_shape: Any) -> None:
    (finding, *_) = asff_findings(report)
    broken = dict(finding, Severity={"Label": "SEVERE"}, Resources="host")
    del broken["AwsAccountId"]
    errors = _errors([broken], findings_shape)
    assert "AwsAccountId" in errors and "Resources" in errors


def test_more_than_100_findings_make_batches_of_at_most_100(
    report: Report, findings_shape: Any
) -> None:
    many = tuple(
        dataclasses.replace(f, fingerprint=f"{i:04d}{f.fingerprint}")
        for i in range(40)
        for f in report.findings
    )
    text = render_asff(Report(run=report.run, findings=many))
    batches = _batches(text)
    assert [len(b) for b in batches] == [MAX_BATCH, MAX_BATCH, 80]
    assert len({f["Id"] for b in batches for f in b}) == 280
    for batch in batches:
        assert _errors(batch, findings_shape) == ""
    assert render_batches([]) == "[]\n"


def test_on_ec2_the_resource_is_the_instance(report: Report, findings_shape: Any) -> None:
    run = dataclasses.replace(
        report.run, instance_id="i-0abc1234def567890", ips=("198.51.100.7", "2001:db8::7")
    )
    findings = asff_findings(Report(run=run, findings=report.findings), "123456789012", "eu-west-1")
    for finding in findings:
        (host, *_) = finding["Resources"]
        assert host["Type"] == "AwsEc2Instance"
        assert host["Id"] == "arn:aws:ec2:eu-west-1:123456789012:instance/i-0abc1234def567890"
        assert host["Details"]["AwsEc2Instance"]["IpV4Addresses"] == ["198.51.100.7"]
    assert _errors(findings, findings_shape) == ""


def test_a_container_is_a_resource(report: Report, findings_shape: Any) -> None:
    listener = next(f for f in report.findings if isinstance(f.subject, ListenerSubject))
    assert isinstance(listener.subject, ListenerSubject)
    boxed = ContainerRef("4f3c2b1a", "podman", "web", "localhost/web:1")
    process = dataclasses.replace(listener.subject.process, container=boxed)
    subject = dataclasses.replace(listener.subject, process=process)
    (finding,) = asff_findings(
        Report(run=report.run, findings=(dataclasses.replace(listener, subject=subject),))
    )
    container = finding["Resources"][1]
    assert container["Type"] == "Container" and container["Id"] == "4f3c2b1a"
    assert container["Details"]["Container"]["ImageName"] == "localhost/web:1"
    assert _errors([finding], findings_shape) == ""


def test_ids_and_times_let_security_hub_update_in_place(report: Report) -> None:
    later = dataclasses.replace(
        report.run, id="20991231T000000Z-ffffff", ended_at="2099-12-31T00:00:00.000Z"
    )
    first = asff_findings(report)
    again = asff_findings(Report(run=later, findings=report.findings))
    assert [f["Id"] for f in first] == [f["Id"] for f in again]
    assert all(f["Id"].endswith(x.fingerprint) for f, x in zip(first, report.findings))
    assert all(a["UpdatedAt"] > f["UpdatedAt"] for f, a in zip(first, again))
    earliest = {f.fingerprint: "2001-01-01T00:00:00.000Z" for f in report.findings[:1]}
    gone = report.findings[1:2]
    (kept, *_rest, archived) = asff_findings(
        Report(run=later, findings=report.findings[:1]), first_observed=earliest, resolved=gone
    )
    assert kept["FirstObservedAt"] == kept["CreatedAt"] == "2001-01-01T00:00:00.000Z"
    assert archived["RecordState"] == "ARCHIVED" and archived["Workflow"]["Status"] == "RESOLVED"
    assert archived["Id"] == first[1]["Id"]
