"""software-without-dep: executables and shared objects in use built without DEP/NX, and
processes whose stack was executable at run time."""

from __future__ import annotations

from behavior.report import Finding, Severity
from behavior.rules.interface import Rule, RuleInfo, RuleInput, RuleResult, finding
from behavior.rules.software_common import (
    binary_analysis_unavailable,
    coverage_note,
    file_finding,
    file_uses,
)

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
    """Files whose DEP verdict is False, plus processes with an executable [stack]."""
    findings: list[Finding] = []
    flagged: set[str] = set()
    unknown = 0
    uses = file_uses(inp)
    for use in uses:
        binary = use.file.binary
        assert binary is not None
        runtime = sorted(p.pid for p in use.processes if p.exe == use.file.path and p.exec_stack)
        extra = {"runtime_executable_stack_pids": runtime} if runtime else {}
        if binary.dep.value is False:
            findings.append(file_finding(INFO, use, {"reason": binary.dep.reason} | extra))
            flagged.add(use.file.path)
        elif binary.dep.value is None:
            unknown += 1
    # A library can make the stack executable at load time although every file has NX.
    by_exe = {use.file.path: use for use in uses}
    for use in by_exe.values():
        if use.file.path in flagged:
            continue
        stacked = [p for p in use.processes if p.exe == use.file.path and p.exec_stack]
        if stacked:
            reason = "[stack] mapping was executable at run time although the file has NX"
            findings.append(
                finding(
                    INFO,
                    file_finding(INFO, use, {}).evidence
                    | {"reason": reason, "runtime_executable_stack_pids": [p.pid for p in stacked]},
                    count=len(stacked),
                    first_ns=min(p.seen_ns for p in stacked),
                    last_ns=max(p.seen_ns for p in stacked),
                )
            )
    return RuleResult(tuple(findings), coverage_note(inp, unknown))


RULE = Rule(INFO, evaluate, binary_analysis_unavailable)
