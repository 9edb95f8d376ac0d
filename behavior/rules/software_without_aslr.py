"""software-without-aslr (extended): executables that cannot be loaded at a random address."""

from __future__ import annotations

from behavior.interface import Severity
from behavior.rules.interface import Rule, RuleInfo, RuleInput, RuleResult
from behavior.rules.software_common import (
    binary_analysis_unavailable,
    evaluate_verdict,
    mitigation,
)

INFO = RuleInfo(
    id="software-without-aslr",
    title="Software without ASLR",
    severity=Severity.MEDIUM,
    description=(
        "An executable used during the window cannot be loaded at a random address: an ELF "
        "executable that is not PIE (ET_EXEC), or a PE without DYNAMICBASE."
    ),
    recommendation="Rebuild as a position-independent executable (PIE, /DYNAMICBASE).",
    extended=True,
)


def evaluate(inp: RuleInput) -> RuleResult:
    """Files whose ASLR verdict is False."""
    return evaluate_verdict(INFO, inp, mitigation("aslr"))


RULE = Rule(INFO, evaluate, binary_analysis_unavailable)
