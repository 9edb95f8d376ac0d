"""The binanalysis layer's interface: facts about one executable file.

``binanalysis`` is a pure library: a path or bytes in, :class:`BinaryFacts` out. It imports
nothing else of ours.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Optional


class BinaryParseError(Exception):
    """A file could not be parsed: truncated, corrupt or hostile. The message is one line."""


class BinaryReadError(BinaryParseError):
    """A file could not be read at all (missing, permission denied, not a regular file).

    Unlike a parse error this says nothing about the file's content, so it is raised by
    :func:`binanalysis.inspect` instead of being turned into facts (and never cached)."""


class StrEnum(str, enum.Enum):
    """A string enum whose str() is its value: enum.StrEnum before Python 3.11 (the one
    definition; behavior's enums use it too)."""

    def __str__(self) -> str:
        return str(self.value)


class FileFormat(StrEnum):
    """What kind of file was inspected (by its magic bytes)."""

    ELF = "elf"
    PE = "pe"
    OTHER = "other"


class Relro(StrEnum):
    """ELF RELRO: full (PT_GNU_RELRO + BIND_NOW), partial (PT_GNU_RELRO only) or none."""

    FULL = "full"
    PARTIAL = "partial"
    NONE = "none"


@dataclass(frozen=True)
class Verdict:
    """One mitigation's verdict: True (present), False (absent) or None (not applicable
    or undeterminable), with a one-line reason a person can check by hand."""

    value: bool | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` restores it exactly."""
        return {"value": self.value, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict[str, Any], memo: VerdictMemo | None = None) -> Verdict:
        """Inverse of :meth:`to_dict`. Raises ValueError on a malformed dict.

        ``memo`` shares equal verdicts while loading many facts (they are immutable)."""
        value, reason = d["value"], d["reason"]
        if (value is not None and value is not True and value is not False) or not isinstance(
            reason, str
        ):
            raise ValueError(f"malformed verdict: {d!r}")
        if memo is not None:
            found = memo.get((value, reason))
            if found is not None:
                return found
        verdict = cls(value, reason)
        if memo is not None:
            memo[(value, reason)] = verdict
        return verdict


VerdictMemo = dict[tuple[Optional[bool], str], Verdict]


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (only str, bool, None, dict). ``from_dict(to_dict())`` is equal
        to the original and dumps to the same JSON bytes, so traces replay exactly."""
        return {
            "path": self.path,
            "format": self.format.value,
            "arch": self.arch,
            "dep": self.dep.to_dict(),
            "stack_cookies": self.stack_cookies.to_dict(),
            "aslr": self.aslr.to_dict(),
            "relro": None if self.relro is None else self.relro.value,
            "relro_reason": self.relro_reason,
            "extra": {name: v.to_dict() for name, v in self.extra.items()},
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], memo: VerdictMemo | None = None) -> BinaryFacts:
        """Inverse of :meth:`to_dict`. Raises ValueError on a malformed dict."""
        try:
            return cls(
                path=str(d["path"]),
                format=FileFormat(d["format"]),
                arch=None if d["arch"] is None else str(d["arch"]),
                dep=Verdict.from_dict(d["dep"], memo),
                stack_cookies=Verdict.from_dict(d["stack_cookies"], memo),
                aslr=Verdict.from_dict(d["aslr"], memo),
                relro=None if d["relro"] is None else Relro(d["relro"]),
                relro_reason=str(d["relro_reason"]),
                extra={str(k): Verdict.from_dict(v, memo) for k, v in d["extra"].items()},
                error=None if d["error"] is None else str(d["error"]),
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"malformed binary facts: {e!r}") from e

    def with_path(self, path: str) -> BinaryFacts:
        """The same facts for another name of the same file (hard link, cache hit)."""
        if path == self.path:
            return self
        # dataclasses.replace() re-runs __init__ (3x the cost); a warm scan does this for
        # every name, so copy the fields directly. No __post_init__ to skip.
        twin = object.__new__(BinaryFacts)
        twin.__dict__.update(self.__dict__)
        twin.__dict__["path"] = path
        return twin
