"""The rule catalogue (docs/rules.md): the seven core rules, then the extended ones."""

from __future__ import annotations

from behavior.rules import (
    insecure_client_general,
    insecure_client_login,
    insecure_login_accepted,
    insecure_server_protocol,
    root_process_insecure_permissions,
    software_without_aslr,
    software_without_dep,
    software_without_relro,
    software_without_stack_cookies,
    unused_listening_port,
)
from behavior.rules.interface import Rule

RULES: tuple[Rule, ...] = (
    insecure_client_login.RULE,
    insecure_client_general.RULE,
    unused_listening_port.RULE,
    insecure_server_protocol.RULE,
    software_without_dep.RULE,
    software_without_stack_cookies.RULE,
    root_process_insecure_permissions.RULE,
    software_without_aslr.RULE,
    software_without_relro.RULE,
    insecure_login_accepted.RULE,
)
RULE_IDS: tuple[str, ...] = tuple(rule.info.id for rule in RULES)


def select(ids: frozenset[str] | None) -> tuple[Rule, ...]:
    """The rules with the given ids (all when None), in catalogue order."""
    if ids is None:
        return RULES
    unknown = sorted(ids - set(RULE_IDS))
    if unknown:
        raise ValueError(f"unknown rule id(s): {', '.join(unknown)}")
    return tuple(rule for rule in RULES if rule.info.id in ids)
