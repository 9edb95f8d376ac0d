"""``inspect(path)``: the one entry point from a file to its :class:`BinaryFacts`.

The file's magic picks the parser; a parse error becomes facts with ``error`` set (verdicts
None), so callers get a verdict for every file. Only a file that cannot be read at all raises
(:class:`~binanalysis.interface.BinaryReadError`): that says nothing about its content.
"""

from __future__ import annotations

import struct

from binanalysis.interface import BinaryFacts, BinaryParseError, FileFormat, Verdict
from binanalysis.reader import CacheKey, FileBytes

ELF_MAGIC = b"\x7fELF"


def inspect(path: str) -> BinaryFacts:
    """Facts about the file at ``path``. Raises BinaryReadError if it cannot be read."""
    return inspect_keyed(path)[1]


def inspect_keyed(path: str) -> tuple[CacheKey, BinaryFacts]:
    """Like :func:`inspect`, plus the cache key of exactly the file that was read."""
    with FileBytes(path) as r:
        fmt = FileFormat.OTHER  # until the magic (and PE signature) says otherwise
        try:
            fmt = _format_of(r)
            r.check_size()
            return r.key, _dispatch(r, fmt)
        except BinaryParseError as e:
            return r.key, error_facts(path, fmt, str(e))


def _format_of(r: FileBytes) -> FileFormat:
    if r.head.startswith(ELF_MAGIC):
        return FileFormat.ELF
    if r.head.startswith(b"MZ") and _has_pe_signature(r):
        return FileFormat.PE
    return FileFormat.OTHER  # an MZ file without "PE\0\0" is a DOS program or just data


def _has_pe_signature(r: FileBytes) -> bool:
    if r.size < 0x40:
        return False
    (lfanew,) = struct.unpack("<I", r.read(0x3C, 4, "e_lfanew"))
    return lfanew + 4 <= r.size and r.read(lfanew, 4, "PE signature") == b"PE\0\0"


def _dispatch(r: FileBytes, fmt: FileFormat) -> BinaryFacts:
    # The parsers are imported on first use: a cache-only (warm) scan never loads them.
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
