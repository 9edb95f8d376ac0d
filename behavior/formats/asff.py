"""AWS Security Finding Format (ASFF, SchemaVersion 2018-10-08): findings ready for
Security Hub's BatchImportFindings, in batches of at most :data:`MAX_BATCH` (the API's
limit): one JSON array per line. A report of up to 100 findings is therefore one line
holding one JSON array; a longer one is several lines, each one API call's ``Findings``.

``Id`` is ``rba/RULE/FINGERPRINT``, the same in every run for the same subject on the
same host, so Security Hub updates a finding in place (``UpdatedAt`` is the run's end)
and ``rba diff --format asff`` archives what disappeared (``RecordState`` ARCHIVED).
On EC2 (an instance id in the report, read from DMI) the resource is the
``AwsEc2Instance``; elsewhere ``Other`` with the host name. A process in a container
adds a ``Container`` resource.

Every required attribute is filled and every length limit respected (Title <= 256,
Description <= 1024, Remediation text <= 512, at most 50 ProductFields with keys <= 128
and values <= 2048). Without an account id and region the output uses the documented
placeholders :data:`PLACEHOLDER_ACCOUNT_ID` and :data:`PLACEHOLDER_REGION`. Suppressed
findings keep their place with ``Workflow.Status`` SUPPRESSED and the reason in ``Note``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from behavior.formats.ecosystem import (
    PRODUCT_NAME,
    PRODUCT_VENDOR,
    Entry,
    entries,
    finding_uid,
    flatten,
)
from behavior.interface import Finding, Report, Severity
from behavior.subjects import (
    ConnectionSubject,
    FileSubject,
    ListenerSubject,
    Subject,
    processes_of,
)

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


MAX_BATCH = 100  # BatchImportFindings takes at most 100 findings per call


def render_asff(
    report: Report,
    account_id: str = PLACEHOLDER_ACCOUNT_ID,
    region: str = PLACEHOLDER_REGION,
) -> str:
    """All findings (suppressed ones included) as ASFF batches, one JSON array a line."""
    return render_batches(asff_findings(report, account_id, region))


def render_batches(findings: Sequence[Mapping[str, Any]]) -> str:
    """ASFF findings as lines of JSON arrays of at most MAX_BATCH ("[]" when none)."""
    batches = [findings[i : i + MAX_BATCH] for i in range(0, len(findings), MAX_BATCH)]
    return "".join(
        json.dumps(list(batch), ensure_ascii=False, separators=(",", ":")) + "\n"
        for batch in batches or [[]]
    )


def asff_findings(
    report: Report,
    account_id: str = PLACEHOLDER_ACCOUNT_ID,
    region: str = PLACEHOLDER_REGION,
    *,
    first_observed: Mapping[str, str] | None = None,
    resolved: Sequence[Finding] = (),
) -> list[dict[str, Any]]:
    """The ASFF findings of ``report``: active findings first, then the suppressed ones,
    then ``resolved`` (findings of an earlier run that this one no longer has) archived.
    ``first_observed`` gives, by fingerprint, when an earlier run first saw a finding."""
    seen = first_observed or {}
    out = [_finding(report, entry, account_id, region, seen) for entry in entries(report)]
    for gone in resolved:
        archived = _finding(report, Entry(gone, None, ()), account_id, region, seen)
        archived["RecordState"] = "ARCHIVED"
        archived["Workflow"] = {"Status": "RESOLVED"}
        out.append(archived)
    return out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finding(
    report: Report, entry: Entry, account_id: str, region: str, seen: Mapping[str, str]
) -> dict[str, Any]:
    finding = entry.finding
    updated = report.run.ended_at
    first = seen.get(finding.fingerprint) or finding.first_seen
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
        "FirstObservedAt": first,
        "LastObservedAt": finding.last_seen,
        "CreatedAt": first,
        "UpdatedAt": updated,
        "Severity": {
            "Label": LABELS[finding.severity],
            "Normalized": NORMALIZED[finding.severity],
            "Original": finding.severity.value,
        },
        "Title": _clip(finding.title, MAX_TITLE),
        "Description": _clip(finding.description, MAX_DESCRIPTION),
        "Remediation": {"Recommendation": {"Text": _clip(finding.recommendation, MAX_TEXT)}},
        "ProductFields": _product_fields(report, entry),
        "Resources": _resources(report, finding, account_id, region),
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "SUPPRESSED" if entry.suppressed else "NEW"},
    }
    if entry.note():
        out["Note"] = {
            "Text": _clip(entry.note(), MAX_TEXT),
            "UpdatedBy": "rba",
            "UpdatedAt": updated,
        }
    if finding.subject is not None:
        out |= _process_and_network(finding.subject)
    return out


def _resources(
    report: Report, finding: Finding, account_id: str, region: str
) -> list[dict[str, Any]]:
    """The host (the EC2 instance where the report names one), then any container."""
    run = report.run
    host = run.host or "unknown"
    resource: dict[str, Any]
    if run.instance_id:
        details: dict[str, Any] = {}
        v4 = [ip for ip in run.ips if ":" not in ip]
        v6 = [ip for ip in run.ips if ":" in ip]
        if v4:
            details["IpV4Addresses"] = v4
        if v6:
            details["IpV6Addresses"] = v6
        resource = {
            "Type": "AwsEc2Instance",
            "Id": f"arn:aws:ec2:{region}:{account_id}:instance/{run.instance_id}",
            "Partition": "aws",
            "Region": region,
            "Details": {"AwsEc2Instance": details},
        }
    else:
        resource = {
            "Type": "Other",
            "Id": _clip(host, MAX_ID),
            "Partition": "aws",
            "Region": region,
            "Details": {"Other": {"hostname": _clip(host, 1024)}},
        }
    out = [resource]
    subject = finding.subject
    containers = {p.container for p in processes_of(subject) if p.container} if subject else set()
    for container in sorted(containers, key=lambda c: c.id):
        details = {"ContainerRuntime": container.runtime, "Name": container.name or container.id}
        if container.image:
            details["ImageName"] = _clip(container.image, 1024)
        out.append(
            {
                "Type": "Container",
                "Id": _clip(container.id, MAX_ID),
                "Partition": "aws",
                "Region": region,
                "Details": {"Container": details},
            }
        )
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


def _process_and_network(subject: Subject) -> dict[str, Any]:
    """ASFF's Process and Network objects, where the subject has them."""
    out: dict[str, Any] = {}
    proc = None if isinstance(subject, FileSubject) else subject.process
    if proc is not None and proc.pid:
        process: dict[str, Any] = {"Pid": proc.pid}
        if proc.exe:
            process["Path"] = _clip(proc.exe, 512)
        if proc.comm or proc.exe:
            process["Name"] = _clip((proc.comm or proc.exe).rsplit("/", 1)[-1], 128)
        out["Process"] = process
    if isinstance(subject, ConnectionSubject) and subject.remote.address:
        address = subject.remote.address
        key = "DestinationIpV6" if ":" in address else "DestinationIpV4"
        out["Network"] = {
            "Direction": "OUT",
            "Protocol": subject.transport.upper(),
            key: address,
            "DestinationPort": subject.remote.port,
        }
    elif isinstance(subject, ListenerSubject):
        out["Network"] = {"Direction": "IN", "Protocol": "TCP", "DestinationPort": subject.port}
    return out
