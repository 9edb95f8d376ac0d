"""ASFF: every required attribute, Security Hub's severity bands and length limits, the
account and region options with their documented placeholders."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from behavior.formats import Format, render
from behavior.formats.asff import (
    FINDING_TYPE,
    MAX_DESCRIPTION,
    MAX_FIELD_KEY,
    MAX_FIELD_VALUE,
    MAX_FIELDS,
    MAX_TEXT,
    MAX_TITLE,
    PLACEHOLDER_ACCOUNT_ID,
    PLACEHOLDER_REGION,
    REQUIRED,
    asff_findings,
    check_account_id,
    check_region,
)
from behavior.interface import Report, Severity
from tests.conftest import run_rba

# Security Hub's bands for Severity.Normalized.
BANDS = {
    "INFORMATIONAL": range(0, 1),
    "LOW": range(1, 40),
    "MEDIUM": range(40, 70),
    "HIGH": range(70, 90),
    "CRITICAL": range(90, 101),
}


def _check_limits(finding: dict[str, Any]) -> None:
    for key in REQUIRED:
        assert finding.get(key) not in (None, "", [], {}), key
    assert len(finding["Title"]) <= MAX_TITLE
    assert len(finding["Description"]) <= MAX_DESCRIPTION
    assert len(finding["Remediation"]["Recommendation"]["Text"]) <= MAX_TEXT
    assert len(finding.get("Note", {}).get("Text", "")) <= MAX_TEXT
    fields = finding["ProductFields"]
    assert len(fields) <= MAX_FIELDS
    for key, value in fields.items():
        assert isinstance(value, str) and len(value) <= MAX_FIELD_VALUE
        assert len(key) <= MAX_FIELD_KEY
    assert len(finding["Id"]) <= 512 and len(finding["GeneratorId"]) <= 512
    assert finding["Severity"]["Normalized"] in BANDS[finding["Severity"]["Label"]]
    for resource in finding["Resources"]:
        assert resource["Type"] and resource["Id"]


def test_required_attributes_and_limits_on_every_finding(report: Report) -> None:
    findings = json.loads(render(Format.ASFF, report))
    assert len(findings) == 7
    for finding in findings:
        _check_limits(finding)
        assert finding["SchemaVersion"] == "2018-10-08"
        assert finding["Types"] == [FINDING_TYPE]
        assert finding["Resources"][0]["Id"] == "testhost"
        assert finding["ProductFields"]["rba/rule_id"] == finding["GeneratorId"][4:]
    assert len({f["Id"] for f in findings}) == 7


def test_severity_bands(report: Report) -> None:
    labels = {f["GeneratorId"]: f["Severity"] for f in asff_findings(report)}
    assert labels["rba/root-process-insecure-permissions"] == {
        "Label": "HIGH",
        "Normalized": 80,
        "Original": "High",
    }
    assert labels["rba/insecure-client-login"]["Label"] == "MEDIUM"
    assert labels["rba/insecure-client-general"]["Normalized"] == 30
    assert labels["rba/unused-listening-port"]["Label"] == "INFORMATIONAL"


def test_evidence_in_product_fields_process_and_network(report: Report) -> None:
    login = next(f for f in asff_findings(report) if f["GeneratorId"].endswith("client-login"))
    fields = login["ProductFields"]
    assert fields["rba/evidence/remote.address"] == "198.51.100.7"
    assert fields["rba/evidence/remote.port"] == "23"
    assert fields["rba/evidence/process.exe"] == "/usr/bin/telnet"
    assert login["Network"] == {
        "Direction": "OUT",
        "Protocol": "TCP",
        "DestinationIpV4": "198.51.100.7",
        "DestinationPort": 23,
    }
    assert login["Process"] == {"Pid": 20, "Path": "/usr/bin/telnet", "Name": "telnet"}
    assert login["Remediation"]["Recommendation"]["Text"].startswith("Use SSH")
    assert login["FirstObservedAt"] == "2023-11-14T22:13:25.200Z"


def test_limits_hold_for_oversized_findings(report: Report) -> None:
    base = report.findings[0]
    huge = replace(
        base,
        title="T" * 1000,
        description="D" * 5000,
        recommendation="R" * 3000,
        evidence={f"key{i:03d}-" + "k" * 200: "v" * 5000 for i in range(120)},
        severity=Severity.LOW,
    )
    (finding,) = asff_findings(Report(run=report.run, findings=(huge,)))
    _check_limits(finding)
    assert finding["Title"].endswith("…") and len(finding["Title"]) == MAX_TITLE
    assert len(finding["Description"]) == MAX_DESCRIPTION
    assert "rba/evidence_truncated" in finding["ProductFields"]
    # 120 evidence keys: what does not fit beside rba/rule_id, run_id, version, count... is counted
    assert finding["ProductFields"]["rba/evidence_truncated"].startswith("75 more")


def test_placeholders_and_options(report: Report) -> None:
    default = asff_findings(report)[0]
    assert default["AwsAccountId"] == PLACEHOLDER_ACCOUNT_ID == "000000000000"
    assert default["Region"] == PLACEHOLDER_REGION == "us-east-1"
    given = asff_findings(report, "123456789012", "eu-west-3")[0]
    assert given["AwsAccountId"] == "123456789012"
    assert given["ProductArn"] == (
        "arn:aws:securityhub:eu-west-3:123456789012:product/123456789012/default"
    )
    assert given["Resources"][0]["Region"] == "eu-west-3"


@pytest.mark.parametrize("bad", ["12345678901", "1234567890123", "12345678901a", ""])
def test_account_id_must_be_12_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="12 digits"):
        check_account_id(bad)


@pytest.mark.parametrize("good", ["eu-west-1", "us-gov-east-1", "ap-southeast-2"])
def test_region_names(good: str) -> None:
    assert check_region(good) == good
    with pytest.raises(ValueError, match="not a region"):
        check_region(good.upper())


def test_cli_rejects_a_bad_account_id_before_the_window() -> None:
    result = run_rba(
        "assess", "--duration", "1h", "--format", "asff", "--aws-account-id", "42", "--probes",
        "poll",
    )  # fmt: skip
    assert result.returncode == 2
    assert "AWS account id '42' must be 12 digits" in result.stderr
