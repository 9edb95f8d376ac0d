"""Shared pieces of the file rules: the population of files used by observed processes,
and the evidence every file finding carries (path, package or ``unpackaged``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from behavior.facts.interface import FileFact, ImageGroup
from behavior.interface import Finding
from behavior.rules.interface import RuleInfo, RuleInput, RuleResult, container_ref, finding
from behavior.subjects import FileSubject, ProcessRef

MAX_LISTED_PROCESSES = 5
MAPS_NOTE = "process memory maps unreadable: only executables were checked"


@dataclass(frozen=True)
class FileUse:
    """A module file and the process images that used it during the window."""

    file: FileFact
    images: tuple[ImageGroup, ...]

    @property
    def is_executable(self) -> bool:
        """True when some process ran this file as its executable (not only as a library)."""
        return any(g.sample.exe == self.file.path for g in self.images)

    @property
    def count(self) -> int:
        """How many process images used the file."""
        return sum(g.count for g in self.images)


def _by_time(group: ImageGroup) -> tuple[int, int, str]:
    return (group.first_ns, group.sample.pid, group.sample.key)


def file_uses(inp: RuleInput) -> list[FileUse]:
    """Every analysed module file used by a process observed in the window, by path."""
    users: dict[tuple[int, str], list[ImageGroup]] = {}  # (mount namespace, path)
    for group in inp.facts.images():
        for path in group.sample.modules:
            users.setdefault((group.sample.mnt_ns, path), []).append(group)
    uses = []
    for key in sorted(users):
        fact = inp.facts.files.get(key)
        if fact is None or fact.binary is None or fact.binary.error:
            continue
        uses.append(FileUse(fact, tuple(sorted(users[key], key=_by_time))))
    return uses


def file_subject(use: FileUse) -> FileSubject:
    """Path, owning package, format and the first processes that used the file."""
    binary = use.file.binary
    listed = use.images[:MAX_LISTED_PROCESSES]
    return FileSubject(
        path=use.file.path,
        package=use.file.package,
        format=binary.format.value if binary else "other",
        processes=tuple(
            ProcessRef(g.sample.pid, g.sample.exe, container=container_ref(g.sample))
            for g in listed
        ),
        process_count=use.count,
        namespace=file_namespace(use),
    )


def file_namespace(use: FileUse) -> str:
    """Where the file is: "" in the host's mount namespace, else the container of its
    first user (its image, name or id), else the mount namespace's inode."""
    if not use.file.mnt_ns:
        return ""
    container = next((g.sample.container for g in use.images if g.sample.container), None)
    if container is not None:
        return f"container:{container.image or container.name or container.id}"
    return f"mnt:{use.file.mnt_ns}"


def file_finding(info: RuleInfo, use: FileUse, details: dict[str, Any]) -> Finding:
    """The finding for one file: count = process images that used it."""
    return finding(
        info,
        file_subject(use),
        details,
        count=use.count,
        first_ns=min(g.first_ns for g in use.images),
        last_ns=max(g.last_ns for g in use.images),
    )


def mitigation(name: str) -> Callable[[FileUse], tuple[bool | None, str]]:
    """The verdict named ``name`` (``stack_cookies``, ``aslr``...) of a used file."""

    def verdict_of(use: FileUse) -> tuple[bool | None, str]:
        verdict = getattr(use.file.binary, name)
        return verdict.value, verdict.reason

    return verdict_of


def evaluate_verdict(
    info: RuleInfo, inp: RuleInput, verdict_of: Callable[[FileUse], tuple[bool | None, str]]
) -> RuleResult:
    """Findings for files whose verdict is False; a note counts the undetermined ones."""
    findings = []
    unknown = 0
    for use in file_uses(inp):
        value, reason = verdict_of(use)
        if value is False:
            findings.append(file_finding(info, use, {"reason": reason}))
        elif value is None:
            unknown += 1
    return RuleResult(tuple(findings), coverage_note(inp, unknown))


def coverage_note(inp: RuleInput, unknown: int) -> str:
    """States files with no verdict (not applicable or undeterminable) and missing maps."""
    notes = []
    if unknown:
        notes.append(f"{unknown} file(s) not applicable or undeterminable (see rba scan)")
    if inp.facts.coverage and not inp.facts.coverage.maps_readable:
        notes.append(MAPS_NOTE)
    return "; ".join(notes)


def binary_analysis_unavailable(inp: RuleInput) -> str | None:
    """Why the file rules cannot run (no binary analysis), or None."""
    coverage = inp.facts.coverage
    if coverage is None:
        return "no process or file facts were gathered"
    if not coverage.binary_analysis:
        return coverage.reason or "binary analysis unavailable"
    return None
