"""OCSF 1.5.0 events, one per finding: a JSON array (``ocsf``) or JSON lines (``ocsf-jsonl``).

Behaviour rules become Detection Findings (class 2004); the four binary-hardening rules
become Vulnerability Findings (class 2002) whose vulnerability is CWE-693 (Protection
Mechanism Failure) in the affected file. docs/formats.md gives the mapping and why.
Suppressed findings are events too, with ``status_id`` 3 (Suppressed) and the reason in
``comment``; nothing is dropped. The full rba evidence is kept under ``unmapped``.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from behavior.formats.ecosystem import (
    BINARY_RULES,
    PRODUCT_NAME,
    PRODUCT_VENDOR,
    Entry,
    entries,
    epoch_ms,
    finding_uid,
    product_version,
)
from behavior.interface import Finding, Report, Severity
from behavior.subjects import (
    ConnectionSubject,
    ContainerRef,
    FileSubject,
    ListenerSubject,
    LoginSubject,
    ModuleSubject,
    ProcessRef,
)

OCSF_VERSION = "1.5.0"
CATEGORY_FINDINGS = 2
DETECTION_FINDING = 2004
VULNERABILITY_FINDING = 2002
ACTIVITY_CREATE = 1
STATUS_NEW, STATUS_SUPPRESSED = 1, 3
DIRECTION_INBOUND, DIRECTION_OUTBOUND = 1, 2
FILE_REGULAR = 1
OS_LINUX = 200
CWE_PROTECTION_FAILURE = {"uid": "CWE-693", "caption": "Protection Mechanism Failure"}

SEVERITY_IDS = {
    Severity.INFORMATIONAL: 1,
    Severity.LOW: 2,
    Severity.MEDIUM: 3,
    Severity.HIGH: 4,
}
CLASS_NAMES = {
    DETECTION_FINDING: "Detection Finding",
    VULNERABILITY_FINDING: "Vulnerability Finding",
}


def render_ocsf(report: Report) -> str:
    """All findings (suppressed ones included) as a JSON array of OCSF events."""
    return json.dumps(ocsf_events(report), indent=2, ensure_ascii=False) + "\n"


def render_ocsf_jsonl(report: Report) -> str:
    """All findings as OCSF events, one compact JSON object per line."""
    return "".join(
        json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
        for event in ocsf_events(report)
    )


def ocsf_events(report: Report) -> list[dict[str, Any]]:
    """The OCSF events of ``report``, active findings first, then the suppressed ones."""
    return [_event(report, entry) for entry in entries(report)]


def _event(report: Report, entry: Entry) -> dict[str, Any]:
    finding = entry.finding
    class_uid = VULNERABILITY_FINDING if finding.rule_id in BINARY_RULES else DETECTION_FINDING
    host = report.run.host or "unknown"
    status = STATUS_SUPPRESSED if entry.suppressed else STATUS_NEW
    uid = finding_uid(report, finding)
    event: dict[str, Any] = {
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "category_uid": CATEGORY_FINDINGS,
        "category_name": "Findings",
        "class_uid": class_uid,
        "class_name": CLASS_NAMES[class_uid],
        "type_uid": class_uid * 100 + ACTIVITY_CREATE,
        "type_name": f"{CLASS_NAMES[class_uid]}: Create",
        "severity_id": SEVERITY_IDS[finding.severity],
        "severity": finding.severity.value,
        "status_id": status,
        "status": "Suppressed" if entry.suppressed else "New",
        "time": epoch_ms(report.run.ended_at),
        "start_time": epoch_ms(finding.first_seen),
        "end_time": epoch_ms(finding.last_seen),
        "count": finding.count,
        "message": finding.title,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": f"{report.run.id}/{uid}",
            "correlation_uid": report.run.id,
            "product": {
                "name": PRODUCT_NAME,
                "vendor_name": PRODUCT_VENDOR,
                "version": product_version(),
            },
        },
        "finding_info": _finding_info(report, finding, uid),
        "device": _device(report),
        "resources": _resources(host, finding),
    }
    if entry.note():
        event["comment"] = entry.note()
    if class_uid == VULNERABILITY_FINDING:
        event["vulnerabilities"] = [_vulnerability(finding)]
    else:
        event["remediation"] = {"desc": finding.recommendation}
        event["evidences"] = [_evidence(finding)]
    event["unmapped"] = _unmapped(report, entry)
    return event


def _finding_info(report: Report, finding: Finding, uid: str) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": finding.title,
        "desc": finding.description,
        "types": ["Runtime Behavior Analysis", finding.rule_id],
        "analytic": {"uid": finding.rule_id, "name": finding.title, "type_id": 1, "type": "Rule"},
        "created_time": epoch_ms(report.run.ended_at),
        "first_seen_time": epoch_ms(finding.first_seen),
        "last_seen_time": epoch_ms(finding.last_seen),
        "data_sources": list(report.run.sources),
    }


def _device(report: Report) -> dict[str, Any]:
    """The assessed host: name, machine id, OS and addresses (what a lake joins on)."""
    run = report.run
    host = run.host or "unknown"
    device: dict[str, Any] = {"type_id": 0, "type": "Unknown", "hostname": host, "name": host}
    if run.machine_id:
        device["uid"] = run.machine_id
    if run.os_name:
        device["os"] = {"name": run.os_name, "type_id": OS_LINUX, "type": "Linux"}
        if run.os_version:
            device["os"]["version"] = run.os_version
    if run.instance_id:
        device["instance_uid"] = run.instance_id
    if run.ips:
        device["ip"] = run.ips[0]
        device["network_interfaces"] = [
            {"ip": ip, "type_id": 0, "type": "Unknown"} for ip in run.ips
        ]
    return device


def _resources(host: str, finding: Finding) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = [
        {"type": "Host", "uid": host, "name": host, "hostname": host}
    ]
    if isinstance(finding.subject, FileSubject):
        path = finding.subject.path
        resources.append({"type": "File", "uid": f"{host}:{path}", "name": path})
    return resources


def _vulnerability(finding: Finding) -> dict[str, Any]:
    ev = finding.evidence
    subject = finding.subject
    path = subject.path if isinstance(subject, FileSubject) else ""
    packages = []
    if isinstance(subject, FileSubject) and subject.package:
        # The package database gives the owner's name, not its version: "" says unknown.
        packages.append({"name": subject.package, "version": "", "path": path})
    return {
        "cwe": CWE_PROTECTION_FAILURE,
        "title": finding.title,
        "desc": f"{finding.description} {ev.get('reason', '')}".strip(),
        "severity": finding.severity.value,
        "first_seen_time": epoch_ms(finding.first_seen),
        "last_seen_time": epoch_ms(finding.last_seen),
        "affected_code": [{"file": _file(path)}] if path else [],
        "affected_packages": packages,
        "remediation": {"desc": finding.recommendation},
        "vendor_name": PRODUCT_NAME,
    }


def _evidence(finding: Finding) -> dict[str, Any]:
    """The process, file and connection of a behaviour finding as OCSF objects."""
    subject = finding.subject
    out: dict[str, Any] = {}
    if subject is not None and not isinstance(subject, FileSubject):
        out["process"] = _process(subject.process)
        if subject.process.container is not None:  # OCSF's process has no container
            out["container"] = _container(subject.process.container)
    if isinstance(subject, ConnectionSubject):
        out["dst_endpoint"] = _endpoint(subject.remote.address, subject.remote.port)
        protocol = finding.evidence.get("protocol")
        if protocol:
            out["dst_endpoint"]["svc_name"] = str(protocol)
        out["connection_info"] = _connection(DIRECTION_OUTBOUND, subject.transport)
    elif isinstance(subject, ListenerSubject):  # the local side is where connections arrive
        addresses = subject.bind_addresses or ("",)
        out["dst_endpoint"] = _endpoint(addresses[0], subject.port)
        out["connection_info"] = _connection(DIRECTION_INBOUND, subject.transport)
    elif isinstance(subject, ModuleSubject) and subject.module:
        out["file"] = _file(subject.module)
    elif isinstance(subject, LoginSubject) and subject.session is not None:
        if subject.session.remote_host:
            out["src_endpoint"] = {"hostname": subject.session.remote_host}
        if subject.session.user:
            out["user"] = {"name": subject.session.user}
    if not out:  # OCSF needs at least one artifact; the host is always one
        out["device"] = {"type_id": 0, "type": "Unknown", "name": "unknown"}
    return out


def _process(proc: ProcessRef) -> dict[str, Any]:
    out: dict[str, Any] = {"pid": proc.pid}
    name = proc.comm or posixpath.basename(proc.exe)
    if name:
        out["name"] = name
    if proc.cmdline:
        out["cmd_line"] = proc.cmdline
    if proc.exe:
        out["file"] = _file(proc.exe)
    user: dict[str, Any] = {}
    if proc.user:
        user["name"] = proc.user
    if proc.uid is not None:
        user["uid"] = str(proc.uid)
    if user:
        out["user"] = user
    return out


def _container(container: ContainerRef) -> dict[str, Any]:
    out: dict[str, Any] = {"uid": container.id, "runtime": container.runtime}
    if container.name:
        out["name"] = container.name
    if container.image:
        out["image"] = {"name": container.image, "uid": container.image}
    if container.pod:
        out["pod_uuid"] = container.pod
    return out


def _file(path: str) -> dict[str, Any]:
    return {
        "name": posixpath.basename(path) or path,
        "path": path,
        "type_id": FILE_REGULAR,
        "type": "Regular File",
    }


def _endpoint(address: str, port: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"ip": address} if address else {"name": "unknown"}
    if isinstance(port, int):
        out["port"] = port
    return out


def _connection(direction: int, transport: Any) -> dict[str, Any]:
    return {
        "direction_id": direction,
        "direction": "Inbound" if direction == DIRECTION_INBOUND else "Outbound",
        "protocol_name": str(transport),
    }


def _unmapped(report: Report, entry: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rba": {
            "rule_id": entry.finding.rule_id,
            "run_id": report.run.id,
            "evidence": entry.finding.evidence,
        }
    }
    if entry.suppression is not None:
        out["rba"]["suppression"] = {
            "reason": entry.suppression.reason,
            "source": entry.suppression.source,
            "expires": entry.suppression.expires,
            "match": entry.suppression.match,
        }
    if entry.expired:
        out["rba"]["expired_suppressions"] = [
            {"reason": e.reason, "source": e.source, "expires": e.expires} for e in entry.expired
        ]
    return out
