"""A busy host's 20 s window, as the issue that asked for the summary measured one: 67
findings, most of them stack-cookie findings on distro libraries, with a timeline. Built
from typed subjects as the rules build them, for the HTML layout and print tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from behavior.interface import Finding, Report, Severity
from behavior.subjects import (
    ConnectionSubject,
    Endpoint,
    FileSubject,
    ListenerSubject,
    ModuleSubject,
    ProcessRef,
    Subject,
    evidence_of,
)

WINDOW_S = 20
PACKAGES = (  # (package, directory, files without stack cookies)
    ("libpython3.11-stdlib", "/usr/lib/python3.11/lib-dynload", 30),
    ("python3-numpy", "/usr/lib/python3/dist-packages/numpy/core", 10),
    ("libgcc-s1", "/usr/lib/x86_64-linux-gnu", 1),
    ("libstdc++6", "/usr/lib/x86_64-linux-gnu", 1),
    (None, "/opt/vendor/lib", 6),
)
USERS = tuple(ProcessRef(100 + i, f"/usr/bin/python3.{i}") for i in range(3))


def _finding(rule_id: str, title: str, severity: Severity, subject: Subject, i: int) -> Finding:
    return Finding(
        rule_id=rule_id,
        title=title,
        severity=severity,
        description=f"What {title.lower()} means, in two sentences. It is the same per rule.",
        recommendation="Rebuild or update the software, or remove it.",
        evidence=evidence_of(subject, {"reason": "no function loads the canary", "n": i}),
        count=1 + i % 3,
        first_seen="2026-01-01T00:00:01.000Z",
        last_seen="2026-01-01T00:00:19.000Z",
        subject=subject,
        fingerprint=f"{i:032x}",
    )


def busy_findings() -> list[Finding]:
    """2 High, 52 Medium, 10 Low, 3 Informational."""
    out: list[Finding] = []
    for package, directory, n in PACKAGES:
        for k in range(n):
            path = f"{directory}/lib{(package or 'vendor').replace('.', '')}_{k}.so"
            subject = FileSubject(path, package, "elf", USERS, len(USERS))
            out.append(
                _finding(
                    "software-without-stack-cookies",
                    "Software without stack cookies",
                    Severity.MEDIUM,
                    subject,
                    len(out),
                )
            )
    for k in range(4):
        subject = FileSubject(f"/opt/vendor/bin/tool{k}", None, "elf", USERS[:1], 1)
        out.append(
            _finding(
                "software-without-dep", "Software without DEP", Severity.MEDIUM, subject, len(out)
            )
        )
    for k in range(2):
        process = ProcessRef(200 + k, f"/opt/agent{k}/bin/agent", user="root", uid=0)
        module = ModuleSubject(process, (200 + k,), 0, f"/opt/agent{k}/lib/plugin.so", "library")
        out.append(
            _finding(
                "root-process-insecure-permissions",
                "Root process with insecure permissions",
                Severity.HIGH,
                module,
                len(out),
            )
        )
    curl = ProcessRef(300, "/usr/bin/curl", "curl http://mirror", "curl", "alice", 1000)
    for k in range(10):
        subject = ConnectionSubject(curl, (300,), Endpoint(f"203.0.113.{k + 1}", 80), "tcp")
        out.append(
            _finding(
                "insecure-client-general",
                "Insecure client protocols (general)",
                Severity.LOW,
                subject,
                len(out),
            )
        )
    for k, port in enumerate((8080, 9090, 5000)):
        owner = ProcessRef(400 + k, "/usr/bin/python3.11", comm="python3", user="alice", uid=1000)
        subject = ListenerSubject(port, ("0.0.0.0",), False, owner)
        out.append(
            _finding(
                "unused-listening-port",
                "Unused listening TCP ports",
                Severity.INFORMATIONAL,
                subject,
                len(out),
            )
        )
    return out


def busy_timeline() -> dict[str, Any]:
    """A 20 s timeline with traffic, five listeners and a few flagged execs."""
    series = {
        "tcp-out": [(i * 7) % 11 for i in range(WINDOW_S)],
        "tcp-in": [(i * 3) % 4 for i in range(WINDOW_S)],
        "udp-out": [(i * 5) % 6 for i in range(WINDOW_S)],
    }
    listeners = [
        {
            "address": "0.0.0.0",
            "port": port,
            "comm": "python3",
            "pid": 400 + k,
            "start_s": 0.0,
            "end_s": float(WINDOW_S),
            "accepted": 0,
            "accept_marks_s": [],
        }
        for k, port in enumerate((8080, 9090, 5000))
    ]
    listeners.append(
        {
            "address": "0.0.0.0",
            "port": 22,
            "comm": "sshd",
            "pid": 500,
            "start_s": 0.0,
            "end_s": float(WINDOW_S),
            "accepted": 3,
            "accept_marks_s": [2.5, 9.0, 14.25],
        }
    )
    execs = [
        {"exe": "/opt/vendor/bin/tool0", "pid": 600 + k, "t_s": 1.5 + 4 * k, "rule_ids": ["x"]}
        for k in range(4)
    ]
    execs.append(
        {"exe": "/opt/agent0/bin/agent", "pid": 700, "t_s": 3.0, "rule_ids": ["y"]},
    )
    return {
        "window_s": float(WINDOW_S),
        "bucket_s": 1.0,
        "series": series,
        "listeners": listeners,
        "listeners_total": len(listeners),
        "execs": execs,
        "execs_total": len(execs),
    }


def busy_window(base: Report) -> Report:
    """``base``'s run, as a 20 s window, with the busy findings and timeline."""
    run = replace(
        base.run,
        duration_s=float(WINDOW_S),
        ended_at="2026-01-01T00:00:20.000Z",
        started_at="2026-01-01T00:00:00.000Z",
        machine_id="0123456789abcdef0123456789abcdef",
        os_name="Debian GNU/Linux",
        os_version="12",
        kernel="6.1.0-28-amd64",
    )
    return Report(run=run, findings=tuple(busy_findings()), timeline=busy_timeline())
