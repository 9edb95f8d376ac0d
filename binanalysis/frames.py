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


@dataclass(frozen=True)
class Functions:
    """Function ranges: ``starts`` sorted and distinct, ``ends[i]`` where function i ends
    (``ends[i] > starts[i]``; it may run past the code, :func:`analyse` clips it)."""

    starts: list[int]
    ends: list[int]

    @classmethod
    def from_ranges(cls, ranges: list[tuple[int, int]]) -> Functions:
        """From (start, end) pairs in any order, repeats allowed (the longest wins)."""
        ends: dict[int, int] = {}
        for start, end in ranges:
            if end > ends.get(start, start):
                ends[start] = end
        starts = sorted(ends)
        return cls(starts, [ends[s] for s in starts])


NO_FUNCTIONS = Functions([], [])


def analyse(arch: str, code: list[CodeRange], functions: Functions, *,
            count_all: bool = False) -> Coverage:  # fmt: skip
    """Count the functions inside ``code`` that load the canary, and look for one that
    exposes its frame.

    Exposed functions matter only where no function loads the canary, and one decides, so
    the search stops at the first unless ``count_all`` (measurements want every one). No
    step walks every function in Python unless it must: node has 76k of them."""
    canary_re, address_re, _setup = _patterns(arch)
    starts, ends = functions.starts, functions.ends
    n_funcs = 0
    with_canary: set[int] = set()  # indexes of functions that load the canary
    first_canary: int | None = None
    spans = []  # (first index, last index + 1, base, data) per code range
    for base, data in sorted(code):
        top = base + len(data)
        lo, hi = bisect.bisect_left(starts, base), bisect.bisect_left(starts, top)
        n_funcs += hi - lo
        spans.append((lo, hi, base, data))
        for m in canary_re.finditer(data):
            at = base + m.start()
            first_canary = at if first_canary is None else min(first_canary, at)
            i = bisect.bisect_right(starts, at, lo, hi) - 1
            if i >= lo and at < ends[i]:
                with_canary.add(i)
    n_exposed, first_exposed = 0, None
    if count_all or first_canary is None:
        for lo, hi, base, data in spans:
            for i in range(lo, hi):
                if i in with_canary:
                    continue
                frame = frame_size(arch, data, starts[i] - base)
                end = min(ends[i], base + len(data))
                if frame >= MIN_FRAME and address_re.search(data, starts[i] - base, end - base):
                    n_exposed += 1
                    first_exposed = first_exposed or (starts[i], frame)
                    if not count_all:
                        break
            if first_exposed and not count_all:
                break
    exhaustive = count_all or n_exposed == 0
    return Coverage(n_funcs, len(with_canary), n_exposed, exhaustive, first_canary, first_exposed)


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
