"""Hand-made ELF files for cases no compiler produces on purpose (two PT_GNU_STACK headers,
none at all, W+X segments, 32-bit and big-endian layouts, Go notes)."""

from __future__ import annotations

import struct

PT_LOAD, PT_NOTE, PT_GNU_STACK, PT_GNU_PROPERTY = 1, 4, 0x6474E551, 0x6474E553
PF_X, PF_W, PF_R = 1, 2, 4
ET_REL, ET_EXEC, ET_DYN = 1, 2, 3
EM_386, EM_X86_64, EM_AARCH64 = 3, 62, 183
BASE = 0x400000

# One segment: (p_type, p_flags, payload). A PT_LOAD with an empty payload maps the whole file.
Segment = tuple[int, int, bytes]


def make_elf(
    segments: list[Segment],
    *,
    is64: bool = True,
    little: bool = True,
    e_type: int = ET_EXEC,
    machine: int = EM_X86_64,
) -> bytes:
    """An ELF file with exactly these program headers and nothing else (no sections)."""
    e = "<" if little else ">"
    ehsize, phentsize = (64, 56) if is64 else (52, 32)
    cursor = ehsize + phentsize * len(segments)
    placed = []
    for _type, _flags, payload in segments:
        placed.append(cursor if payload else 0)
        cursor += len(payload)
    total = cursor
    phdrs = b""
    for (p_type, flags, payload), offset in zip(segments, placed):
        size = total if p_type == PT_LOAD and not payload else len(payload)
        vaddr = BASE + offset
        if is64:
            phdrs += struct.pack(e + "IIQQQQQQ", p_type, flags, offset, vaddr, vaddr, size, size, 8)
        else:
            phdrs += struct.pack(e + "IIIIIIII", p_type, offset, vaddr, vaddr, size, size, flags, 4)
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1 if little else 2, 1]) + bytes(9)
    fmt = e + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH")
    header = ident + struct.pack(
        fmt, e_type, machine, 1, BASE, ehsize if segments else 0, 0, 0, ehsize, phentsize,
        len(segments), 64 if is64 else 40, 0, 0,
    )  # fmt: skip
    return header + phdrs + b"".join(payload for _t, _f, payload in segments)


def note(name: bytes, n_type: int, desc: bytes, align: int = 4) -> bytes:
    """One ELF note (little-endian)."""
    padded = name + b"\0"
    padded += b"\0" * (-(12 + len(padded)) % align)  # the descriptor starts aligned
    return struct.pack("<III", len(name) + 1, len(desc), n_type) + padded + desc


def x86_feature_property(bits: int) -> bytes:
    """A NT_GNU_PROPERTY_TYPE_0 note carrying GNU_PROPERTY_X86_FEATURE_1_AND = ``bits``."""
    prop = struct.pack("<IIII", 0xC0000002, 4, bits, 0)
    return note(b"GNU", 5, prop, align=8)


STACK_RW = (PT_GNU_STACK, PF_R | PF_W, b"")
STACK_RWX = (PT_GNU_STACK, PF_R | PF_W | PF_X, b"")
LOAD_RX = (PT_LOAD, PF_R | PF_X, b"")
