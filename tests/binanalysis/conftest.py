"""Real binaries for the binanalysis tests, built once per session in a temporary directory.

Every compiler and linker flag that decides a verdict is written out explicitly, so the
matrix does not depend on the distribution's defaults."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PROGRAM = r"""
#include <stdio.h>
#include <string.h>
int copy(const char *s) { char buf[64]; strcpy(buf, s); return puts(buf); }
int main(int argc, char **argv) { return copy(argc > 1 ? argv[1] : "x"); }
"""
LIBRARY = r"""
#include <string.h>
int copy(char *out, const char *s) { char buf[64]; strcpy(buf, s); strcpy(out, buf); return 0; }
"""
DATA_ONLY = "const int table[4] = {1, 2, 3, 4};\nint counter = 5;\n"
# Stores a canary that is never checked (it cannot return), like abseil's throw_delegate:
# no __stack_chk_fail is imported, yet the build is protected.
NORETURN = r"""
#include <string.h>
extern void fatal(const char *) __attribute__((noreturn));
__attribute__((noreturn)) void die(const char *s) { char b[64]; strcpy(b, s); fatal(b); }
"""
# Small functions with nothing -fstack-protector-strong would protect (no arrays, no
# address-taken locals): an unprotected build of it has nothing to protect either.
SCALAR = "int add(int a, int b) { return a + b; }\nlong twice(long x) { return 2 * x; }\n"

PIE = ["-fPIE", "-pie"]
NOPIE = ["-fno-PIE", "-no-pie"]
NX = ["-Wl,-z,noexecstack"]
FULL = ["-Wl,-z,relro", "-Wl,-z,now"]
SP = ["-fstack-protector-strong"]
NOSP = ["-fno-stack-protector"]

# name -> (source, output suffix, flags)
GCC_MATRIX: dict[str, tuple[str, str, list[str]]] = {
    "nosp": (PROGRAM, "", [*NOSP, *PIE, *NX, *FULL]),
    "sp": (PROGRAM, "", ["-fstack-protector", *PIE, *NX, *FULL]),
    "sp_strong": (PROGRAM, "", [*SP, *PIE, *NX, *FULL]),
    "execstack": (PROGRAM, "", [*SP, *PIE, "-Wl,-z,execstack", *FULL]),
    "noexecstack": (PROGRAM, "", [*SP, *PIE, "-Wl,-z,noexecstack", *FULL]),
    "nopie": (PROGRAM, "", [*SP, *NOPIE, *NX, *FULL]),
    "pie": (PROGRAM, "", [*SP, *PIE, *NX, *FULL]),
    "norelro": (PROGRAM, "", [*SP, *PIE, *NX, "-Wl,-z,norelro", "-Wl,-z,lazy"]),
    "partial_relro": (PROGRAM, "", [*SP, *PIE, *NX, "-Wl,-z,relro", "-Wl,-z,lazy"]),
    "full_relro": (PROGRAM, "", [*SP, *PIE, *NX, *FULL]),
    "static": (PROGRAM, "", [*SP, "-static", *NX, *FULL]),
    "static_nosp": (PROGRAM, "", [*NOSP, "-static", *NX, *FULL]),
    "static_pie": (PROGRAM, "", [*SP, "-fPIE", "-static-pie", *NX, *FULL]),
    "stripped": (PROGRAM, "", [*SP, *PIE, *NX, *FULL, "-s"]),
    "stripped_nosp": (PROGRAM, "", [*NOSP, *PIE, *NX, *FULL, "-s"]),
    "static_stripped": (PROGRAM, "", [*SP, "-static", *NX, *FULL, "-s"]),
    "stack_size": (PROGRAM, "", [*SP, *PIE, *NX, *FULL, "-Wl,-z,stack-size=0x100000"]),
    "sysv_hash": (PROGRAM, "", [*SP, *PIE, *NX, *FULL, "-Wl,--hash-style=sysv"]),
    "sysv_hash_nosp": (PROGRAM, "", [*NOSP, *PIE, *NX, *FULL, "-Wl,--hash-style=sysv"]),
    "shared": (LIBRARY, ".so", [*SP, "-fPIC", "-shared", *NX, *FULL]),
    "shared_nosp": (LIBRARY, ".so", [*NOSP, "-fPIC", "-shared", *NX, *FULL]),
    "object": (PROGRAM, ".o", [*SP, "-c"]),
    "object_nosp": (PROGRAM, ".o", [*NOSP, "-c"]),
    "data_only": (DATA_ONLY, ".so", ["-shared", "-nostdlib", *NX, *FULL]),
    # With the CRT's few functions (_init, frame_dummy, ...), as libicudata.so has.
    "data_only_crt": (DATA_ONLY, ".so", [*NOSP, "-fPIC", "-shared", "-s", *NX, *FULL]),
    "noreturn_sp": (NORETURN, ".so", [*SP, "-O2", "-fPIC", "-shared", "-s", *NX, *FULL]),
    "scalar_nosp": (SCALAR, ".so", [*NOSP, "-fPIC", "-shared", "-s", *NX, *FULL]),
}

MINGW = {"x86_64": "x86_64-w64-mingw32-gcc", "i686": "i686-w64-mingw32-gcc"}
# name -> flags; every PE is built for both architectures.
PE_MATRIX: dict[str, list[str]] = {
    f"{nx}-{db}-{sp}": [
        "-fstack-protector-strong" if sp == "sp" else "-fno-stack-protector",
        "-Wl,--nxcompat" if nx == "nx" else "-Wl,--disable-nxcompat",
        "-Wl,--dynamicbase" if db == "db" else "-Wl,--disable-dynamicbase",
    ]
    for nx in ("nx", "nonx")
    for db in ("db", "nodb")
    for sp in ("sp", "nosp")
}


def _build(compiler: str, source: Path, out: Path, flags: list[str]) -> Path:
    subprocess.run([compiler, "-O1", *flags, str(source), "-o", str(out)], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    return out


@pytest.fixture(scope="session")
def gcc_built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> path of every GCC_MATRIX binary."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed (run scripts/install-test.sh)")
    work = tmp_path_factory.mktemp("gcc")
    jobs = {}
    with ThreadPoolExecutor(4) as pool:
        for name, (text, suffix, flags) in GCC_MATRIX.items():
            source = work / f"{name}.c"
            source.write_text(text)
            jobs[name] = pool.submit(_build, "gcc", source, work / f"{name}{suffix}", flags)
        return {name: job.result() for name, job in jobs.items()}


@pytest.fixture(scope="session")
def pe_built(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """(arch, name) -> path of every PE_MATRIX executable, for x86_64 and i686."""
    missing = [c for c in MINGW.values() if shutil.which(c) is None]
    if missing:
        pytest.skip(f"{missing[0]} not installed (run scripts/install-test.sh)")
    work = tmp_path_factory.mktemp("mingw")
    source = work / "program.c"
    source.write_text(PROGRAM)
    jobs = {}
    with ThreadPoolExecutor(4) as pool:
        for arch, compiler in MINGW.items():
            for name, flags in PE_MATRIX.items():
                out = work / f"{arch}-{name}.exe"
                jobs[(arch, name)] = pool.submit(_build, compiler, source, out, flags)
        return {key: job.result() for key, job in jobs.items()}


def pip_launchers() -> list[Path]:
    """The real Windows launchers pip and setuptools ship (distlib's t32/t64/w32/w64...).

    Located without importing the packages (importing setuptools under pytest trips its
    distutils shim)."""
    import importlib.util

    found: list[Path] = []
    for package, pattern in (("pip", "_vendor/distlib/*.exe"), ("setuptools", "*.exe")):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin:
            found += sorted(Path(spec.origin).parent.glob(pattern))
    return found
