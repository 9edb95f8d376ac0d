"""PE verdicts on a mingw-w64 matrix (x86_64 and i686), pip's real launchers, and patched
load-config and CLR headers."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pefile
import pytest

from binanalysis import FileFormat, inspect
from tests.binanalysis.conftest import PE_MATRIX, PROGRAM, pip_launchers

ARCH = {"x86_64": "x86_64", "i686": "i386"}


@pytest.mark.parametrize("arch", sorted(ARCH))
@pytest.mark.parametrize("name", sorted(PE_MATRIX))
def test_mingw_matrix(pe_built: dict[tuple[str, str], Path], arch: str, name: str) -> None:
    nx, db, sp = name.split("-")
    facts = inspect(str(pe_built[(arch, name)]))
    assert facts.error is None
    assert (facts.format, facts.arch, facts.relro) == (FileFormat.PE, ARCH[arch], None)
    assert facts.dep.value is (nx == "nx"), facts.dep.reason
    assert facts.aslr.value is (db == "db"), facts.aslr.reason
    assert facts.stack_cookies.value is (sp == "sp"), facts.stack_cookies.reason
    if sp == "sp":
        assert facts.stack_cookies.reason == "imports __stack_chk_fail from libssp-0.dll"
    assert ("safeseh" in facts.extra) is (arch == "i686")
    assert ("high_entropy_va" in facts.extra) is (arch == "x86_64")


LAUNCHERS = pip_launchers()


@pytest.mark.parametrize("path", LAUNCHERS, ids=[p.name for p in LAUNCHERS])
def test_pip_launchers_agree_with_full_pefile_parse(path: Path) -> None:
    """Real launchers (distlib's are NX/ASLR; setuptools' old cli/gui ones are not): the
    verdicts must match what a full, slow pefile parse of the same file says."""
    facts = inspect(str(path))
    assert facts.error is None
    full = pefile.PE(str(path))
    dll_chars = full.OPTIONAL_HEADER.DllCharacteristics
    assert facts.dep.value is bool(dll_chars & 0x100)
    relocatable = not full.FILE_HEADER.Characteristics & 0x1
    assert facts.aslr.value is (bool(dll_chars & 0x40) and relocatable)
    if path.parent.name == "distlib":
        assert (facts.dep.value, facts.aslr.value) == (True, True)
    load_config = getattr(full, "DIRECTORY_ENTRY_LOAD_CONFIG", None)
    has_cookie = bool(load_config and getattr(load_config.struct, "SecurityCookie", 0))
    if has_cookie:
        assert facts.stack_cookies.reason.startswith("load config SecurityCookie")
    else:  # MSVC x64 launchers without a load config: the /GS prologues say it (issue 16)
        assert facts.stack_cookies.reason.startswith("MSVC /GS prologue: ")
        sites = int(facts.stack_cookies.reason.split(": ")[1].split()[0])
        assert sites == _objdump_gs_prologues(path) >= 2
    assert facts.stack_cookies.value is True, facts.stack_cookies.reason
    if full.FILE_HEADER.Machine == 0x14C:  # SafeSEH is a 32-bit x86 mitigation
        table = load_config and getattr(load_config.struct, "SEHandlerTable", 0)
        count = load_config and getattr(load_config.struct, "SEHandlerCount", 0)
        safe = bool(dll_chars & 0x400) or bool(table and count)
        assert facts.extra["safeseh"].value is safe, facts.extra["safeseh"].reason


def _objdump_gs_prologues(path: Path) -> int:
    """``mov X(%rip),%rax`` directly followed by ``xor %rsp,%rax``, as objdump decodes it."""
    import subprocess

    lines = subprocess.run(["objdump", "-d", str(path)], capture_output=True, text=True,
                           check=True, timeout=60).stdout.splitlines()  # fmt: skip
    return sum(
        1
        for before, line in zip(lines, lines[1:])
        if "xor    %rsp,%rax" in line and "(%rip),%rax" in before and "mov" in before
    )


@pytest.mark.parametrize("strip", [False, True])
@pytest.mark.parametrize("sp", [True, False])
def test_static_mingw_stack_protector(tmp_path: Path, strip: bool, sp: bool) -> None:
    """A static mingw -fstack-protector build imports nothing: its code reads
    __stack_chk_guard (through .refptr) and stores the canary."""
    import subprocess

    if shutil.which("x86_64-w64-mingw32-gcc") is None:
        pytest.skip("x86_64-w64-mingw32-gcc not installed (run scripts/install-test.sh)")
    source, out = tmp_path / "p.c", tmp_path / "p.exe"
    source.write_text(PROGRAM)
    flags = ["-O1", "-static", "-fstack-protector-strong" if sp else "-fno-stack-protector"]
    flags += ["-s"] if strip else []
    subprocess.run(["x86_64-w64-mingw32-gcc", *flags, str(source), "-o", str(out)],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    verdict = inspect(str(out)).stack_cookies
    assert verdict.value is sp, verdict.reason
    if sp:
        assert verdict.reason.startswith("__stack_chk_guard load: 1 function(s)"), verdict.reason


def test_launchers_found() -> None:
    assert any(p.name == "t64.exe" for p in LAUNCHERS)
    assert any(p.name == "w32.exe" for p in LAUNCHERS)


def _with_load_config(tmp_path: Path) -> tuple[Path, int, int]:
    """A copy of a 32-bit launcher that has a load config: (path, config offset, dir offset)."""
    for path in LAUNCHERS:
        pe = pefile.PE(str(path), fast_load=True)
        directory = pe.OPTIONAL_HEADER.DATA_DIRECTORY[10]
        if pe.FILE_HEADER.Machine == 0x14C and directory.VirtualAddress:
            copy = tmp_path / path.name
            shutil.copyfile(path, copy)
            offset = pe.get_offset_from_rva(directory.VirtualAddress)
            return copy, offset, directory.get_file_offset()
    pytest.skip("no 32-bit launcher with a load config")


def _patch(path: Path, offset: int, value: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + 4] = struct.pack("<I", value)
    path.write_bytes(bytes(data))


def test_load_config_read_by_its_own_size(tmp_path: Path) -> None:
    path, config, directory = _with_load_config(tmp_path)
    assert inspect(str(path)).stack_cookies.value is True
    _patch(path, directory + 4, 8)  # data-directory Size too small: must not matter
    assert inspect(str(path)).stack_cookies.value is True
    assert inspect(str(path)).stack_cookies.reason.startswith("load config SecurityCookie")
    _patch(path, config, 0x3C)  # the config's own Size ends before SecurityCookie
    facts = inspect(str(path))
    # No SecurityCookie field any more: only the /GS prologues in the code are left.
    assert facts.stack_cookies.value is True
    assert facts.stack_cookies.reason.startswith("MSVC /GS prologue: ")


def test_il_only_dotnet(pe_built: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    """A CLR header with COMIMAGE_FLAGS_ILONLY: DEP yes (runtime), cookies not applicable."""
    path = tmp_path / "il.exe"
    shutil.copyfile(pe_built[("i686", "nonx-db-nosp")], path)
    pe = pefile.PE(str(path), fast_load=True)
    clr_entry = pe.OPTIONAL_HEADER.DATA_DIRECTORY[14].get_file_offset()
    cor20_at = 0x40  # in the DOS stub: headers are mapped at RVA == file offset
    data = bytearray(path.read_bytes())
    data[cor20_at : cor20_at + 20] = struct.pack("<IHHIII", 72, 2, 5, 0, 0, 1)
    data[clr_entry : clr_entry + 8] = struct.pack("<II", cor20_at, 72)
    path.write_bytes(bytes(data))
    facts = inspect(str(path))
    assert facts.extra["dotnet_il_only"].value is True
    assert facts.dep.value is True
    assert "runtime" in facts.dep.reason
    assert facts.stack_cookies.value is None


@pytest.mark.parametrize(
    "data",
    [b"MZ", b"MZ is how this text file starts\n", b"MZ" + bytes(0x3A) + struct.pack("<I", 0x40)],
)
def test_mz_without_pe_signature_is_other(tmp_path: Path, data: bytes) -> None:
    """DOS programs and data that happen to start with MZ are neither PE nor errors."""
    path = tmp_path / "dos.exe"
    path.write_bytes(data + bytes(64))
    facts = inspect(str(path))
    assert (facts.format, facts.error) == (FileFormat.OTHER, None)
