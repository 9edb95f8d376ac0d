"""``inspect(path)``: the one entry point from a file to its :class:`BinaryFacts`.

The file's magic picks the parser; a parse error becomes facts with ``error`` set (verdicts
None), so callers get a verdict for every file. Only a file that cannot be read at all raises
(:class:`~binanalysis.interface.BinaryReadError`): that says nothing about its content.
"""

from __future__ import annotations

from binanalysis.interface import BinaryFacts, BinaryParseError, FileFormat, Verdict
from binanalysis.reader import CacheKey, FileBytes

ELF_MAGIC = b"\x7fELF"


def inspect(path: str) -> BinaryFacts:
    """Facts about the file at ``path``. Raises BinaryReadError if it cannot be read."""
    return inspect_keyed(path)[1]


def inspect_keyed(path: str) -> tuple[CacheKey, BinaryFacts]:
    """Like :func:`inspect`, plus the cache key of exactly the file that was read."""
    with FileBytes(path) as r:
        try:
            r.check_size()
            return r.key, _dispatch(r)
        except BinaryParseError as e:
            return r.key, error_facts(path, _format_of(r.head), str(e))


def _format_of(head: bytes) -> FileFormat:
    if head.startswith(ELF_MAGIC):
        return FileFormat.ELF
    if head.startswith(b"MZ"):
        return FileFormat.PE
    return FileFormat.OTHER


def _dispatch(r: FileBytes) -> BinaryFacts:
    # The parsers are imported on first use: a cache-only (warm) scan never loads them.
    fmt = _format_of(r.head)
    if fmt is FileFormat.ELF:
        from binanalysis.elf import inspect_elf

        return inspect_elf(r)
    if fmt is FileFormat.PE:
        from binanalysis.pe import inspect_pe

        return inspect_pe(r)
    na = Verdict(None, "not an ELF or PE file")
    return BinaryFacts(r.path, FileFormat.OTHER, None, na, na, na, None, na.reason)


def error_facts(path: str, fmt: FileFormat, message: str) -> BinaryFacts:
    """Facts for a file that could not be parsed: every verdict None, ``error`` set."""
    message = " ".join(message.split()) or "unknown parse error"
    na = Verdict(None, f"error: {message}")
    return BinaryFacts(path, fmt, None, na, na, na, None, na.reason, error=message)
