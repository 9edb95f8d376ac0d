"""PE mitigations, parsed with pefile from bytes read through :mod:`binanalysis.reader`.

- DEP: ``IMAGE_DLLCHARACTERISTICS_NX_COMPAT``; IL-only .NET assemblies get yes (the runtime
  provides it).
- Stack cookies: a load-config directory with ``SecurityCookie`` != 0 (the directory is read
  by its own ``Size`` field, never by the data-directory size), or a mingw
  ``__stack_chk_fail`` import; else the cookie pattern in the code: MSVC's /GS prologue
  (``mov __security_cookie(%rip),%rax; xor %rsp,%rax``, in at least two functions), as in
  distlib's ``t64.exe`` which has no load config, or a GCC canary store from mingw's
  ``__stack_chk_guard`` (static ``-fstack-protector`` builds import nothing).
- ASLR: ``DYNAMIC_BASE`` with relocations not stripped.
- Extras: high-entropy VA (64-bit), CFG, SafeSEH (32-bit), .NET IL-only.

pefile is loaded with ``fast_load`` and asked only for the import directory. It raises a
variety of exceptions on hostile input; all of them become BinaryParseError here, at the
boundary. PE images are read whole, so they are bounded by :data:`MAX_PE_SIZE`.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from binanalysis.interface import BinaryFacts, BinaryParseError, FileFormat, Verdict
from binanalysis.reader import FileBytes

MAX_PE_SIZE = 256 << 20

MACHINES = {0x14C: "i386", 0x8664: "x86_64", 0x1C0: "arm", 0x1C4: "arm", 0xAA64: "aarch64"}
PE32_PLUS = 0x20B
RELOCS_STRIPPED = 0x1
HIGH_ENTROPY_VA, DYNAMIC_BASE, NX_COMPAT, NO_SEH, GUARD_CF = 0x20, 0x40, 0x100, 0x400, 0x4000
DIR_IMPORT, DIR_SECURITY, DIR_LOAD_CONFIG, DIR_CLR = 1, 4, 10, 14
COMIMAGE_FLAGS_ILONLY = 0x1
CF_INSTRUMENTED = 0x100
# (SecurityCookie, SEHandlerTable, SEHandlerCount, GuardFlags) offsets in the load config.
LOAD_CONFIG_FIELDS = {False: (0x3C, 0x40, 0x44, 0x58), True: (0x58, 0x60, 0x68, 0x90)}
MAX_LOAD_CONFIG = 0x400
MINGW_COOKIE_IMPORTS = {b"__stack_chk_fail", b"__stack_chk_guard"}


def inspect_pe(r: FileBytes) -> BinaryFacts:
    """Facts about the PE file behind ``r``. Raises BinaryParseError on corrupt input."""
    if r.size > MAX_PE_SIZE:
        raise BinaryParseError(f"PE file is above the {MAX_PE_SIZE >> 20} MiB limit")
    data = r.read(0, r.size, "PE image")
    try:
        return _inspect(r.path, data)
    except BinaryParseError:
        raise
    except Exception as e:  # pefile raises many kinds of errors on hostile input
        first_line = (str(e).splitlines() or [type(e).__name__])[0]
        raise BinaryParseError(f"corrupt PE: {first_line}") from e


def _inspect(path: str, data: bytes) -> BinaryFacts:
    import pefile

    pe = pefile.PE(data=data, fast_load=True)
    _check_complete(pe, data)
    is64 = pe.OPTIONAL_HEADER.Magic == PE32_PLUS
    machine = pe.FILE_HEADER.Machine
    dll_chars = pe.OPTIONAL_HEADER.DllCharacteristics
    il_only = _il_only(pe)
    cookie, safeseh, guard_flags = _load_config(pe, is64)
    extra = {
        "dotnet_il_only": Verdict(il_only, "CLR header flags" if il_only else "no IL-only CLR"),
        "cfg": Verdict(
            bool(dll_chars & GUARD_CF) and bool(guard_flags & CF_INSTRUMENTED),
            f"GUARD_CF {'set' if dll_chars & GUARD_CF else 'not set'}, GuardFlags {guard_flags:#x}",
        ),
    }
    if is64:
        extra["high_entropy_va"] = Verdict(
            bool(dll_chars & HIGH_ENTROPY_VA),
            f"HIGH_ENTROPY_VA {'set' if dll_chars & HIGH_ENTROPY_VA else 'not set'}",
        )
    else:
        extra["safeseh"] = _safeseh(dll_chars, safeseh)
    return BinaryFacts(
        path=path,
        format=FileFormat.PE,
        arch=MACHINES.get(machine, f"machine-{machine:#x}"),
        dep=_dep(dll_chars, il_only),
        stack_cookies=_cookies(pe, il_only, cookie),
        aslr=_aslr(pe.FILE_HEADER.Characteristics, dll_chars),
        relro=None,
        relro_reason="RELRO is an ELF mitigation",
        extra=extra,
    )


def _check_complete(pe: Any, data: bytes) -> None:
    """A truncated file is an error even where the headers we need happen to survive."""
    for section in pe.sections:
        if section.PointerToRawData + section.SizeOfRawData > len(data):
            name = section.Name.rstrip(b"\0").decode("ascii", "replace")
            raise BinaryParseError(f"truncated: section {name} ends past the file's end")
    symbols = pe.FILE_HEADER.PointerToSymbolTable
    if symbols:  # COFF symbols (mingw leaves them in), then the string table's size
        strings = symbols + pe.FILE_HEADER.NumberOfSymbols * 18
        if strings + 4 > len(data):
            raise BinaryParseError("truncated: COFF symbol table ends past the file's end")
        (strings_size,) = struct.unpack_from("<I", data, strings)
        if strings + strings_size > len(data):
            raise BinaryParseError("truncated: COFF string table ends past the file's end")
    offset, size = _directory(pe, DIR_SECURITY)  # a file offset, not an RVA
    if offset and offset + size > len(data):
        raise BinaryParseError("truncated: certificate table ends past the file's end")


def _directory(pe: Any, index: int) -> tuple[int, int]:
    dirs = pe.OPTIONAL_HEADER.DATA_DIRECTORY
    if index >= len(dirs):
        return 0, 0
    return dirs[index].VirtualAddress, dirs[index].Size


def _il_only(pe: Any) -> bool:
    rva, size = _directory(pe, DIR_CLR)
    if not rva or size < 20:
        return False
    (flags,) = struct.unpack("<I", pe.get_data(rva + 16, 4))
    return bool(flags & COMIMAGE_FLAGS_ILONLY)


def _load_config(pe: Any, is64: bool) -> tuple[int | None, tuple[int, int] | None, int]:
    """(SecurityCookie, (SEHandlerTable, SEHandlerCount), GuardFlags), each only when the
    load config's own ``Size`` covers the field; None/0 otherwise."""
    rva, _dir_size = _directory(pe, DIR_LOAD_CONFIG)
    if not rva:
        return None, None, 0
    (size,) = struct.unpack("<I", pe.get_data(rva, 4))
    blob = pe.get_data(rva, min(size, MAX_LOAD_CONFIG))
    cookie_at, seh_at, seh_count_at, guard_at = LOAD_CONFIG_FIELDS[is64]
    word = "<Q" if is64 else "<I"
    wsize = 8 if is64 else 4

    def field(offset: int, fmt: str, width: int) -> int | None:
        if offset + width > min(size, len(blob)):
            return None
        value: int = struct.unpack_from(fmt, blob, offset)[0]
        return value

    cookie = field(cookie_at, word, wsize)
    table, count = field(seh_at, word, wsize), field(seh_count_at, word, wsize)
    seh = (table, count) if table is not None and count is not None else None
    return cookie, seh, field(guard_at, "<I", 4) or 0


def _dep(dll_chars: int, il_only: bool) -> Verdict:
    if dll_chars & NX_COMPAT:
        return Verdict(True, "NX_COMPAT set")
    if il_only:
        return Verdict(True, "IL-only .NET assembly: the runtime provides DEP")
    return Verdict(False, "NX_COMPAT not set")


def _aslr(characteristics: int, dll_chars: int) -> Verdict:
    if not dll_chars & DYNAMIC_BASE:
        return Verdict(False, "DYNAMIC_BASE not set")
    if characteristics & RELOCS_STRIPPED:
        return Verdict(False, "DYNAMIC_BASE set but relocations stripped: cannot move")
    return Verdict(True, "DYNAMIC_BASE set, relocations present")


def _cookies(pe: Any, il_only: bool, cookie: int | None) -> Verdict:
    if il_only:
        return Verdict(None, "IL-only .NET assembly: no native code to protect")
    if cookie:
        return Verdict(True, f"load config SecurityCookie at {cookie:#x}")
    pe.parse_data_directories(directories=[DIR_IMPORT])
    for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        for imp in entry.imports:
            if imp.name in MINGW_COOKIE_IMPORTS:
                dll = entry.dll.decode("ascii", "replace")
                return Verdict(True, f"imports {imp.name.decode()} from {dll}")
    found = _cookie_in_code(pe)
    if found:
        return Verdict(True, found)
    if cookie is None:
        return Verdict(False, "no load config SecurityCookie, no __stack_chk_fail import and "
                       "no cookie check in the code")  # fmt: skip
    return Verdict(False, "load config SecurityCookie is 0, no __stack_chk_fail import and "
                   "no cookie check in the code")  # fmt: skip


SCN_MEM_EXECUTE = 0x20000000
# MSVC /GS x64 prologue: mov __security_cookie(%rip),%rax; xor %rsp,%rax
MSVC_GS_X64 = re.compile(rb"\x48\x8b\x05(....)\x48\x33\xc4", re.DOTALL)
# MSVC /GS x86 prologue: mov __security_cookie,%eax; xor %ebp,%eax
MSVC_GS_X86 = re.compile(rb"\xa1(....)\x33\xc5", re.DOTALL)
# GCC -fstack-protector against mingw's __stack_chk_guard (through its .refptr slot):
# mov slot(%rip),%reg; mov (%reg),%rax; mov %rax,X(%rsp|%rbp); xor %eax,%eax
MINGW_GUARD_X64 = re.compile(
    rb"[\x48\x4c]\x8b[\x05\x0d\x15\x1d\x35\x3d](....)[\x48\x49]\x8b[\x00-\x3f]"
    rb"\x48\x89(?:[\x44\x4c\x54\x5c\x64\x6c\x74\x7c]\x24.|[\x45\x4d\x55\x5d\x65\x6d\x75\x7d].)"
    rb"\x31[\xc0\xc9\xd2\xdb\xf6\xff]",
    re.DOTALL,
)
MIN_COOKIE_SITES = 2  # one cookie variable read by at least this many prologues


def _cookie_in_code(pe: Any) -> str | None:
    """The stack-cookie pattern in executable sections, where no header says so: MSVC
    launchers with no load config (distlib's t64.exe), static mingw -fstack-protector."""
    is64 = pe.OPTIONAL_HEADER.Magic == PE32_PLUS
    base = pe.OPTIONAL_HEADER.ImageBase
    patterns: tuple[tuple[re.Pattern[bytes], str], ...] = (
        (MSVC_GS_X64, "MSVC /GS prologue"),
        (MINGW_GUARD_X64, "__stack_chk_guard load"),
    )
    if not is64:
        patterns = ((MSVC_GS_X86, "MSVC /GS prologue"),)
    for section in pe.sections:
        if not section.Characteristics & SCN_MEM_EXECUTE:
            continue
        code, rva = section.get_data(), section.VirtualAddress
        for pattern, what in patterns:
            sites: dict[int, list[int]] = {}
            for m in pattern.finditer(code):
                (disp,) = struct.unpack("<i" if is64 else "<I", m.group(1))
                # rip-relative: the target is after the 7-byte load; x86 is absolute.
                target = rva + m.start() + 7 + disp if is64 else disp - base
                sites.setdefault(target, []).append(m.start())
            if not sites:
                continue
            target, at = max(sites.items(), key=lambda kv: len(kv[1]))
            if len(at) >= MIN_COOKIE_SITES or pattern is MINGW_GUARD_X64:
                return (f"{what}: {len(at)} function(s) read the cookie at RVA {target:#x} "
                        f"(first at RVA {rva + at[0]:#x}), found in the code")  # fmt: skip
    return None


def _safeseh(dll_chars: int, seh: tuple[int, int] | None) -> Verdict:
    if dll_chars & NO_SEH:
        return Verdict(True, "NO_SEH set: the image has no exception handlers to hijack")
    if seh and seh[0] and seh[1]:
        return Verdict(True, f"SEHandlerTable with {seh[1]} handlers")
    return Verdict(False, "no SEHandlerTable in the load config")
