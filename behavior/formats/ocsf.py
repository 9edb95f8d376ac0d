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
from collections.abc import Mapping
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

OCSF_VERSION = "1.5.0"
CATEGORY_FINDINGS = 2
DETECTION_FINDING = 2004
VULNERABILITY_FINDING = 2002
ACTIVITY_CREATE = 1
STATUS_NEW, STATUS_SUPPRESSED = 1, 3
DIRECTION_INBOUND, DIRECTION_OUTBOUND = 1, 2
FILE_REGULAR = 1
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
        "device": {"type_id": 0, "type": "Unknown", "hostname": host, "name": host},
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


def _resources(host: str, finding: Finding) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = [
        {"type": "Host", "uid": host, "name": host, "hostname": host}
    ]
    path = finding.evidence.get("path")
    if isinstance(path, str) and path:
        resources.append({"type": "File", "uid": f"{host}:{path}", "name": path})
    return resources


def _vulnerability(finding: Finding) -> dict[str, Any]:
    ev = finding.evidence
    path = str(ev.get("path", ""))
    return {
        "cwe": CWE_PROTECTION_FAILURE,
        "title": finding.title,
        "desc": f"{finding.description} {ev.get('reason', '')}".strip(),
        "severity": finding.severity.value,
        "first_seen_time": epoch_ms(finding.first_seen),
        "last_seen_time": epoch_ms(finding.last_seen),
        "affected_code": [{"file": _file(path)}] if path else [],
        "remediation": {"desc": finding.recommendation},
        "vendor_name": PRODUCT_NAME,
    }


def _evidence(finding: Finding) -> dict[str, Any]:
    """The process, file and connection of a behaviour finding as OCSF objects."""
    ev = finding.evidence
    out: dict[str, Any] = {}
    process = ev.get("process")
    if isinstance(process, Mapping):
        out["process"] = _process(process)
    elif "server_pid" in ev:  # insecure-login-accepted
        out["process"] = _process({"pid": ev["server_pid"], "comm": ev.get("server", "")})
    elif "pid" in ev:  # root-process-insecure-permissions
        out["process"] = _process(ev)
    remote = ev.get("remote")
    if isinstance(remote, Mapping):
        out["dst_endpoint"] = _endpoint(str(remote.get("address", "")), remote.get("port"))
        if ev.get("protocol"):
            out["dst_endpoint"]["svc_name"] = str(ev["protocol"])
        out["connection_info"] = _connection(DIRECTION_OUTBOUND, ev.get("transport", "tcp"))
    elif "bind_addresses" in ev:  # a listener: the local side is where connections arrive
        addresses = ev.get("bind_addresses") or [""]
        out["dst_endpoint"] = _endpoint(str(addresses[0]), ev.get("port"))
        out["connection_info"] = _connection(DIRECTION_INBOUND, "tcp")
    if isinstance(ev.get("module"), str) and ev["module"]:
        out["file"] = _file(ev["module"])
    if ev.get("remote_host"):
        out["src_endpoint"] = {"hostname": str(ev["remote_host"])}
    if ev.get("user") and "process" not in ev and "pid" not in ev:
        out["user"] = {"name": str(ev["user"])}
    if not out:  # OCSF needs at least one artifact; the host is always one
        out["device"] = {"type_id": 0, "type": "Unknown", "name": "unknown"}
    return out


def _process(proc: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"pid": int(proc.get("pid", 0))}
    exe = str(proc.get("exe") or "")
    name = str(proc.get("comm") or "") or posixpath.basename(exe)
    if name:
        out["name"] = name
    if proc.get("cmdline"):
        out["cmd_line"] = str(proc["cmdline"])
    if exe:
        out["file"] = _file(exe)
    user: dict[str, Any] = {}
    if proc.get("user"):
        user["name"] = str(proc["user"])
    if isinstance(proc.get("uid"), int):
        user["uid"] = str(proc["uid"])
    if user:
        out["user"] = user
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
