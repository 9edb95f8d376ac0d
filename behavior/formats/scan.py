"""``rba scan``'s model and its two renderers: pure functions of a :class:`ScanReport`.

Loaded by every scan, warm ones included, so it imports only light standard modules at
load time (see :mod:`behavior.commands.scan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from binanalysis import BinaryFacts, Verdict


@dataclass
class Target:
    """One file to inspect: the path shown, the path opened, the pids that use it, and
    (when known) the (st_dev, st_ino) of the file, so that names of one file count once."""

    path: str
    open_path: str
    pids: list[int] = field(default_factory=list)
    identity: tuple[int, int] | None = None


@dataclass
class ScanReport:
    """Rows to show plus the counts of the summary line."""

    rows: list[tuple[Target, BinaryFacts]] = field(default_factory=list)
    unreadable: list[tuple[Target, str]] = field(default_factory=list)
    skipped_other: int = 0


def summary_line(report: ScanReport) -> str:
    """One line: how many files, how many lack each mitigation, what was skipped. A file
    reached through several names (symlinks, hard links) counts once."""
    from binanalysis import FileFormat, Relro

    seen: set[object] = set()
    rows = []
    for target, result in report.rows:
        key = target.identity or target.path
        if key not in seen:
            seen.add(key)
            rows.append((target, result))
    facts = [f for _t, f in rows if f.error is None and f.format is not FileFormat.OTHER]
    errors = sum(1 for _t, f in rows if f.error is not None)
    names = sum(1 for _t, f in report.rows if f.error is None and f.format is not FileFormat.OTHER)
    parts = [
        f"{len(facts)} ELF/PE files" + (f" ({names} names)" if names != len(facts) else ""),
        f"{sum(f.dep.value is False for f in facts)} without DEP",
        f"{sum(f.stack_cookies.value is False for f in facts)} without stack cookies",
        f"{sum(f.aslr.value is False for f in facts)} without ASLR",
        f"{sum(f.relro is Relro.NONE for f in facts)} without RELRO",
        f"{errors} unparseable",
        f"{len(report.unreadable)} unreadable",
        f"{report.skipped_other} skipped (not ELF/PE)",
    ]
    others = sum(1 for _t, f in rows if f.format is FileFormat.OTHER)
    if others:
        parts.append(f"{others} named but not ELF/PE")
    return "; ".join(parts)


def render_json(report: ScanReport) -> str:
    """docs/design.md's ``rba scan --format json``: a list with one object per file."""
    import json

    items: list[dict[str, Any]] = []
    for target, facts in report.rows:
        item: dict[str, Any] = {
            "path": facts.path,
            "format": facts.format.value,
            "arch": facts.arch,
            "dep": facts.dep.value,
            "stack_cookies": facts.stack_cookies.value,
            "aslr": facts.aslr.value,
            "relro": None if facts.relro is None else facts.relro.value,
            "notes": {
                "dep": facts.dep.reason,
                "stack_cookies": facts.stack_cookies.reason,
                "aslr": facts.aslr.reason,
                "relro": facts.relro_reason,
            },
            "extra": {name: v.to_dict() for name, v in facts.extra.items()},
            "error": facts.error,
        }
        if target.pids:
            item["pids"] = target.pids
        items.append(item)
    for target, reason in report.unreadable:
        na = {"dep": reason, "stack_cookies": reason, "aslr": reason, "relro": reason}
        item = {"path": target.path, "format": "other", "arch": None, "dep": None,
                "stack_cookies": None, "aslr": None, "relro": None, "notes": na, "extra": {},
                "error": f"unreadable: {reason}"}  # fmt: skip
        if target.pids:
            item["pids"] = target.pids
        items.append(item)
    return json.dumps(items, indent=1)


GREEN, RED, YELLOW, RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[0m"
COLUMNS = (("RELRO", 13), ("STACK CANARY", 12), ("NX", 12), ("PIE", 12), ("FORTIFY", 9))


def render_text(report: ScanReport, *, color: bool) -> str:
    """A checksec-style table, one row per file, and the summary line."""
    header = "  ".join(name.ljust(width) for name, width in COLUMNS) + "  FILE"
    lines = [header]
    cells: dict[tuple[Any, ...], str] = {}  # a few dozen distinct rows among a thousand files
    for target, facts in report.rows:
        lines.append(_text_row(target, facts, color, cells))
    for target, reason in report.unreadable:
        lines.append(_paint(f"unreadable: {reason}", RED, color) + f"  {target.path}")
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"


def _text_row(
    target: Target, facts: BinaryFacts, color: bool, memo: dict[tuple[Any, ...], str]
) -> str:
    if facts.error is not None:
        return _paint(f"error: {facts.error}", RED, color) + f"  {target.path}"
    if facts.format.value == "other":
        return _paint("not an ELF or PE file", YELLOW, color) + f"  {target.path}"
    fortify = facts.extra.get("fortify")
    cookies = facts.stack_cookies
    not_needed = cookies.value is None and _not_needed(cookies)
    fortified = None if fortify is None else fortify.value
    key = (facts.relro, cookies.value, not_needed, facts.dep.value, facts.aslr.value, fortified)
    text = memo.get(key)
    if text is None:
        text = memo[key] = _cells_text(facts, color)
    suffix = f" ({facts.format.value}, pids {_pids(target.pids)})" if target.pids else ""
    return f"{text}  {target.path}{suffix}"


def _cells_text(facts: BinaryFacts, color: bool) -> str:
    from binanalysis import Relro

    relro = {Relro.FULL: ("Full RELRO", GREEN), Relro.PARTIAL: ("Partial RELRO", YELLOW),
             Relro.NONE: ("No RELRO", RED), None: ("n/a", RESET)}[facts.relro]  # fmt: skip
    fortify = facts.extra.get("fortify")
    cells = [
        relro,
        _cookie_cell(facts.stack_cookies),
        _cell(facts.dep.value, "NX enabled", "NX disabled"),
        _cell(facts.aslr.value, "PIE enabled", "No PIE"),
        _cell(None if fortify is None else fortify.value, "Yes", "No"),
    ]
    return "  ".join(
        _paint(label.ljust(width), hue, color)
        for (label, hue), (_name, width) in zip(cells, COLUMNS)
    )


def _not_needed(verdict: Verdict) -> bool:
    return verdict.reason.startswith("nothing to protect")


def _cookie_cell(verdict: Verdict) -> tuple[str, str]:
    """The stack-cookie classes (docs/scan.md): "nothing to protect" is not a finding."""
    if verdict.value is None and _not_needed(verdict):
        return "Not needed", RESET
    return _cell(verdict.value, "Canary found", "No canary")


def _cell(value: bool | None, yes: str, no: str) -> tuple[str, str]:
    if value is None:
        return "n/a", YELLOW
    return (yes, GREEN) if value else (no, RED)


def _pids(pids: list[int]) -> str:
    shown = ",".join(str(p) for p in pids[:5])
    return shown + (f",... ({len(pids)})" if len(pids) > 5 else "")


def _paint(text: str, hue: str, color: bool) -> str:
    return f"{hue}{text}{RESET}" if color and hue != RESET else text
