"""software-without-stack-cookies: files in use built without stack-smashing protection."""

from __future__ import annotations

from behavior.interface import Severity
from behavior.rules.interface import Rule, RuleInfo, RuleInput, RuleResult
from behavior.rules.software_common import (
    binary_analysis_unavailable,
    evaluate_verdict,
    mitigation,
)

INFO = RuleInfo(
    id="software-without-stack-cookies",
    title="Software without stack cookies",
    severity=Severity.MEDIUM,
    description=(
        "An executable or shared object used by a process observed during the window was "
        "built without stack-smashing protection (stack cookies)."
    ),
    recommendation="Rebuild or update the software, or remove it.",
)


def evaluate(inp: RuleInput) -> RuleResult:
    """Files whose stack-cookie verdict is False (Go, .NET IL and no-code files are None)."""
    return evaluate_verdict(INFO, inp, mitigation("stack_cookies"))


RULE = Rule(INFO, evaluate, binary_analysis_unavailable)
