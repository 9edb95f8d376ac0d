"""root-process-insecure-permissions: a process with effective uid 0 loaded a module (its
executable, its interpreter script, or a shared object) that a non-root user can modify."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any

from behavior.facts.interface import (
    FactSet,
    ImageGroup,
    PathStat,
    ProcessFact,
    uid_view,
    view_stat,
)
from behavior.interface import Severity
from behavior.rules.interface import (
    Rule,
    RuleInfo,
    RuleInput,
    RuleResult,
    container_ref,
    finding,
    listed_pids,
    mode_text,
)
from behavior.subjects import ModuleSubject, ProcessRef

INFO = RuleInfo(
    id="root-process-insecure-permissions",
    title="Root process with insecure permissions",
    severity=Severity.HIGH,
    description=(
        "A process running with effective uid 0 loaded a module (its executable, its "
        "interpreter script or a shared object) that a non-root user can modify."
    ),
    recommendation="Make the module and every directory on its path writable only by root.",
)


@dataclass(frozen=True)
class Offence:
    """The path component that makes a module modifiable, and why."""

    path: str
    stat: PathStat
    reason: str


def file_offence(path: str, st: PathStat) -> Offence | None:
    """Why a non-root user can modify the file itself, or None."""
    if st.uid != 0:
        return Offence(path, st, f"file owned by non-root uid {st.uid}")
    if st.mode & stat.S_IWGRP and st.gid != 0:
        return Offence(path, st, f"file writable by non-root group gid {st.gid}")
    if st.mode & stat.S_IWOTH:
        return Offence(path, st, "file world-writable")
    return None


def dir_offence(path: str, st: PathStat) -> Offence | None:
    """Why a non-root user can replace entries of this directory, or None.

    The sticky bit stops others from renaming or deleting entries they do not own, but
    not the directory's owner, so a non-root owner is an offence either way."""
    if st.uid != 0:
        return Offence(path, st, f"directory owned by non-root uid {st.uid}")
    sticky = bool(st.mode & stat.S_ISVTX)
    if st.mode & stat.S_IWGRP and st.gid != 0 and not sticky:
        return Offence(path, st, f"directory writable by non-root group gid {st.gid}")
    if st.mode & stat.S_IWOTH and not sticky:
        return Offence(path, st, "directory world-writable without the sticky bit")
    return None


def parents(path: str) -> list[str]:
    """The directories on ``path``, nearest first: /a/b/c -> /a/b, /a, /."""
    out = []
    current = os.path.dirname(path)
    while True:
        out.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            return out
        current = parent


def module_offence(path: str, facts: FactSet, proc: ProcessFact) -> Offence | None:
    """The first offending component of ``path`` (the file, then its directories), in
    ``proc``'s mount namespace, its owners as ``proc``'s user namespace sees them."""
    file_fact = facts.file(path, proc.mnt_ns)
    if file_fact is not None and file_fact.stat is not None:
        found = file_offence(path, view_stat(proc, file_fact.stat))
        if found:
            return found
    for directory in parents(path):
        dir_fact = facts.dir(directory, proc.mnt_ns)
        if dir_fact is not None and dir_fact.stat is not None:
            found = dir_offence(directory, view_stat(proc, dir_fact.stat))
            if found:
                return found
    return None


def _modules(proc: ProcessFact) -> list[tuple[str, str]]:
    """(path, role) of every module of a process: executable, script, shared objects."""
    out = [(proc.exe, "executable")] if proc.exe else []
    if proc.script:
        out.append((proc.script, "interpreter script"))
    out += [(m, "mapped module") for m in proc.modules if m not in (proc.exe, proc.script)]
    return out


def evaluate(inp: RuleInput) -> RuleResult:
    """One finding per (executable, module) for root processes with modifiable modules."""
    groups: dict[tuple[int, str, str], list[tuple[ImageGroup, str, Offence]]] = {}
    images = sorted(inp.facts.images(), key=lambda g: (g.first_ns, g.sample.pid, g.sample.key))
    for image in images:
        proc = image.sample
        if proc.inner_uid(proc.euid) != 0:
            continue  # not root in its own user namespace
        for path, role in _modules(proc):
            offence = module_offence(path, inp.facts, proc)
            if offence is not None:
                groups.setdefault((proc.mnt_ns, proc.exe, path), []).append((image, role, offence))
    findings = []
    for (_, exe, module), members in groups.items():
        first, role, offence = members[0]
        proc = first.sample
        subject = ModuleSubject(
            process=ProcessRef(
                pid=proc.pid,
                exe=exe,
                cmdline=" ".join(proc.cmdline),
                user=inp.facts.user_name(proc.uid),
                container=container_ref(proc),
            ),
            pids=tuple(listed_pids(pid for g, _, _ in members for pid in g.pids)),
            euid=proc.euid,
            module=module,
            module_role=role,
        )
        details: dict[str, Any] = {
            "offending_path": offence.path,
            "owner": inp.facts.user_name(offence.stat.uid),
            "owner_uid": offence.stat.uid,
            "group_gid": offence.stat.gid,
            "mode": mode_text(offence.stat.mode),
            "reason": offence.reason,
        }
        if proc.uid_map:  # owners as the process's user namespace sees them
            details["uid_view"] = uid_view(proc)
        findings.append(
            finding(
                INFO,
                subject,
                details,
                count=sum(g.count for g, _, _ in members),
                first_ns=min(g.first_ns for g, _, _ in members),
                last_ns=max(g.last_ns for g, _, _ in members),
            )
        )
    return RuleResult(tuple(findings))


def unavailable(inp: RuleInput) -> str | None:
    """The rule needs the memory maps and file permissions of root processes."""
    coverage = inp.facts.coverage
    if coverage is None:
        return "no process or file facts were gathered"
    if not coverage.maps_readable:
        return coverage.reason or "process memory maps unreadable"
    return None


RULE = Rule(INFO, evaluate, unavailable)
