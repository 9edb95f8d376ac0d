"""ELF verdicts on a gcc-built matrix and on hand-made files, with exact expected values."""

from __future__ import annotations

from pathlib import Path

import pytest

from binanalysis import BinaryFacts, FileFormat, Relro, inspect
from tests.binanalysis import craft
from tests.binanalysis.craft import LOAD_RX, PF_R, PF_W, PF_X, PT_LOAD, STACK_RW, STACK_RWX

T, F, NA = True, False, None
FULL, PARTIAL, NONE = Relro.FULL, Relro.PARTIAL, Relro.NONE

# name -> (dep, stack_cookies, aslr, relro, words in the stack-cookie reason)
EXPECTED: dict[str, tuple[bool | None, bool | None, bool | None, Relro | None, str]] = {
    "nosp": (T, F, T, FULL, "built without stack protection: 0 of 5 functions"),
    "sp": (T, T, T, FULL, "__stack_chk_fail imported"),
    "sp_strong": (T, T, T, FULL, "__stack_chk_fail imported"),
    "execstack": (F, T, T, FULL, "imported"),
    "noexecstack": (T, T, T, FULL, "imported"),
    "nopie": (T, T, F, FULL, "imported"),
    "pie": (T, T, T, FULL, "imported"),
    "norelro": (T, T, T, NONE, "imported"),
    "partial_relro": (T, T, T, PARTIAL, "imported"),
    "full_relro": (T, T, T, FULL, "imported"),
    # Static binaries define the cookie symbols (glibc's own code is built with them).
    # With no dynamic section there is no BIND_NOW flag to find: partial.
    "static": (T, T, F, PARTIAL, "defined (.symtab)"),
    "static_nosp": (T, T, F, PARTIAL, "defined (.symtab)"),
    "static_pie": (T, T, T, FULL, "defined (.symtab)"),
    "stripped": (T, T, T, FULL, "__stack_chk_fail imported (.dynsym)"),
    "stripped_nosp": (T, F, T, FULL, "takes the address of its 64-byte stack frame"),
    "static_stripped": (T, T, F, PARTIAL, "canary load from %fs:0x28"),
    "stack_size": (T, T, T, FULL, "imported"),
    "sysv_hash": (T, T, T, FULL, "__stack_chk_fail imported (.dynsym, DT_HASH)"),
    "sysv_hash_nosp": (T, F, T, FULL, "built without"),
    "shared": (T, T, T, FULL, "imported"),
    "shared_nosp": (T, F, T, FULL, "built without stack protection: 0 of 3 functions"),
    "object": (NA, T, NA, None, "__stack_chk_fail imported (.symtab)"),
    "object_nosp": (NA, F, NA, None, "built without"),
    "data_only": (T, NA, T, FULL, "no executable"),
    "data_only_crt": (T, NA, T, FULL, "nothing to protect"),
    "noreturn_sp": (T, T, T, FULL, "built with stack protection: 1 of"),
    "scalar_nosp": (T, NA, T, FULL, "nothing to protect: 0 of"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gcc_matrix(gcc_built: dict[str, Path], name: str) -> None:
    dep, cookies, aslr, relro, words = EXPECTED[name]
    facts = inspect(str(gcc_built[name]))
    assert facts.error is None
    assert (facts.format, facts.arch) == (FileFormat.ELF, "x86_64")
    got = (facts.dep.value, facts.stack_cookies.value, facts.aslr.value, facts.relro)
    assert got == (dep, cookies, aslr, relro), _reasons(facts)
    assert words in facts.stack_cookies.reason


def _reasons(facts: BinaryFacts) -> str:
    return f"{facts.dep.reason} | {facts.stack_cookies.reason} | {facts.aslr.reason}"


def test_reasons_name_the_deciding_header(gcc_built: dict[str, Path]) -> None:
    assert "executable" in inspect(str(gcc_built["execstack"])).dep.reason
    assert "DF_1_PIE" in inspect(str(gcc_built["static_pie"])).aslr.reason
    assert "ET_EXEC" in inspect(str(gcc_built["nopie"])).aslr.reason
    assert "BIND_NOW" in inspect(str(gcc_built["full_relro"])).relro_reason
    assert "shared object" in inspect(str(gcc_built["shared"])).aslr.reason


def test_fortify_seen_in_imports(gcc_built: dict[str, Path], tmp_path: Path) -> None:
    source = tmp_path / "f.c"
    source.write_text(
        '#include <stdio.h>\nint main(int c, char **v) { printf("%d", c); return 0; }\n'
    )
    import subprocess

    fortified, plain = tmp_path / "fortified", tmp_path / "plain"
    for out, flags in ((fortified, ["-O2", "-D_FORTIFY_SOURCE=2"]), (plain, ["-O0"])):
        subprocess.run(["gcc", *flags, str(source), "-o", str(out)], check=True, timeout=60)
    assert inspect(str(fortified)).extra["fortify"].value is True
    assert "__printf_chk" in inspect(str(fortified)).extra["fortify"].reason
    assert inspect(str(plain)).extra["fortify"].value is False


def test_defined_cookie_found_through_gnu_hash() -> None:
    """glibc defines __stack_chk_fail and exports it: found by a DT_GNU_HASH lookup."""
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    if not Path(libc).exists():
        pytest.skip("no x86_64 glibc")
    reason = inspect(libc).stack_cookies.reason
    assert reason == "__stack_chk_fail defined (.dynsym, DT_GNU_HASH)"


@pytest.mark.parametrize("bits", ["-m64", "-m32"])
def test_placeholder_stub_library_is_not_applicable(tmp_path: Path, bits: str) -> None:
    """glibc's libpthread.so.0 and friends define only 1-byte placeholder functions: there
    is no code to protect, so no cookie verdict (and no finding). A library with one real,
    unprotected function next to them still gets False."""
    import subprocess

    placeholder = "void placeholder_a(void) {}\nvoid placeholder_b(void) {}\n"
    real = "int real(char *s) { char b[64]; __builtin_strcpy(b, s); return b[3]; }\n"
    built = {}
    for name, code in (("stub", placeholder), ("mixed", placeholder + real)):
        source, out = tmp_path / f"{name}.c", tmp_path / f"lib{name}{bits}.so"
        source.write_text(code)
        # -nostdlib: no crt files, so -m32 builds without the 32-bit multilib.
        flags = [bits, "-O2", "-shared", "-fPIC", "-nostdlib", "-fno-stack-protector"]
        flags.append("-fcf-protection=none")  # keep placeholders at one byte (no endbr)
        subprocess.run(["gcc", *flags, str(source), "-o", str(out)], check=True, timeout=60)
        built[name] = inspect(str(out)).stack_cookies
    assert built["stub"].value is None
    assert "placeholder" in built["stub"].reason
    assert built["mixed"].value is False, built["mixed"].reason
    system = Path("/lib/x86_64-linux-gnu/libpthread.so.0")
    if bits == "-m64" and system.exists():
        assert inspect(str(system)).stack_cookies.value is None


def test_ldconfig_static_pie_has_stack_cookies() -> None:
    """checksec 2.6 says "No canary" for this stripped static-pie: it only looks at symbols."""
    path = "/usr/sbin/ldconfig"
    if not Path(path).exists():
        pytest.skip("no /usr/sbin/ldconfig")
    facts = inspect(path)
    assert facts.stack_cookies.value is True, facts.stack_cookies.reason
    assert "canary load" in facts.stack_cookies.reason
    assert facts.aslr.value is True


# ---------------------------------------------------------------- hand-made files


def _write(tmp_path: Path, data: bytes, name: str = "crafted") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(("is64", "little"), [(True, True), (False, True), (True, False)])
def test_last_gnu_stack_decides(tmp_path: Path, is64: bool, little: bool) -> None:
    machine = craft.EM_X86_64 if is64 else craft.EM_386
    kw = {"is64": is64, "little": little, "machine": machine}
    last_x = inspect(_write(tmp_path, craft.make_elf([LOAD_RX, STACK_RW, STACK_RWX], **kw), "a"))
    last_nx = inspect(_write(tmp_path, craft.make_elf([LOAD_RX, STACK_RWX, STACK_RW], **kw), "b"))
    assert last_x.dep.value is False
    assert "last of 2 PT_GNU_STACK is executable" in last_x.dep.reason
    assert last_nx.dep.value is True
    assert "last of 2" in last_nx.dep.reason
    assert last_x.arch == ("x86_64" if is64 else "i386")


def test_missing_gnu_stack_means_no_dep(tmp_path: Path) -> None:
    facts = inspect(_write(tmp_path, craft.make_elf([LOAD_RX])))
    assert facts.dep.value is False
    assert "no PT_GNU_STACK" in facts.dep.reason


def test_writable_executable_load_is_reported(tmp_path: Path) -> None:
    wx = (PT_LOAD, PF_R | PF_W | PF_X, b"")
    facts = inspect(_write(tmp_path, craft.make_elf([wx, STACK_RW])))
    assert facts.dep.value is False
    assert "W+X" in facts.dep.reason


def test_no_program_headers_is_not_applicable(tmp_path: Path) -> None:
    for e_type in (craft.ET_REL, craft.ET_EXEC):
        facts = inspect(_write(tmp_path, craft.make_elf([], e_type=e_type), f"t{e_type}"))
        assert facts.error is None
        assert facts.dep.value is None
        assert "no program headers" in facts.dep.reason


def test_go_binary_cookies_not_applicable(tmp_path: Path) -> None:
    go_note = (craft.PT_NOTE, PF_R, craft.note(b"Go", 4, b"build-id-0123"))
    facts = inspect(_write(tmp_path, craft.make_elf([LOAD_RX, go_note, STACK_RW])))
    assert facts.stack_cookies.value is None
    assert "Go binary" in facts.stack_cookies.reason


@pytest.mark.parametrize(
    ("is64", "machine", "code", "expected"),
    [
        (True, craft.EM_X86_64, b"\x90\x64\x48\x8b\x04\x25\x28\x00\x00\x00\xc3", True),
        (True, craft.EM_X86_64, b"\x64\x48\x2b\x14\x25\x28\x00\x00\x00", True),  # sub %fs:0x28
        (True, craft.EM_X86_64, b"\x90" * 64, None),  # no functions, no canary
        (False, craft.EM_386, b"\x65\xa1\x14\x00\x00\x00", True),
        (False, craft.EM_386, b"\x90" * 64, None),
        (True, craft.EM_AARCH64, b"\x00" * 64, None),
    ],
)
def test_symbolless_static_code_decides(
    tmp_path: Path, is64: bool, machine: int, code: bytes, expected: bool | None
) -> None:
    text = (PT_LOAD, PF_R | PF_X, code)
    data = craft.make_elf([text, STACK_RW], is64=is64, machine=machine)
    assert inspect(_write(tmp_path, data)).stack_cookies.value is expected


def test_no_executable_code_is_not_applicable(tmp_path: Path) -> None:
    facts = inspect(_write(tmp_path, craft.make_elf([(PT_LOAD, PF_R, b""), STACK_RW])))
    assert facts.stack_cookies.value is None
    assert "no executable" in facts.stack_cookies.reason


@pytest.mark.parametrize(("bits", "ibt", "shstk"), [(3, True, True), (1, True, False), (0, F, F)])
def test_cet_property(tmp_path: Path, bits: int, ibt: bool, shstk: bool) -> None:
    prop = (craft.PT_GNU_PROPERTY, PF_R, craft.x86_feature_property(bits))
    facts = inspect(_write(tmp_path, craft.make_elf([LOAD_RX, prop, STACK_RW])))
    assert (facts.extra["cet_ibt"].value, facts.extra["cet_shstk"].value) == (ibt, shstk)


def test_not_elf_or_pe_is_other(tmp_path: Path) -> None:
    facts = inspect(_write(tmp_path, b"#!/bin/sh\necho hi\n"))
    assert facts.format is FileFormat.OTHER
    assert facts.error is None
    assert facts.dep.value is None


def test_no_function_libraries_are_not_applicable() -> None:
    """Issue 16: data-only libraries and libraries with no functions at all, flagged "no
    stack cookies" before, have nothing to protect."""
    for path in _system_libs("libicudata.so.72", "libnss_files.so.2", "libnss_dns.so.2"):
        verdict = inspect(path).stack_cookies
        assert verdict.value is None, (path, verdict.reason)
        assert verdict.reason.startswith("nothing to protect"), verdict.reason


def test_glvnd_size_zero_dispatch_stubs_are_code_not_placeholders() -> None:
    """glvnd's libOpenGL/libGLESv2 export size-0 assembly dispatch stubs: real code, so the
    placeholder-stub note must not fire; their code decides (nothing to protect here)."""
    for path in _system_libs("libOpenGL.so.0", "libGLESv2.so.2"):
        verdict = inspect(path).stack_cookies
        assert "placeholder" not in verdict.reason, verdict.reason
        assert verdict.reason.startswith("nothing to protect: 0 of"), verdict.reason


def test_gcc_runtime_is_still_a_finding() -> None:
    """libstdc++ and libgcc_s are built without -fstack-protector (really unprotected)."""
    for path in _system_libs("libstdc++.so.6", "libgcc_s.so.1"):
        verdict = inspect(path).stack_cookies
        assert verdict.value is False, verdict.reason
        assert verdict.reason.startswith("built without stack protection: 0 of "), verdict.reason


def _system_libs(*names: str) -> list[str]:
    """The named Debian libraries that are installed (skip the test if none is)."""
    found = [f"/usr/lib/x86_64-linux-gnu/{n}" for n in names]
    found = [p for p in found if Path(p).exists()]
    if not found:
        pytest.skip(f"none of {', '.join(names)} is installed")
    return found


CGO_PROGRAM = """package main

/*
#include <stdio.h>
#include <string.h>
int copy(const char *s) { char buf[64]; strcpy(buf, s); return puts(buf); }
*/
import "C"

import "os"

func main() { C.copy(C.CString(os.Args[0])) }
"""


@pytest.mark.parametrize("cflags", ["-fno-stack-protector", "-fstack-protector-strong", "pure"])
def test_go_cgo_c_functions_are_judged(tmp_path: Path, cflags: str) -> None:
    """Issue 16: pure Go stays not applicable, but a cgo C function with a char[64] and no
    canary is a finding; the exposed function named is the C one."""
    import os
    import shutil
    import subprocess

    if shutil.which("go") is None:
        pytest.skip("go not installed (golang-go, scripts/install-test.sh)")
    source = tmp_path / "main.go"
    source.write_text(CGO_PROGRAM if cflags != "pure" else "package main\nfunc main() {}\n")
    env = {**os.environ, "GOCACHE": str(tmp_path / "cache"), "GOPATH": str(tmp_path / "gopath"),
           "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "CGO_CFLAGS": f"-O2 {cflags}",
           "CGO_ENABLED": "0" if cflags == "pure" else "1"}  # fmt: skip
    out = tmp_path / "prog"
    subprocess.run(["go", "build", "-o", str(out), str(source)], check=True, env=env,
                   cwd=tmp_path, capture_output=True, timeout=300)  # fmt: skip
    verdict = inspect(str(out)).stack_cookies
    if cflags == "pure":
        assert verdict.value is None and "Go binary" in verdict.reason, verdict.reason
        return
    if cflags == "-fstack-protector-strong":
        assert verdict.value is True, verdict.reason
        return
    assert verdict.value is False, verdict.reason
    assert "cgo C functions load the canary" in verdict.reason
    from elftools.elf.elffile import ELFFile

    with open(out, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        copy = next(s for s in symtab.iter_symbols() if s.name == "copy")  # type: ignore[union-attr]
        assert f"the function at {copy['st_value']:#x} takes the address" in verdict.reason
