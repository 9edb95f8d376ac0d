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
    exhaustive: bool  # False: the search for exposed functions stopped at the first one
    first_canary: int | None  # address of the first canary load (inside a function or not)
    first_exposed: tuple[int, int] | None  # (address, frame size) of the first exposed one

    def coverage(self, what: str = "functions") -> str:
        """ "212 of 1,840 functions load the canary"."""
        return f"{self.canary:,} of {self.functions:,} {what} load the canary"


CodeRange = tuple[int, bytes]  # (address of the first byte, the bytes)
Function = tuple[int, int]  # (start address, end address)


def analyse(
    arch: str, code: list[CodeRange], functions: list[Function], *, count_all: bool = False
) -> Coverage:
    """Count canary-storing functions and look for frame-exposing ones. ``functions`` may
    repeat, in any order; each distinct start inside ``code`` counts once.

    Exposed functions matter only where no function loads the canary, and one decides, so
    the search stops at the first unless ``count_all`` (measurements want every one)."""
    canary_re, address_re, _setup = _patterns(arch)
    code = sorted(code)
    canaries = [base + m.start() for base, data in code for m in canary_re.finditer(data)]
    inside = _distinct_in_code(code, functions)
    n_canary = 0
    if canaries:
        n_canary = sum(1 for start, end, _i in inside if _any_between(canaries, start, end))
    n_exposed, first_exposed = 0, None
    if count_all or not canaries:
        for start, end, where in inside:
            if canaries and _any_between(canaries, start, end):
                continue
            base, data = code[where]
            frame = frame_size(arch, data, start - base)
            if frame >= MIN_FRAME and address_re.search(data, start - base, end - base):
                n_exposed += 1
                first_exposed = first_exposed or (start, frame)
                if not count_all:
                    break
    exhaustive = count_all or n_exposed == 0
    first_canary = canaries[0] if canaries else None
    return Coverage(len(inside), n_canary, n_exposed, exhaustive, first_canary, first_exposed)


def _distinct_in_code(
    code: list[CodeRange], functions: list[Function]
) -> list[tuple[int, int, int]]:
    """(start, end, index into ``code``) of each distinct function start inside the code,
    its end clipped to the code. Comprehensions, not a loop: node has 85k functions."""
    if len(code) == 1:
        base, top = code[0][0], code[0][0] + len(code[0][1])
        ends = {start: end for start, end in functions if base <= start < top and end > start}
        return [(start, min(end, top), 0) for start, end in ends.items()]
    starts = [base for base, _d in code]
    out: dict[int, tuple[int, int, int]] = {}
    for start, end in functions:
        where = bisect.bisect_right(starts, start) - 1
        if where < 0 or end <= start:
            continue
        top = starts[where] + len(code[where][1])
        if start < top:  # else: not in the code we read (an absolute symbol, a gap)
            out[start] = (start, min(end, top), where)
    return list(out.values())


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
