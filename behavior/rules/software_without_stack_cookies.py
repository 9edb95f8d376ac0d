"""software-without-stack-cookies: files in use built without stack-smashing protection."""

from __future__ import annotations

from behavior.report import Severity
from behavior.rules.interface import Rule, RuleInfo, RuleInput, RuleResult
from behavior.rules.software_common import (
    FileUse,
    binary_analysis_unavailable,
    evaluate_verdict,
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


def _verdict(use: FileUse) -> tuple[bool | None, str]:
    assert use.file.binary is not None
    return use.file.binary.stack_cookies.value, use.file.binary.stack_cookies.reason


def evaluate(inp: RuleInput) -> RuleResult:
    """Files whose stack-cookie verdict is False (Go, .NET IL and no-code files are None)."""
    return evaluate_verdict(INFO, inp, _verdict)


RULE = Rule(INFO, evaluate, binary_analysis_unavailable)
