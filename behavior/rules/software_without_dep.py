"""software-without-dep: executables and shared objects in use built without DEP/NX, and
processes whose stack was executable at run time."""

from __future__ import annotations

from behavior.interface import Finding, Severity
from behavior.rules.interface import Rule, RuleInfo, RuleInput, RuleResult, listed_pids
from behavior.rules.software_common import (
    FileUse,
    binary_analysis_unavailable,
    coverage_note,
    file_finding,
    file_uses,
)

RUNTIME_REASON = "[stack] mapping was executable at run time although the file has NX"

INFO = RuleInfo(
    id="software-without-dep",
    title="Software without DEP",
    severity=Severity.MEDIUM,
    description=(
        "An executable or shared object used by a process observed during the window was "
        "built without DEP/NX (an executable stack, or a writable and executable segment)."
    ),
    recommendation="Rebuild or update the software, or remove it.",
)


def evaluate(inp: RuleInput) -> RuleResult:
    """Files whose DEP verdict is False, and executables whose processes ran with an
    executable [stack] (a library can turn the stack executable at load time although
    every file has NX)."""
    findings: list[Finding] = []
    unknown = 0
    for use in file_uses(inp):
        binary = use.file.binary
        assert binary is not None
        stacked = [g for g in use.images if g.sample.exe == use.file.path and g.sample.exec_stack]
        runtime = {"runtime_executable_stack_pids": listed_pids(p for g in stacked for p in g.pids)}
        if binary.dep.value is False:
            extra = {"reason": binary.dep.reason} | (runtime if stacked else {})
            findings.append(file_finding(INFO, use, extra))
        elif stacked:
            extra = {"reason": RUNTIME_REASON} | runtime
            findings.append(file_finding(INFO, FileUse(use.file, tuple(stacked)), extra))
        elif binary.dep.value is None:
            unknown += 1
    return RuleResult(tuple(findings), coverage_note(inp, unknown))


RULE = Rule(INFO, evaluate, binary_analysis_unavailable)
