"""Stack-protector evidence in x86 code: which functions store a canary, which expose a frame.

This is not a disassembler. It matches a handful of instruction encodings that GCC and
Clang emit, over code bytes already split into functions:

- the canary load: ``mov|sub|xor %fs:0x28,%reg`` on x86_64 and ``%gs:0x14`` on i386;
- taking the address of the function's own stack frame: ``lea X(%rsp),reg``,
  ``mov %rsp,reg`` (but not the frame-pointer set-up ``push %rbp; mov %rsp,%rbp``) and
  ``lea -X(%rbp),reg``;
- the frame's size, from the prologue's ``sub $N,%rsp`` (or ``add $-N,%rsp``).

``-fstack-protector-strong`` puts a canary in every function with a local array or an
address-taken local, so a function that takes the address of a frame of
:data:`MIN_FRAME` bytes or more and stores no canary is evidence of a build without
protection. docs/scan.md gives the measured error rates of the verdict built on this.
"""

from __future__ import annotations

import bisect
import functools
import re
import struct
from dataclasses import dataclass

MIN_FRAME = 64  # bytes of locals: a char[64] buffer, say
PROLOGUE = 64  # bytes at a function's start searched for the frame set-up

CANARY_CODE = {
    "x86_64": rb"\x64[\x48\x4c][\x8b\x2b\x33][\x04\x0c\x14\x1c\x24\x2c\x34\x3c]"
    rb"\x25\x28\x00\x00\x00",
    "i386": rb"\x65(?:\xa1|[\x8b\x2b\x33][\x05\x0d\x15\x1d\x25\x2d\x35\x3d])\x14\x00\x00\x00",
}
# ModRM bytes with r/m = 100 (a SIB byte follows) and mod 00/01/10: any destination register.
_SIB_MODRM = b"[\\x04\\x0c\\x14\\x1c\\x24\\x2c\\x34\\x3c\\x44\\x4c\\x54\\x5c\\x64\\x6c\\x74\\x7c" \
    b"\\x84\\x8c\\x94\\x9c\\xa4\\xac\\xb4\\xbc]"  # fmt: skip
_RBP_DISP8 = b"[\\x45\\x4d\\x55\\x5d\\x65\\x6d\\x75\\x7d][\\x80-\\xff]"
_RBP_DISP32 = b"[\\x85\\x8d\\x95\\x9d\\xa5\\xad\\xb5\\xbd]...[\\x80-\\xff]"
FRAME_ADDRESS = {
    "x86_64": b"[\\x48\\x4c]\\x8d" + _SIB_MODRM + b"\\x24"  # lea X(%rsp),reg
    b"|\\x48\\x89[\\xe0-\\xe3\\xe6\\xe7]|\\x49\\x89[\\xe0-\\xe7]"  # mov %rsp,reg
    # mov %rsp,%rbp, except right after push %rbp (the frame-pointer set-up)
    b"|(?<!\\x55)\\x48(?:\\x89\\xe5|\\x8b\\xec)"
    b"|\\x48\\x8b[\\xc4\\xcc\\xd4\\xdc\\xf4\\xfc]|\\x4c\\x8b[\\xc4\\xcc\\xd4\\xdc\\xe4\\xec\\xf4\\xfc]"
    b"|[\\x48\\x4c]\\x8d(?:" + _RBP_DISP8 + b"|" + _RBP_DISP32 + b")",  # lea -X(%rbp),reg
    "i386": b"\\x8d" + _SIB_MODRM + b"\\x24"
    b"|\\x89[\\xe0-\\xe3\\xe6\\xe7]|\\x8b[\\xc4\\xcc\\xd4\\xdc\\xf4\\xfc]|(?<!\\x55)(?:\\x89\\xe5|\\x8b\\xec)"
    b"|\\x8d(?:" + _RBP_DISP8 + b"|" + _RBP_DISP32 + b")",
}
FRAME_SETUP = {
    # sub $imm8,%rsp | sub $imm32,%rsp | add $-imm8,%rsp (GCC's "sub $128")
    "x86_64": rb"\x48\x83\xec(.)|\x48\x81\xec(....)|\x48\x83\xc4([\x80-\xff])",
    "i386": rb"\x83\xec(.)|\x81\xec(....)|\x83\xc4([\x80-\xff])",
}
ARCHES = tuple(CANARY_CODE)


@functools.cache
def _patterns(arch: str) -> tuple[re.Pattern[bytes], re.Pattern[bytes], re.Pattern[bytes]]:
    """Compiled on first use: most scans never need them."""
    return (
        re.compile(CANARY_CODE[arch], re.DOTALL),
        re.compile(FRAME_ADDRESS[arch], re.DOTALL),
        re.compile(FRAME_SETUP[arch], re.DOTALL),
    )


def canary_pattern(arch: str) -> re.Pattern[bytes] | None:
    """The canary-load pattern for ``arch``, or None where we have none."""
    return _patterns(arch)[0] if arch in CANARY_CODE else None


@dataclass(frozen=True)
class Coverage:
    """What the code of one file says about stack protection."""

    functions: int  # functions examined
    canary: int  # functions that load the canary
    exposed: int  # functions without a canary that take the address of a big frame
    canary_loads: int  # canary loads anywhere in the code (inside functions or not)
    first_canary: int | None  # address of the first canary load
    first_exposed: int | None  # address of the first exposed function

    def coverage(self) -> str:
        """ "212 of 1,840 functions load the canary"."""
        return f"{self.canary:,} of {self.functions:,} functions load the canary"


CodeRange = tuple[int, bytes]  # (address of the first byte, the bytes)
Function = tuple[int, int]  # (start address, end address)


def analyse(arch: str, code: list[CodeRange], functions: list[Function]) -> Coverage:
    """Count canary-storing and frame-exposing functions. ``functions`` may overlap or
    repeat; each distinct start inside ``code`` counts once."""
    canary_re, address_re, _setup = _patterns(arch)
    code = sorted(code)
    canaries = [base + m.start() for base, data in code for m in canary_re.finditer(data)]
    exposures = [base + m.start() for base, data in code for m in address_re.finditer(data)]
    starts = [base for base, _d in code]
    seen: set[int] = set()
    n_funcs = n_canary = n_exposed = 0
    first_exposed: int | None = None
    for start, end in sorted(functions):
        if start in seen or end <= start:
            continue
        where = bisect.bisect_right(starts, start) - 1
        if where < 0 or start >= code[where][0] + len(code[where][1]):
            continue  # not in the code we read (a PLT entry, an absolute symbol)
        seen.add(start)
        n_funcs += 1
        if _any_between(canaries, start, end):
            n_canary += 1
        elif _any_between(exposures, start, end):
            base, data = code[where]
            if frame_size(arch, data, start - base) >= MIN_FRAME:
                n_exposed += 1
                if first_exposed is None:
                    first_exposed = start
    return Coverage(n_funcs, n_canary, n_exposed, len(canaries),
                    canaries[0] if canaries else None, first_exposed)  # fmt: skip


def _any_between(sorted_at: list[int], start: int, end: int) -> bool:
    i = bisect.bisect_left(sorted_at, start)
    return i < len(sorted_at) and sorted_at[i] < end


def frame_size(arch: str, data: bytes, offset: int) -> int:
    """Bytes the prologue at ``data[offset:]`` reserves below the saved registers (0 if no
    ``sub``/``add`` of %rsp is found in its first :data:`PROLOGUE` bytes)."""
    m = _patterns(arch)[2].search(data, offset, offset + PROLOGUE)
    if m is None:
        return 0
    imm8, imm32, negative = m.groups()
    if imm8 is not None:
        return imm8[0]
    if imm32 is not None:
        value: int = struct.unpack("<i", imm32)[0]
        return max(value, 0)
    return 256 - negative[0]
