"""insecure-client-general: outbound connections over cleartext protocols (not logins)."""

from __future__ import annotations

from behavior.interface import Severity
from behavior.rules.client_common import evaluate_clients
from behavior.rules.interface import Rule, RuleInfo, RuleInput, RuleResult

INFO = RuleInfo(
    id="insecure-client-general",
    title="Insecure client protocols (general)",
    severity=Severity.LOW,
    description=(
        "A process on this host opened an outbound connection over a cleartext protocol "
        "(HTTP, SMTP, POP3, IMAP, NNTP, LDAP, SNMP v1/v2c, TFTP, VNC, X11, MQTT, Redis "
        "or memcached)."
    ),
    recommendation=(
        "Use the encrypted variant: HTTPS, SMTPS or STARTTLS, POP3S, IMAPS, LDAPS, "
        "SNMPv3, and so on."
    ),
)


def evaluate(inp: RuleInput) -> RuleResult:
    """One finding per (program, remote endpoint) speaking a cleartext non-login protocol."""
    return evaluate_clients(INFO, inp, login=False)


RULE = Rule(INFO, evaluate)
