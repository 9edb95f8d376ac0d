"""insecure-client-login: outbound connections to cleartext remote login services."""

from __future__ import annotations

from behavior.interface import Severity
from behavior.rules.client_common import evaluate_clients
from behavior.rules.interface import Rule, RuleInfo, RuleInput, RuleResult

INFO = RuleInfo(
    id="insecure-client-login",
    title="Insecure client protocols (login)",
    severity=Severity.MEDIUM,
    description=(
        "A process on this host opened an outbound connection to a remote login service "
        "that carries credentials in cleartext (telnet, rlogin, rsh, rexec or FTP)."
    ),
    recommendation="Use SSH instead (or SFTP for file transfer).",
)


def evaluate(inp: RuleInput) -> RuleResult:
    """One finding per (program, remote endpoint) speaking a cleartext login protocol."""
    return evaluate_clients(INFO, inp, login=True)


RULE = Rule(INFO, evaluate)
