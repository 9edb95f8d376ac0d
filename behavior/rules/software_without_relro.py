"""software-without-relro (extended): ELF files without RELRO, or executables with only
partial RELRO."""

from __future__ import annotations

from behavior.interface import Severity
from behavior.rules.interface import Rule, RuleInfo, RuleInput, RuleResult
from behavior.rules.software_common import (
    FileUse,
    binary_analysis_unavailable,
    evaluate_verdict,
)
from binanalysis.interface import Relro

INFO = RuleInfo(
    id="software-without-relro",
    title="Software without RELRO",
    severity=Severity.LOW,
    description=(
        "An ELF file used during the window has no PT_GNU_RELRO segment, or is an "
        "executable with only partial RELRO (its GOT stays writable)."
    ),
    recommendation="Rebuild with -Wl,-z,relro,-z,now (full RELRO).",
    extended=True,
)


def _verdict(use: FileUse) -> tuple[bool | None, str]:
    binary = use.file.binary
    assert binary is not None
    if binary.relro is None:
        return None, binary.relro_reason
    if binary.relro is Relro.NONE:
        return False, binary.relro_reason or "no PT_GNU_RELRO segment"
    if binary.relro is Relro.PARTIAL and use.is_executable:
        return False, binary.relro_reason or "partial RELRO on an executable"
    return True, binary.relro_reason


def evaluate(inp: RuleInput) -> RuleResult:
    """ELF files without RELRO, and executables with partial RELRO."""
    return evaluate_verdict(INFO, inp, _verdict)


RULE = Rule(INFO, evaluate, binary_analysis_unavailable)
