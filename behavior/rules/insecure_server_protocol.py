"""insecure-server-protocol: a listening socket on this host serves a cleartext protocol."""

from __future__ import annotations

from collections import Counter
from typing import Any

from behavior.interface import Finding, Process, Severity
from behavior.rules.interface import Rule, RuleInfo, RuleInput, RuleResult, finding
from behavior.rules.listener_common import (
    host_listeners_by_port,
    listener_sources,
    listener_subject,
)
from behavior.rules.protocols import classify_server, program_names

INFO = RuleInfo(
    id="insecure-server-protocol",
    title="Insecure server protocols",
    severity=Severity.INFORMATIONAL,
    description=(
        "A listening socket on this host serves a cleartext protocol (FTP, Telnet, HTTP, "
        "SMTP without TLS, POP3, IMAP, rsh, rlogin, rexec, TFTP, LDAP without TLS, VNC)."
    ),
    recommendation=(
        "Replace telnet, rsh and rlogin with SSH; FTP with SFTP or FTPS; HTTP with HTTPS; "
        "wrap IMAP, POP3 and SMTP in TLS or disable them; move SNMP to v3."
    ),
)


def evaluate(inp: RuleInput) -> RuleResult:
    """One finding per listening port (TCP, then UDP) whose content, program or port
    says cleartext."""
    findings = [f for transport in ("tcp", "udp") for f in _evaluate(inp, transport)]
    note = (
        "polling only: accepted-connection counts can miss short connections and UDP "
        "datagrams are not counted (usage unknown); protocols identified by port and "
        "program only (content needs the eBPF probes)"
    )
    return RuleResult(tuple(findings), note if inp.polling_only else "")


MAX_LISTED = 5


def _serving_programs(
    children: dict[int, list[Process]], inp: RuleInput, pid: int
) -> list[tuple[str, list[str]]]:
    """(exe, names) of the programs a listener's owner started with another image: the
    ones serving its accepted connections (inetd, socket activation)."""
    owner = inp.obs.processes.get(pid)
    out = []
    for child in children.get(pid, ()):
        if child.exe and (owner is None or child.exe != owner.exe):
            out.append((child.exe, program_names(child.comm, child.exe, child.cmdline)))
    return out


def _usage(inp: RuleInput, transport: str, used: int) -> str:
    if used:
        return "used"
    return "unknown" if transport == "udp" and inp.polling_only else "supported"


def _evaluate(inp: RuleInput, transport: str) -> list[Finding]:
    findings = []
    groups = host_listeners_by_port(inp, transport)
    ports_of_pid = Counter(pid for _port, pid in groups)
    children: dict[int, list[Process]] = {}
    for child in inp.obs.processes.values():
        children.setdefault(child.ppid, []).append(child)
    for (port, pid), listeners in groups.items():
        # Content labels are kept per owning process: they tell a port only when the
        # process listens on that one port.
        labels = listeners[0].labels if pid and ports_of_pid[pid] == 1 else ()
        verdict = None
        for s in listeners:
            proc = inp.obs.processes.get(s.pid)
            names = program_names(s.comm, s.exe, proc.cmdline if proc else "")
            verdict = classify_server(port, names, labels, transport)
            if verdict is not None or labels:
                break
        served = _serving_programs(children, inp, pid) if pid and ports_of_pid[pid] == 1 else []
        for _exe, names in served if verdict is None else ():
            verdict = classify_server(port, names, (), transport)
            if verdict is not None:
                break
        if verdict is None:
            continue
        protocol, basis = verdict
        accepted = sum(s.accepted for s in listeners)
        # UDP: remote peers that wrote first, per owning process (not summed per socket).
        peers = max(s.peers for s in listeners)
        details: dict[str, Any] = {
            "sources": listener_sources(listeners),
            "protocol": protocol.name,
            "basis": basis,
            "usage": _usage(inp, transport, accepted or peers),
        }
        if served:  # inetd-style: the programs serving the owner's accepted connections
            details["serving_programs"] = sorted({exe for exe, _ in served})[:MAX_LISTED]
        if transport == "udp":
            details["peers"] = peers
        else:
            details["accepted"] = accepted
            leftovers = sum(s.leftovers for s in listeners)
            if leftovers:  # polling saw them only closing: accepted between two polls
                details["seen_as_leftovers"] = leftovers
        first = min(s.started_ns for s in listeners)
        last = max([s.last_accept_ns for s in listeners] + [first])
        findings.append(
            finding(
                INFO,
                listener_subject(inp, listeners),
                details,
                count=max(1, accepted, peers),
                first_ns=first,
                last_ns=last,
            )
        )
    return findings


RULE = Rule(INFO, evaluate)
