"""The binanalysis layer's interface: facts about one executable file.

``binanalysis`` is a pure library: a path or bytes in, :class:`BinaryFacts` out. It imports
nothing else of ours.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class BinaryParseError(Exception):
    """A file could not be parsed: truncated, corrupt or hostile. The message is one line."""


class FileFormat(enum.StrEnum):
    ELF = "elf"
    PE = "pe"
    OTHER = "other"


class Relro(enum.StrEnum):
    FULL = "full"
    PARTIAL = "partial"
    NONE = "none"


@dataclass(frozen=True)
class Verdict:
    """One mitigation's verdict: True (present), False (absent) or None (not applicable
    or undeterminable), with a one-line reason a person can check by hand."""

    value: bool | None
    reason: str


@dataclass(frozen=True)
class BinaryFacts:
    """What binanalysis found about one file.

    ``error`` is set (and the verdicts are None) when the file could not be parsed.
    ``extra`` holds the cheap additional checks (fortify, cet_ibt, cet_shstk, high_entropy_va,
    cfg, safeseh, dotnet_il_only, ...) as verdicts keyed by name.
    """

    path: str
    format: FileFormat
    arch: str | None
    dep: Verdict
    stack_cookies: Verdict
    aslr: Verdict
    relro: Relro | None
    relro_reason: str
    extra: dict[str, Verdict] = field(default_factory=dict)
    error: str | None = None
