"""ELF mitigations, read straight from the headers the kernel and ld.so use.

We read the ELF header, the program headers, the dynamic segment, the dynamic symbol hash
tables, notes, and (only when those say nothing) the section headers, with ``struct`` on
bytes from :class:`~binanalysis.reader.FileBytes`. pyelftools' high-level ``ELFFile`` costs
~1 ms per file to construct and walks sections we do not need; reading only these
structures is what makes a cold ``rba scan /usr/bin`` beat checksec by 50x (BENCHMARKS.md).
The tests cross-check these readers against pyelftools on every built binary.

Semantics (docs/rules.md):
- DEP: the *last* ``PT_GNU_STACK`` decides (the kernel honours the last one); none means an
  executable stack; a writable and executable ``PT_LOAD`` is reported as well.
- Stack cookies: ``__stack_chk_fail``, ``__stack_chk_fail_local``, ``__stack_chk_guard`` or
  ``__intel_security_cookie``, imported or defined, found through ``DT_GNU_HASH``/``DT_HASH``
  (no section headers needed); then ``.symtab``. Without a cookie symbol, x86 code is split
  into functions (``.symtab``, else the ``.eh_frame`` FDEs) and :mod:`binanalysis.frames`
  decides: built with protection (a function loads the canary), built without (a function
  takes the address of a 64+ byte frame and none loads it), or nothing to protect.
- ASLR: ET_DYN with ``PT_INTERP`` or ``DF_1_PIE`` (or a shared object); ET_EXEC is not.
- RELRO: ``PT_GNU_RELRO`` plus BIND_NOW (``DT_BIND_NOW``, ``DF_BIND_NOW``, ``DF_1_NOW``) is full.

Limits (beyond :mod:`binanalysis.reader`'s): at most :data:`MAX_HEADERS` program or section
headers, :data:`MAX_DYN_ENTRIES` dynamic entries, :data:`MAX_SYMBOLS` symbols scanned per
table, :data:`MAX_CHAIN` hash-chain steps per lookup and :data:`MAX_STRTAB` bytes of string
table; larger counts are errors.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from binanalysis import frames
from binanalysis.interface import BinaryFacts, BinaryParseError, FileFormat, Relro, Verdict
from binanalysis.reader import FileBytes

MAX_HEADERS = 65535
MAX_DYN_ENTRIES = 1 << 16
MAX_SYMBOLS = 1 << 22
MAX_STRTAB = 64 << 20
MAX_NOTES_BYTES = 1 << 16
MAX_HASH_BUCKETS = 1 << 24
MAX_CHAIN = 1 << 16  # hash chain steps per lookup (real chains are a few entries long)

COOKIE_SYMBOLS = (
    b"__stack_chk_fail",
    b"__stack_chk_fail_local",
    b"__stack_chk_guard",
    b"__intel_security_cookie",
)

ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4
PT_GNU_STACK, PT_GNU_RELRO, PT_GNU_PROPERTY = 0x6474E551, 0x6474E552, 0x6474E553
PF_X, PF_W = 1, 2
DT_NULL, DT_NEEDED, DT_HASH, DT_STRTAB, DT_SYMTAB = 0, 1, 4, 5, 6
DT_STRSZ, DT_SYMENT, DT_BIND_NOW, DT_FLAGS = 10, 11, 24, 30
DT_FLAGS_1, DT_GNU_HASH = 0x6FFFFFFB, 0x6FFFFEF5
DF_BIND_NOW, DF_1_NOW, DF_1_PIE = 0x8, 0x1, 0x08000000
DT_POINTERS = {DT_HASH: "DT_HASH", DT_STRTAB: "DT_STRTAB", DT_SYMTAB: "DT_SYMTAB",
               DT_GNU_HASH: "DT_GNU_HASH"}  # fmt: skip
SHT_SYMTAB, SHT_DYNSYM, SHF_EXECINSTR = 2, 11, 0x4
SHN_UNDEF = 0
NT_GO_BUILDID, NT_GNU_PROPERTY_TYPE_0 = 4, 5
GNU_PROPERTY_X86_FEATURE_1_AND = 0xC0000002

MACHINES = {
    2: "sparc", 3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm",
    42: "sh", 43: "sparc64", 50: "ia64", 62: "x86_64", 183: "aarch64", 243: "riscv",
    258: "loongarch",
}  # fmt: skip


@dataclass(frozen=True)
class _Layout:
    """Struct layouts for one ELF class and byte order."""

    ehdr: struct.Struct
    phdr: struct.Struct
    shdr: struct.Struct
    dyn: struct.Struct
    sym: struct.Struct  # (st_name, st_info, st_shndx) in both classes
    sym_name: struct.Struct  # st_name only, padded to the entry size
    sym_func: struct.Struct  # (st_info, st_shndx, st_size) in both classes
    u32: struct.Struct
    word: int

    @classmethod
    def make(cls, is64: bool, endian: str) -> _Layout:
        if is64:
            return cls(
                ehdr=struct.Struct(endian + "HHIQQQIHHHHHH"),
                phdr=struct.Struct(endian + "IIQQQQQQ"),
                shdr=struct.Struct(endian + "IIQQQQIIQQ"),
                dyn=struct.Struct(endian + "qQ"),
                sym=struct.Struct(endian + "IBxH16x"),
                sym_name=struct.Struct(endian + "I20x"),
                sym_func=struct.Struct(endian + "4xBxH8xQ"),
                u32=struct.Struct(endian + "I"),
                word=8,
            )
        return cls(
            ehdr=struct.Struct(endian + "HHIIIIIHHHHHH"),
            phdr=struct.Struct(endian + "IIIIIIII"),
            shdr=struct.Struct(endian + "IIIIIIIIII"),
            dyn=struct.Struct(endian + "iI"),
            sym=struct.Struct(endian + "I8xBxH"),
            sym_name=struct.Struct(endian + "I12x"),
            # Elf32_Sym has st_size before st_info; the size is read separately.
            sym_func=struct.Struct(endian + "12xBxH"),
            u32=struct.Struct(endian + "I"),
            word=4,
        )


_LAYOUTS = {(c, d): _Layout.make(c == 2, "<" if d == 1 else ">") for c in (1, 2) for d in (1, 2)}


class _Segment(NamedTuple):  # a tuple: built hundreds of thousands of times per scan
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int


class _Section(NamedTuple):
    name: int
    type: int
    flags: int
    offset: int
    size: int
    link: int
    entsize: int


@dataclass
class _Elf:
    """The parsed headers of one ELF file."""

    r: FileBytes
    lay: _Layout
    is64: bool
    e_type: int
    arch: str
    segments: list[_Segment]
    shoff: int
    shentsize: int
    shnum: int
    shstrndx: int
    dynamic: dict[int, list[int]] = field(default_factory=dict)
    dynstr: bytes | None = None
    dynstr_read: bool = False

    def segs(self, p_type: int) -> list[_Segment]:
        return [s for s in self.segments if s.type == p_type]

    def dyn1(self, tag: int) -> int | None:
        values = self.dynamic.get(tag)
        return values[-1] if values else None

    def offset_of(self, vaddr: int, what: str) -> int:
        """File offset of a virtual address, through the PT_LOAD segments."""
        for s in self.segments:
            if s.type == PT_LOAD and s.vaddr <= vaddr < s.vaddr + s.filesz:
                return vaddr - s.vaddr + s.offset
        raise BinaryParseError(f"{what} address {vaddr:#x} is in no loaded segment")


def _parse(r: FileBytes) -> _Elf:
    ident = r.read(0, 16, "ELF identification")
    ei_class, ei_data = ident[4], ident[5]
    if (ei_class, ei_data) not in _LAYOUTS:
        raise BinaryParseError(f"bad ELF class/data bytes {ei_class}/{ei_data}")
    lay = _LAYOUTS[(ei_class, ei_data)]
    (e_type, machine, _v, _entry, phoff, shoff, _flags, _ehsize, phentsize, phnum, shentsize,
     shnum, shstrndx) = r.unpack(lay.ehdr, 16, "ELF header")  # fmt: skip
    elf = _Elf(r, lay, ei_class == 2, e_type, MACHINES.get(machine, f"machine-{machine}"), [],
               shoff, shentsize, shnum, shstrndx)  # fmt: skip
    if phnum == 0xFFFF or (shnum == 0 and shoff):  # PN_XNUM / SHN_XINDEX: counts in section 0
        sh0 = _section_at(elf, 0)
        if phnum == 0xFFFF:
            phnum = sh0.link  # section 0's sh_info, kept in the .link slot (see _section_at)
            if phnum < 0xFFFF:
                raise BinaryParseError(f"PN_XNUM with {phnum} program headers in section 0")
        elf.shnum = sh0.size if shnum == 0 else shnum
    if shnum and shentsize != lay.shdr.size:
        raise BinaryParseError(f"section header entry size {shentsize}, want {lay.shdr.size}")
    if phnum:
        if phentsize != lay.phdr.size:  # the kernel refuses any other size too
            raise BinaryParseError(f"program header entry size {phentsize}, want {lay.phdr.size}")
        if phnum > MAX_HEADERS:
            raise BinaryParseError(f"{phnum} program headers, above the {MAX_HEADERS} limit")
        table = r.read(phoff, phentsize * phnum, "program header table")
        if ei_class == 2:
            elf.segments = [
                _Segment(t, f, o, v, fs, ms, a)
                for t, f, o, v, _p, fs, ms, a in lay.phdr.iter_unpack(table)
            ]
        else:
            elf.segments = [
                _Segment(t, f, o, v, fs, ms, a)
                for t, o, v, _p, fs, ms, f, a in lay.phdr.iter_unpack(table)
            ]
    if elf.shnum > MAX_HEADERS:
        raise BinaryParseError(f"{elf.shnum} section headers, above the {MAX_HEADERS} limit")
    _check_complete(elf)
    _read_dynamic(elf)
    return elf


def _check_complete(elf: _Elf) -> None:
    """A truncated file is an error even where the bytes we need happen to survive."""
    size = elf.r.size
    for i, seg in enumerate(elf.segments):
        if seg.filesz and seg.offset + seg.filesz > size:
            raise BinaryParseError(f"truncated: segment #{i} ends past the file's {size} bytes")
    if elf.shoff and elf.shoff + elf.shnum * elf.shentsize > size:
        raise BinaryParseError(f"truncated: section headers end past the file's {size} bytes")


def _section_at(elf: _Elf, index: int) -> _Section:
    if elf.shentsize < elf.lay.shdr.size:
        raise BinaryParseError(f"section header entry size {elf.shentsize} is too small")
    v = elf.r.unpack(elf.lay.shdr, elf.shoff + index * elf.shentsize, f"section header {index}")
    name, s_type, flags, _addr, offset, size, link, info, _align, entsize = v
    # Section 0 carries the extended program header count in sh_info: keep it reachable.
    return _Section(name, s_type, flags, offset, size, info if index == 0 else link, entsize)


def _read_dynamic(elf: _Elf) -> None:
    dyns = elf.segs(PT_DYNAMIC)
    if not dyns:
        return
    seg = dyns[0]
    size = elf.lay.dyn.size
    count = min(seg.filesz // size, MAX_DYN_ENTRIES)
    data = elf.r.read(seg.offset, count * size, "dynamic segment")
    for tag, value in elf.lay.dyn.iter_unpack(data):
        if tag == DT_NULL:
            break
        elf.dynamic.setdefault(tag, []).append(value)
    # The tables ld.so itself would use must be where the loader could find them.
    for tag, name in DT_POINTERS.items():
        if tag in elf.dynamic:
            elf.offset_of(elf.dynamic[tag][-1], name)
    syment = elf.dyn1(DT_SYMENT)
    if syment is not None and syment != elf.lay.sym_name.size:
        raise BinaryParseError(f"DT_SYMENT {syment}, want {elf.lay.sym_name.size}")


def inspect_elf(r: FileBytes) -> BinaryFacts:
    """Facts about the ELF file behind ``r``. Raises BinaryParseError on corrupt input."""
    try:
        return _inspect(r)
    except struct.error as e:  # a layout our checks let through: still the file's fault
        raise BinaryParseError(f"malformed ELF structure: {e}") from e


def _inspect(r: FileBytes) -> BinaryFacts:
    elf = _parse(r)
    if elf.e_type not in (ET_REL, ET_EXEC, ET_DYN):
        na = Verdict(None, f"ELF type {elf.e_type} (core dump or unknown): not a program")
        return BinaryFacts(r.path, FileFormat.ELF, elf.arch, na, na, na, None, na.reason)
    relro, relro_reason = _relro(elf)
    return BinaryFacts(
        path=r.path,
        format=FileFormat.ELF,
        arch=elf.arch,
        dep=_dep(elf),
        stack_cookies=_stack_cookies(elf),
        aslr=_aslr(elf),
        relro=relro,
        relro_reason=relro_reason,
        extra=_extras(elf),
    )


def _dep(elf: _Elf) -> Verdict:
    if elf.e_type == ET_REL or not elf.segments:
        return Verdict(None, _not_loadable(elf))
    stacks = elf.segs(PT_GNU_STACK)
    wx = [i for i, s in enumerate(elf.segments) if s.type == PT_LOAD and s.flags & PF_W
          and s.flags & PF_X]  # fmt: skip
    wx_note = f"; PT_LOAD #{wx[0]} is writable and executable" if wx else ""
    if not stacks:
        return Verdict(False, "no PT_GNU_STACK: loaded as needing an executable stack" + wx_note)
    which = f"last of {len(stacks)} PT_GNU_STACK" if len(stacks) > 1 else "PT_GNU_STACK"
    if stacks[-1].flags & PF_X:
        return Verdict(False, f"{which} is executable (RWX stack)" + wx_note)
    if wx:
        return Verdict(False, f"{which} is non-executable, but PT_LOAD #{wx[0]} is W+X")
    return Verdict(True, f"{which} is non-executable, no W+X PT_LOAD")


def _not_loadable(elf: _Elf) -> str:
    if elf.e_type == ET_REL:
        return "no program headers (relocatable object): the final link decides"
    return "no program headers: the file cannot be loaded"


def _aslr(elf: _Elf) -> Verdict:
    if elf.e_type == ET_EXEC:
        return Verdict(False, "ET_EXEC: loaded at a fixed address (not PIE)")
    if elf.e_type == ET_REL:
        return Verdict(None, "relocatable object: not loadable by itself")
    flags_1 = elf.dyn1(DT_FLAGS_1) or 0
    if elf.segs(PT_INTERP):
        return Verdict(True, "PIE: ET_DYN with PT_INTERP")
    if flags_1 & DF_1_PIE:
        return Verdict(True, "PIE: ET_DYN with DF_1_PIE (static-pie)")
    return Verdict(True, "shared object (ET_DYN): loaded at a random base")


def _relro(elf: _Elf) -> tuple[Relro | None, str]:
    if elf.e_type == ET_REL or not elf.segments:
        return None, _not_loadable(elf)
    if not elf.segs(PT_GNU_RELRO):
        return Relro.NONE, "no PT_GNU_RELRO"
    if DT_BIND_NOW in elf.dynamic:
        return Relro.FULL, "PT_GNU_RELRO and DT_BIND_NOW"
    if (elf.dyn1(DT_FLAGS) or 0) & DF_BIND_NOW:
        return Relro.FULL, "PT_GNU_RELRO and DF_BIND_NOW"
    if (elf.dyn1(DT_FLAGS_1) or 0) & DF_1_NOW:
        return Relro.FULL, "PT_GNU_RELRO and DF_1_NOW"
    return Relro.PARTIAL, "PT_GNU_RELRO without BIND_NOW (lazy binding: GOT stays writable)"


# ---------------------------------------------------------------- stack cookies


def _stack_cookies(elf: _Elf) -> Verdict:
    if elf.segments and not any(s.type == PT_LOAD and s.flags & PF_X for s in elf.segments):
        return Verdict(None, "no executable PT_LOAD: no code to protect")
    dynstr = _dynstr(elf)
    clean = None  # (file offset, size) of a string table known to name no cookie symbol
    if dynstr is not None:
        offsets = _name_offsets(dynstr)
        found = _dynamic_cookie(elf, offsets)
        if found:
            return Verdict(True, found)
        if not offsets:
            clean = (elf.offset_of(elf.dyn1(DT_STRTAB) or 0, "DT_STRTAB"), len(dynstr))
    sections = _sections(elf)
    if elf.e_type == ET_REL and not any(s.flags & SHF_EXECINSTR and s.size for s in sections):
        return Verdict(None, "no executable sections: no code to protect")
    tables = [s for s in sections if s.type in (SHT_SYMTAB, SHT_DYNSYM)]
    for table in tables:
        found = _section_cookie(elf, table, sections, clean)
        if found:
            return Verdict(True, found)
    if _placeholder_stub(elf, sections):
        return Verdict(None, PLACEHOLDER_STUB)
    go = _is_go(elf, sections)
    if elf.arch in frames.ARCHES:
        # No cookie symbol: only the code can tell "built without" from "nothing to protect".
        return _code_verdict(elf, sections, go=go)
    if go:
        return Verdict(None, GO_NOT_APPLICABLE)
    names = ", ".join(n.decode() for n in COOKIE_SYMBOLS[:3])
    self_contained = DT_NEEDED not in elf.dynamic and not elf.segs(PT_INTERP)
    if self_contained and elf.segments and not any(s.type == SHT_SYMTAB for s in tables):
        return Verdict(None, f"self-contained {elf.arch} file without symbols: cannot tell")
    where = "the dynamic symbols" if dynstr is not None else "the symbol tables"
    return Verdict(False, f"none of {names}, ... in {where}")


GO_NOT_APPLICABLE = "Go binary: the Go runtime checks stack bounds, no cookies needed"


def code_coverage(r: FileBytes) -> frames.Coverage | None:
    """The code evidence the stack-cookie verdict weighs when no cookie symbol decides,
    computed even where one does (bench/scan_cookie_classes.py measures with it).
    None for architectures the matcher does not know."""
    elf = _parse(r)
    if elf.arch not in frames.ARCHES:
        return None
    sections = _sections(elf)
    return _coverage(elf, sections, go=_is_go(elf, sections), count_all=True)[0]


def _coverage(
    elf: _Elf, sections: list[_Section], *, go: bool, count_all: bool = False
) -> tuple[frames.Coverage, str]:
    # .eh_frame_hdr first: one table read, where .symtab (if not stripped) costs a pass over
    # every symbol. Objects and static non-PIE programs have no .eh_frame_hdr.
    functions, source = _eh_frame_functions(elf, sections, exact=go), ".eh_frame FDEs"
    if not functions.starts and not go:
        functions, source = _symtab_functions(elf, sections)
    if go and not functions.starts:  # pure Go: no C code, and no need to read any
        return frames.Coverage(0, 0, 0, True, None, None), source
    # A Go binary's C functions are a small part of its code: read only their span.
    span = (functions.starts[0], max(functions.ends)) if go else None
    code = _code_ranges(elf, sections, span)
    return frames.analyse(elf.arch, code, functions, count_all=count_all), source


def _code_verdict(elf: _Elf, sections: list[_Section], *, go: bool) -> Verdict:
    """Built with protection, built without, or nothing to protect, from the code itself.

    Functions come from the ``.eh_frame`` FDEs, else from ``.symtab``. In a Go binary only
    the FDEs count: the Go toolchain emits none, so they are its cgo C code."""
    cov, source = _coverage(elf, sections, go=go)
    reg = "%fs:0x28" if elf.arch == "x86_64" else "%gs:0x14"
    what = "cgo C functions" if go else "functions"
    if cov.canary:
        return Verdict(True, f"built with stack protection: {cov.coverage(what)} (canary load "
                       f"from {reg}; functions from {source}; no cookie symbol)")  # fmt: skip
    if not cov.functions:
        if go:
            return Verdict(None, GO_NOT_APPLICABLE + " (no cgo C functions)")
        if cov.first_canary is not None:
            return Verdict(True, f"{NO_SYMBOL_EVIDENCE}; canary load from {reg} at "
                           f"{cov.first_canary:#x}")  # fmt: skip
        return Verdict(None, "nothing to protect: no functions (no FUNC symbols, no .eh_frame)")
    if cov.first_exposed is not None:
        at, frame = cov.first_exposed
        return Verdict(False, f"built without stack protection: {cov.coverage(what)}; the "
                       f"function at {at:#x} takes the address of its {frame}-byte stack "
                       f"frame (functions from {source})")  # fmt: skip
    return Verdict(None, f"nothing to protect: {cov.coverage(what)}, and none takes the "
                   f"address of a stack frame of {frames.MIN_FRAME}+ bytes (functions from "
                   f"{source})")  # fmt: skip


def _dynstr(elf: _Elf) -> bytes | None:
    if elf.dynstr_read:
        return elf.dynstr
    elf.dynstr_read, elf.dynstr = True, _read_dynstr(elf)
    return elf.dynstr


def _read_dynstr(elf: _Elf) -> bytes | None:
    strtab, strsz = elf.dyn1(DT_STRTAB), elf.dyn1(DT_STRSZ)
    if strtab is None or strsz is None or elf.dyn1(DT_SYMTAB) is None:
        return None
    if strsz > MAX_STRTAB:
        raise BinaryParseError(f"DT_STRSZ {strsz} is above the {MAX_STRTAB >> 20} MiB limit")
    return elf.r.read(elf.offset_of(strtab, "DT_STRTAB"), strsz, "dynamic string table")


def _name_offsets(strtab: bytes) -> dict[int, bytes]:
    """st_name values that would name a cookie symbol (suffix-merged strings included).

    Two ``bytes.find`` passes over the table: this runs for every file, so it matters."""
    found: dict[int, bytes] = {}
    for stem in (b"__stack_chk_", b"__intel_security_cookie\0"):
        pos = strtab.find(stem)
        while pos >= 0:
            end = strtab.find(b"\0", pos)
            name = strtab[pos:end] if end >= 0 else b""
            if name in COOKIE_SYMBOLS:
                found[pos] = name
            pos = strtab.find(stem, pos + 1)
    return found


def _fortified(strtab: bytes) -> list[str]:
    """Names of the ``__*_chk`` functions in a string table (except the cookie ones)."""
    names = set()
    pos = strtab.find(b"_chk\0")
    while pos >= 0:
        start = strtab.rfind(b"\0", 0, pos) + 1
        name = strtab[start : pos + 4]
        if name.startswith(b"__") and name != b"__stack_chk":
            names.add(name.decode("ascii", "replace"))
        pos = strtab.find(b"_chk\0", pos + 1)
    return sorted(names)


def _dynamic_cookie(elf: _Elf, offsets: dict[int, bytes]) -> str | None:
    """Reason text if a dynamic symbol names a cookie symbol (``offsets``: their names in
    the dynamic string table), found via the hash tables."""
    if not offsets:
        return None
    symtab = elf.offset_of(elf.dyn1(DT_SYMTAB) or 0, "DT_SYMTAB")
    syment = elf.lay.sym_name.size  # checked against DT_SYMENT in _read_dynamic
    gnu, sysv = elf.dyn1(DT_GNU_HASH), elf.dyn1(DT_HASH)
    if gnu is not None:
        return _gnu_hash_cookie(elf, elf.offset_of(gnu, "DT_GNU_HASH"), symtab, syment, offsets)
    if sysv is not None:
        return _sysv_hash_cookie(elf, elf.offset_of(sysv, "DT_HASH"), symtab, syment, offsets)
    name = next(iter(offsets.values())).decode()
    return f"{name} in .dynstr (no hash table to confirm the symbol)"


def _describe(elf: _Elf, symtab: int, syment: int, index: int, name: bytes, *, table: str) -> str:
    _st_name, _info, shndx = elf.r.unpack(elf.lay.sym, symtab + index * syment, "symbol")
    how = "imported" if shndx == SHN_UNDEF else "defined"
    return f"{name.decode()} {how} ({table})"


def _gnu_hash_cookie(
    elf: _Elf, off: int, symtab: int, syment: int, offsets: dict[int, bytes]
) -> str | None:
    u32 = elf.lay.u32
    nbuckets, symoffset, bloom_size, _shift = struct.unpack(
        u32.format[0] + "4I", elf.r.read(off, 16, "DT_GNU_HASH header")
    )
    if (
        not 0 < nbuckets <= MAX_HASH_BUCKETS
        or symoffset > MAX_SYMBOLS
        or (bloom_size > MAX_HASH_BUCKETS)
    ):
        raise BinaryParseError("DT_GNU_HASH counts are absurd")
    # Imports are never hashed: they sit below symoffset, so scan that (small) block.
    if symoffset:
        block = elf.r.read(symtab, symoffset * syment, "unhashed dynamic symbols")
        step = struct.Struct(u32.format[0] + f"I{syment - 4}x")
        for index, (st_name,) in enumerate(step.iter_unpack(block)):
            if st_name in offsets:
                return _describe(elf, symtab, syment, index, offsets[st_name], table=".dynsym")
    buckets = off + 16 + bloom_size * elf.lay.word
    chains = buckets + nbuckets * 4
    for name in set(offsets.values()):
        h = _gnu_hash(name)
        (index,) = elf.r.unpack(u32, buckets + (h % nbuckets) * 4, "DT_GNU_HASH bucket")
        if index == 0:
            continue
        if index < symoffset:
            raise BinaryParseError("DT_GNU_HASH bucket points below symoffset")
        for _ in range(MAX_CHAIN):
            (chain,) = elf.r.unpack(u32, chains + (index - symoffset) * 4, "DT_GNU_HASH chain")
            if chain | 1 == h | 1:
                (st_name,) = elf.r.unpack(u32, symtab + index * syment, "dynamic symbol")
                if offsets.get(st_name) == name:
                    return _describe(elf, symtab, syment, index, name, table=".dynsym, DT_GNU_HASH")
            if chain & 1:
                break
            index += 1
        else:
            raise BinaryParseError(f"DT_GNU_HASH chain longer than {MAX_CHAIN}")
    return None


def _sysv_hash_cookie(
    elf: _Elf, off: int, symtab: int, syment: int, offsets: dict[int, bytes]
) -> str | None:
    u32 = elf.lay.u32
    nbucket, nchain = struct.unpack(u32.format[0] + "2I", elf.r.read(off, 8, "DT_HASH header"))
    if not nbucket or nbucket > MAX_HASH_BUCKETS or nchain > MAX_SYMBOLS:
        raise BinaryParseError("DT_HASH counts are absurd")
    for name in set(offsets.values()):
        h = _sysv_hash(name)
        (index,) = elf.r.unpack(u32, off + 8 + (h % nbucket) * 4, "DT_HASH bucket")
        for _ in range(min(nchain + 1, MAX_CHAIN)):
            if index == 0:
                break
            if index >= nchain:
                raise BinaryParseError("DT_HASH chain index out of range")
            (st_name,) = elf.r.unpack(u32, symtab + index * syment, "dynamic symbol")
            if offsets.get(st_name) == name:
                return _describe(elf, symtab, syment, index, name, table=".dynsym, DT_HASH")
            (index,) = elf.r.unpack(u32, off + 8 + (nbucket + index) * 4, "DT_HASH chain")
        else:
            raise BinaryParseError("DT_HASH chain does not end (a cycle, or too long)")
    return None


def _gnu_hash(name: bytes) -> int:
    h = 5381
    for c in name:
        h = (h * 33 + c) & 0xFFFFFFFF
    return h


def _sysv_hash(name: bytes) -> int:
    h = 0
    for c in name:
        h = (h << 4) + c
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g & 0xFFFFFFFF
    return h


def _sections(elf: _Elf) -> list[_Section]:
    if not elf.shoff or not elf.shnum:
        return []
    return [_section_at(elf, i) for i in range(elf.shnum)]


def _section_cookie(
    elf: _Elf, table: _Section, sections: list[_Section], clean: tuple[int, int] | None
) -> str | None:
    if table.link >= len(sections):
        raise BinaryParseError("symbol table links to a missing string table")
    strsec = sections[table.link]
    if strsec.size > MAX_STRTAB:
        raise BinaryParseError(f"string table is above the {MAX_STRTAB >> 20} MiB limit")
    offsets: dict[int, bytes] = {}
    if (strsec.offset, strsec.size) != clean:  # .dynsym's .dynstr, searched already (node: 5 MB)
        offsets = _name_offsets(elf.r.read(strsec.offset, strsec.size, "string table"))
    entsize = table.entsize or elf.lay.sym_name.size
    if entsize != elf.lay.sym_name.size:
        raise BinaryParseError(f"symbol table entry size {entsize}, want {elf.lay.sym_name.size}")
    if not offsets:
        return None
    count = min(table.size // entsize, MAX_SYMBOLS)
    data = elf.r.read(table.offset, count * entsize, "symbol table")
    step = struct.Struct(elf.lay.u32.format[0] + f"I{entsize - 4}x")
    label = ".symtab" if table.type == SHT_SYMTAB else ".dynsym"
    for index, (st_name,) in enumerate(step.iter_unpack(data)):
        if st_name in offsets:
            return _describe(elf, table.offset, entsize, index, offsets[st_name], table=label)
    return None


PLACEHOLDER_STUB = (
    "compatibility stub: every function it defines is a 1-byte placeholder, no code to protect"
)
STT_FUNC = 2


def _placeholder_stub(elf: _Elf, sections: list[_Section]) -> bool:
    """A shared object whose defined functions are all 1-byte placeholders, like glibc's
    libpthread.so.0 or libdl.so.2 since 2.34: kept for old binaries' DT_NEEDED only."""
    if elf.e_type != ET_DYN or elf.segs(PT_INTERP):
        return False
    dynsym = next((s for s in sections if s.type == SHT_DYNSYM), None)
    if dynsym is None or dynsym.entsize != elf.lay.sym_name.size:
        return False
    count = min(dynsym.size // dynsym.entsize, MAX_SYMBOLS)
    data = elf.r.read(dynsym.offset, count * dynsym.entsize, "dynamic symbol table")
    sizes = _defined_function_sizes(elf, data, dynsym.entsize)
    # Exactly 1 byte each: glvnd's dispatch stubs have size 0 (no .size), and are real code.
    return bool(sizes) and all(size == 1 for size in sizes)


def _defined_function_sizes(elf: _Elf, data: bytes, entsize: int) -> list[int]:
    if elf.lay.word == 8:
        rows = elf.lay.sym_func.iter_unpack(data)
        return [size for info, shndx, size in rows if info & 0xF == STT_FUNC and shndx]
    sizes = [elf.lay.u32.unpack_from(data, i + 8)[0] for i in range(0, len(data), entsize)]
    rows32 = elf.lay.sym_func.iter_unpack(data)
    return [size for size, (info, shndx) in zip(sizes, rows32) if info & 0xF == STT_FUNC and shndx]


NO_SYMBOL_EVIDENCE = "no cookie symbol, no functions found"
MAX_FUNCTIONS = 1 << 20  # functions taken from .eh_frame_hdr (node has 76k)
PT_GNU_EH_FRAME = 0x6474E550
SHT_NOBITS = 8
EH_TABLE_DATAREL_SDATA4 = 0x3B  # what GNU ld and lld write for .eh_frame_hdr's table
EH_UDATA4 = 0x03


def _code_ranges(
    elf: _Elf, sections: list[_Section], span: tuple[int, int] | None = None
) -> list[frames.CodeRange]:
    """The executable bytes: PT_LOAD segments by address (only their part inside ``span``
    when given), or (in a relocatable object) executable sections by file offset, as its
    symbols are placed by :func:`_symtab_functions`."""
    if elf.e_type == ET_REL:
        return [(s.offset, elf.r.read(s.offset, s.size, "code section")) for s in sections
                if s.flags & SHF_EXECINSTR and s.size and s.type != SHT_NOBITS]  # fmt: skip
    out = []
    for seg in elf.segments:
        if seg.type != PT_LOAD or not seg.flags & PF_X or not seg.filesz:
            continue
        start, end = seg.vaddr, seg.vaddr + seg.filesz
        if span is not None:
            start, end = max(start, span[0]), min(end, span[1])
        if start < end:
            out.append((start, elf.r.read(seg.offset + start - seg.vaddr, end - start, "code")))
    return out


def _symtab_functions(elf: _Elf, sections: list[_Section]) -> tuple[frames.Functions, str]:
    """(start, end) of every defined, sized STT_FUNC in ``.symtab``."""
    table = next((s for s in sections if s.type == SHT_SYMTAB), None)
    if table is None:
        return frames.NO_FUNCTIONS, ""
    entsize = elf.lay.sym_name.size  # checked by _section_cookie already
    count = min(table.size // entsize, MAX_SYMBOLS)
    data = elf.r.read(table.offset, count * entsize, "symbol table")
    endian = elf.lay.u32.format[0]
    if elf.is64:
        rows = ((info, shndx, value, size) for _n, info, _o, shndx, value, size
                in struct.iter_unpack(endian + "IBBHQQ", data))  # fmt: skip
    else:
        rows = ((info, shndx, value, size) for _n, value, size, info, _o, shndx
                in struct.iter_unpack(endian + "IIIBBH", data))  # fmt: skip
    functions = []
    for info, shndx, value, size in rows:
        if info & 0xF != STT_FUNC or not size or shndx == SHN_UNDEF or shndx >= 0xFF00:
            continue
        start = value
        if elf.e_type == ET_REL:  # st_value is an offset in its section
            if shndx >= len(sections):
                continue
            start += sections[shndx].offset
        functions.append((start, start + size))
    return frames.Functions.from_ranges(functions), ".symtab"


def _eh_frame_functions(
    elf: _Elf, sections: list[_Section], *, exact: bool = False
) -> frames.Functions:
    """Function ranges from ``.eh_frame_hdr``'s table of FDE start addresses: each function
    runs to the next one's start (to the end of the code for the last), which is cheap and
    right where FDEs cover the code. ``exact`` reads each FDE's own address range instead:
    a Go binary's FDEs are its few C functions among Go code, which must not count.

    Only the encodings the GNU and LLVM linkers write are read; anything else gives no
    functions (and so no verdict from the code), never a wrong range."""
    hdrs = elf.segs(PT_GNU_EH_FRAME)
    if not hdrs or hdrs[0].filesz < 12:
        return frames.NO_FUNCTIONS
    seg = hdrs[0]
    hdr = elf.r.read(seg.offset, min(seg.filesz, MAX_READ_EH), ".eh_frame_hdr")
    version, ptr_enc, count_enc, table_enc = hdr[:4]
    if version != 1 or count_enc != EH_UDATA4 or table_enc != EH_TABLE_DATAREL_SDATA4:
        return frames.NO_FUNCTIONS
    pos = 4 + _encoded_size(ptr_enc, elf.lay.word)
    if pos + 4 > len(hdr):
        return frames.NO_FUNCTIONS
    (count,) = struct.unpack_from(elf.lay.u32.format[0] + "I", hdr, pos)
    count = min(count, (len(hdr) - pos - 4) // 8, MAX_FUNCTIONS)
    pairs = struct.unpack_from(f"{elf.lay.u32.format[0]}{2 * count}i", hdr, pos + 4)
    base = seg.vaddr
    if exact:
        fdes = {base + pairs[i]: base + pairs[i + 1] for i in range(0, 2 * count, 2)}
        return frames.Functions.from_ranges(_fde_ranges(elf, fdes))
    # The table is sorted (ld.so binary-searches it), so sorted() is one C pass and
    # dict.fromkeys drops repeats in order: no Python-level loop over node's 76k entries.
    starts = list(map(base.__add__, dict.fromkeys(sorted(pairs[0::2]))))
    return frames.Functions(starts, [*starts[1:], END_OF_CODE])  # analyse() clips the last


def _fde_ranges(elf: _Elf, fdes: dict[int, int]) -> list[tuple[int, int]]:
    """(start, start + pc_range) for each FDE (start -> FDE address) whose pc_begin is the
    pcrel sdata4 the table promised; others are dropped, not guessed."""
    if not fdes:
        return []
    lo, hi = min(fdes.values()), max(fdes.values()) + 16
    if hi - lo > MAX_READ_EH:
        return []
    try:
        blob = elf.r.read(elf.offset_of(lo, ".eh_frame"), hi - lo, ".eh_frame")
    except BinaryParseError:
        return []  # FDEs outside the file: judge nothing rather than guess
    unpack = struct.Struct(elf.lay.u32.format[0] + "IIiI").unpack_from
    ranges = []
    for start, fde in fdes.items():
        length, _cie, begin, size = unpack(blob, fde - lo)
        if length != 0xFFFFFFFF and fde + 8 + begin == start and size:
            ranges.append((start, start + size))
    return ranges


END_OF_CODE = 1 << 64
MAX_READ_EH = 16 << 20  # .eh_frame_hdr, or the FDEs of a Go binary's C functions


def _encoded_size(encoding: int, word: int) -> int:
    """Bytes of a DW_EH_PE-encoded value (the low nibble gives the format)."""
    return {0x0: word, 0x2: 2, 0x3: 4, 0x4: 8, 0xA: 2, 0xB: 4, 0xC: 8}.get(encoding & 0xF, 4)


def _notes(elf: _Elf, segment: _Segment) -> list[tuple[bytes, int, bytes]]:
    """(name, type, desc) of the notes in one segment."""
    size = min(segment.filesz, MAX_NOTES_BYTES)
    data = elf.r.read(segment.offset, size, "note segment")
    align = 8 if segment.align == 8 else 4
    notes, pos, u32 = [], 0, elf.lay.u32
    while pos + 12 <= size:
        namesz, descsz, n_type = struct.unpack_from(u32.format[0] + "3I", data, pos)
        name_end = pos + 12 + namesz
        desc_start = name_end + (-name_end % align)
        desc_end = desc_start + descsz
        if desc_end > size:
            raise BinaryParseError("note runs past its segment")
        notes.append((data[pos + 12 : name_end].rstrip(b"\0"), n_type, data[desc_start:desc_end]))
        pos = desc_end + (-desc_end % align)
    return notes


def _is_go(elf: _Elf, sections: list[_Section]) -> bool:
    for seg in elf.segs(PT_NOTE):
        if any(name == b"Go" and t == NT_GO_BUILDID for name, t, _d in _notes(elf, seg)):
            return True
    if sections and elf.shstrndx < len(sections):
        names = sections[elf.shstrndx]
        strtab = elf.r.read(names.offset, min(names.size, MAX_STRTAB), "section names")
        return b".gopclntab\0" in strtab or b".go.buildinfo\0" in strtab
    return False


# ---------------------------------------------------------------- extras


def _extras(elf: _Elf) -> dict[str, Verdict]:
    extra: dict[str, Verdict] = {}
    dynstr = _dynstr(elf)
    if dynstr is not None:
        chk = _fortified(dynstr)
        if chk:
            shown = ", ".join(chk[:3])
            extra["fortify"] = Verdict(True, f"{len(chk)} fortified functions ({shown}...)")
        else:
            extra["fortify"] = Verdict(False, "no __*_chk functions in the dynamic symbols")
    if elf.arch in ("x86_64", "i386") and elf.segments:
        features = _x86_features(elf)
        for bit, key, what in ((1, "cet_ibt", "IBT"), (2, "cet_shstk", "SHSTK")):
            ok = features is not None and bool(features & bit)
            note = "GNU property X86_FEATURE_1_AND"
            extra[key] = Verdict(ok, f"{what} {'marked' if ok else 'not marked'} in {note}")
    return extra


def _x86_features(elf: _Elf) -> int | None:
    segments = elf.segs(PT_GNU_PROPERTY) or elf.segs(PT_NOTE)
    for seg in segments:
        for name, n_type, desc in _notes(elf, seg):
            if name != b"GNU" or n_type != NT_GNU_PROPERTY_TYPE_0:
                continue
            pos, pad = 0, elf.lay.word
            while pos + 8 <= len(desc):
                pr_type, datasz = struct.unpack_from(elf.lay.u32.format[0] + "2I", desc, pos)
                if (
                    pr_type == GNU_PROPERTY_X86_FEATURE_1_AND
                    and datasz >= 4
                    and pos + 12 <= len(desc)
                ):
                    value: int = elf.lay.u32.unpack_from(desc, pos + 8)[0]
                    return value
                pos += 8 + datasz + (-(8 + datasz) % pad)
    return None
