"""AWS Security Finding Format (ASFF, SchemaVersion 2018-10-08): a JSON array of findings
ready for Security Hub's BatchImportFindings.

Every required attribute is filled and every length limit respected (Title <= 256,
Description <= 1024, Remediation text <= 512, at most 50 ProductFields with keys <= 128
and values <= 2048). Without an account id and region the output uses the documented
placeholders :data:`PLACEHOLDER_ACCOUNT_ID` and :data:`PLACEHOLDER_REGION`. Suppressed
findings keep their place with ``Workflow.Status`` SUPPRESSED and the reason in ``Note``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from behavior.formats.ecosystem import (
    PRODUCT_NAME,
    PRODUCT_VENDOR,
    Entry,
    entries,
    finding_uid,
    flatten,
)
from behavior.interface import Report, Severity

SCHEMA_VERSION = "2018-10-08"
FINDING_TYPE = (
    "Software and Configuration Checks/AWS Security Best Practices/Runtime Behavior Analysis"
)
PLACEHOLDER_ACCOUNT_ID = "000000000000"
PLACEHOLDER_REGION = "us-east-1"

# The attributes Security Hub requires on every finding.
REQUIRED = (
    "AwsAccountId",
    "CreatedAt",
    "Description",
    "GeneratorId",
    "Id",
    "ProductArn",
    "Resources",
    "SchemaVersion",
    "Severity",
    "Title",
    "Types",
    "UpdatedAt",
)
MAX_TITLE = 256
MAX_DESCRIPTION = 1024
MAX_TEXT = 512  # Remediation.Recommendation.Text, Note.Text
MAX_ID = 512
MAX_FIELDS = 50
MAX_FIELD_KEY = 128
MAX_FIELD_VALUE = 2048

# Security Hub's bands: 0 INFORMATIONAL, 1-39 LOW, 40-69 MEDIUM, 70-89 HIGH, 90-100
# CRITICAL. Inspector's numeric severity times ten, kept inside its band (High 9 -> 80).
NORMALIZED = {Severity.INFORMATIONAL: 0, Severity.LOW: 30, Severity.MEDIUM: 60, Severity.HIGH: 80}
LABELS = {
    Severity.INFORMATIONAL: "INFORMATIONAL",
    Severity.LOW: "LOW",
    Severity.MEDIUM: "MEDIUM",
    Severity.HIGH: "HIGH",
}

_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


def check_account_id(value: str) -> str:
    """``value`` if it is a 12-digit AWS account id, else ValueError."""
    if not _ACCOUNT.match(value):
        raise ValueError(f"AWS account id {value!r} must be 12 digits")
    return value


def check_region(value: str) -> str:
    """``value`` if it looks like an AWS region (eu-west-1, us-gov-east-1), else ValueError."""
    if not _REGION.match(value):
        raise ValueError(f"AWS region {value!r} is not a region name such as eu-west-1")
    return value


def render_asff(
    report: Report,
    account_id: str = PLACEHOLDER_ACCOUNT_ID,
    region: str = PLACEHOLDER_REGION,
) -> str:
    """All findings (suppressed ones included) as a JSON array of ASFF findings."""
    findings = asff_findings(report, account_id, region)
    return json.dumps(findings, indent=2, ensure_ascii=False) + "\n"


def asff_findings(
    report: Report,
    account_id: str = PLACEHOLDER_ACCOUNT_ID,
    region: str = PLACEHOLDER_REGION,
) -> list[dict[str, Any]]:
    """The ASFF findings of ``report``, active findings first, then the suppressed ones."""
    return [_finding(report, entry, account_id, region) for entry in entries(report)]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finding(report: Report, entry: Entry, account_id: str, region: str) -> dict[str, Any]:
    finding = entry.finding
    host = report.run.host or "unknown"
    created = report.run.ended_at
    out: dict[str, Any] = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": f"rba/{finding.rule_id}/{finding_uid(report, finding)}",
        "ProductArn": f"arn:aws:securityhub:{region}:{account_id}:product/{account_id}/default",
        "ProductName": PRODUCT_NAME,
        "CompanyName": PRODUCT_VENDOR,
        "GeneratorId": f"rba/{finding.rule_id}",
        "AwsAccountId": account_id,
        "Region": region,
        "Types": [FINDING_TYPE],
        "FirstObservedAt": finding.first_seen,
        "LastObservedAt": finding.last_seen,
        "CreatedAt": created,
        "UpdatedAt": created,
        "Severity": {
            "Label": LABELS[finding.severity],
            "Normalized": NORMALIZED[finding.severity],
            "Original": finding.severity.value,
        },
        "Title": _clip(finding.title, MAX_TITLE),
        "Description": _clip(finding.description, MAX_DESCRIPTION),
        "Remediation": {"Recommendation": {"Text": _clip(finding.recommendation, MAX_TEXT)}},
        "ProductFields": _product_fields(report, entry),
        "Resources": [
            {
                "Type": "Other",
                "Id": _clip(host, MAX_ID),
                "Partition": "aws",
                "Region": region,
                "Details": {"Other": {"hostname": _clip(host, 1024)}},
            }
        ],
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "SUPPRESSED" if entry.suppressed else "NEW"},
    }
    if entry.note():
        out["Note"] = {
            "Text": _clip(entry.note(), MAX_TEXT),
            "UpdatedBy": "rba",
            "UpdatedAt": created,
        }
    out |= _process_and_network(finding.evidence)
    return out


def _product_fields(report: Report, entry: Entry) -> dict[str, str]:
    finding = entry.finding
    fields = {
        "rba/rule_id": finding.rule_id,
        "rba/run_id": report.run.id,
        "rba/version": report.run.rba_version,
        "rba/count": str(finding.count),
    }
    if entry.suppression is not None:
        fields["rba/suppression/reason"] = entry.suppression.reason
        fields["rba/suppression/source"] = entry.suppression.source
    evidence = {
        f"rba/evidence/{k}"[:MAX_FIELD_KEY]: v for k, v in flatten(finding.evidence).items()
    }
    room = MAX_FIELDS - len(fields) - 1  # one left for the truncation marker
    items = list(evidence.items())
    fields |= dict(items[:room] if len(items) > room + 1 else items)
    if len(items) > room + 1:
        fields["rba/evidence_truncated"] = f"{len(items) - room} more in the JSON report"
    return {k: _clip(v, MAX_FIELD_VALUE) for k, v in fields.items()}


def _process_and_network(ev: Mapping[str, Any]) -> dict[str, Any]:
    """ASFF's Process and Network objects, where the evidence has them."""
    out: dict[str, Any] = {}
    nested = ev.get("process")
    proc: Mapping[str, Any] = nested if isinstance(nested, Mapping) else ev
    if isinstance(proc.get("pid"), int) and proc.get("pid"):
        process: dict[str, Any] = {"Pid": proc["pid"]}
        if proc.get("exe"):
            process["Path"] = _clip(str(proc["exe"]), 512)
        if proc.get("comm") or proc.get("exe"):
            process["Name"] = _clip(str(proc.get("comm") or proc["exe"]).rsplit("/", 1)[-1], 128)
        out["Process"] = process
    remote = ev.get("remote")
    if isinstance(remote, Mapping) and remote.get("address"):
        address = str(remote["address"])
        key = "DestinationIpV6" if ":" in address else "DestinationIpV4"
        out["Network"] = {
            "Direction": "OUT",
            "Protocol": str(ev.get("transport", "tcp")).upper(),
            key: address,
            "DestinationPort": remote.get("port"),
        }
    elif isinstance(ev.get("port"), int) and "bind_addresses" in ev:
        out["Network"] = {"Direction": "IN", "Protocol": "TCP", "DestinationPort": ev["port"]}
    return out
