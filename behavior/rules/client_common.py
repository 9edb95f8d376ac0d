"""Shared evaluation of the two client rules: cleartext outbound connections, one finding
per (program, remote endpoint, transport), loopback peers excluded (docs/rules.md)."""

from __future__ import annotations

from typing import Any

from behavior.interface import Connection
from behavior.rules.interface import (
    RuleInfo,
    RuleInput,
    RuleResult,
    finding,
    listed_pids,
    process_ref,
)
from behavior.rules.protocols import Protocol, classify_client, program_names
from behavior.subjects import ConnectionSubject, Endpoint

UNSPECIFIED = frozenset({"0.0.0.0", "::"})
POLLING_NOTE = (
    "polling only: connections shorter than the poll interval and UDP sends can be missed; "
    "protocols identified by port and program only (content needs the eBPF probes)"
)


def evaluate_clients(info: RuleInfo, inp: RuleInput, *, login: bool) -> RuleResult:
    """Findings for cleartext client connections whose protocol carries logins (or not)."""
    groups: dict[tuple[str, str, int, str], list[tuple[Connection, str, str]]] = {}
    # A window has far fewer distinct (program, port) pairs than connections: the verdict
    # of a connection without content labels depends on nothing else.
    verdicts: dict[tuple[str, str, str, int, str], tuple[Protocol, str] | None] = {}
    processes = inp.obs.processes
    for conn in inp.obs.connections:
        if conn.remote_loopback or not conn.remote or conn.remote in UNSPECIFIED:
            continue  # connecting to the unspecified address reaches this host too
        proc = processes.get(conn.pid)
        exe, cmdline = (proc.exe, proc.cmdline) if proc else ("", "")
        if conn.labels:
            names = program_names(conn.comm, exe, cmdline)
            verdict = classify_client(conn.port, conn.transport, names, conn.labels)
        else:
            asked = (conn.comm, exe, cmdline, conn.port, conn.transport)
            if asked in verdicts:
                verdict = verdicts[asked]
            else:
                names = program_names(conn.comm, exe, cmdline)
                verdict = verdicts[asked] = classify_client(conn.port, conn.transport, names)
        if verdict is None or verdict[0].login != login:
            continue
        key = (exe or conn.comm, conn.remote, conn.port, conn.transport)
        groups.setdefault(key, []).append((conn, verdict[0].name, verdict[1]))
    findings = []
    for members in groups.values():
        first, protocol, basis = members[0]
        subject = ConnectionSubject(
            process=process_ref(inp, first.pid, uid=first.uid, comm=first.comm),
            pids=tuple(listed_pids(c.pid for c, _, _ in members)),
            remote=Endpoint(first.remote, first.port),
            transport=first.transport,
        )
        details: dict[str, Any] = {
            "protocol": protocol,
            "basis": basis,
            "netns": first.netns,
            "sources": sorted({s for c, _, _ in members for s in c.sources}),
        }
        findings.append(
            finding(
                info,
                subject,
                details,
                count=sum(c.count for c, _, _ in members),
                first_ns=min(c.first_ns for c, _, _ in members),
                last_ns=max(c.last_ns for c, _, _ in members),
            )
        )
    return RuleResult(tuple(findings), POLLING_NOTE if inp.polling_only else "")
