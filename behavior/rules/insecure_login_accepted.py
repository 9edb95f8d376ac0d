"""insecure-login-accepted (extended): this host accepted a cleartext remote login."""

from __future__ import annotations

from behavior.interface import LoginAccepted, Severity
from behavior.rules.interface import Rule, RuleInfo, RuleInput, RuleResult, finding, listed_pids
from behavior.subjects import LoginSubject, SessionRef

INFO = RuleInfo(
    id="insecure-login-accepted",
    title="Insecure login accepted",
    severity=Severity.MEDIUM,
    description=(
        "A login over telnet, rlogin, rsh or rexec was accepted by this host during the "
        "window: the server started a login program (or a command) for a remote client."
    ),
    recommendation="Disable telnet, rlogin, rsh and rexec servers; use SSH.",
    extended=True,
)


def evaluate(inp: RuleInput) -> RuleResult:
    """One finding per (protocol, server program), counting the logins it started."""
    groups: dict[tuple[str, str], list[LoginAccepted]] = {}
    for accept in inp.obs.login_accepts:
        groups.setdefault((accept.protocol, accept.server), []).append(accept)
    sessions = {s.pid: s for s in inp.obs.logins if s.pid}
    findings = []
    for (protocol, server), members in groups.items():
        first = members[0]
        session = next((sessions[m.pid] for m in members if m.pid in sessions), None)
        login = None if session is None else SessionRef(session.user, session.tty, session.host)
        subject = LoginSubject(
            protocol=protocol,
            server=server,
            server_pid=first.server_pid,
            program=first.program,
            pids=tuple(listed_pids(m.pid for m in members)),
            session=login,
        )
        findings.append(
            finding(
                INFO,
                subject,
                {},
                count=len(members),
                first_ns=min(m.ts_ns for m in members),
                last_ns=max(m.ts_ns for m in members),
            )
        )
    note = "polling only: login programs shorter than the poll interval can be missed"
    return RuleResult(tuple(findings), note if inp.polling_only else "")


RULE = Rule(INFO, evaluate)
