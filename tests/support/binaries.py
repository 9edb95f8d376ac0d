"""Real gcc-built programs for the binary and root-permission scenarios.

- ``hardened``: a static PIE with stack cookies, NX, full RELRO. Being static, it maps
  no other file, so nothing else (ld.so, libc) is attributed to it.
- ``execstack``: built ``-z execstack -fno-stack-protector``: no DEP, no stack cookies.
- ``libpreload.so``: a hardened shared object, meant to be placed in a world-writable
  directory and preloaded by a root process.

Each program sleeps the number of milliseconds given as its first argument, so a test
controls how long it lives.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

_SLEEPER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(int argc, char **argv) {
    char label[64];
    long ms = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    snprintf(label, sizeof label, "%s", argc > 2 ? argv[2] : "sleeper");
    nanosleep(&ts, NULL);
    return (int)strlen(label) < 0;
}
"""

_PRELOAD = r"""
#include <string.h>
int rba_e2e_preloaded(const char *s) {
    char copy[64];
    strncpy(copy, s, sizeof copy - 1);
    copy[sizeof copy - 1] = 0;
    return (int)strlen(copy);
}
"""

HARDENING = ["-O2", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2"]
HARDENING += ["-Wl,-z,relro,-z,now,-z,noexecstack"]
LAZY = "-Wl,-z,lazy"  # after HARDENING's -z now: partial RELRO (a Low finding, no more)


@dataclass(frozen=True)
class Programs:
    """Paths of the built programs."""

    hardened: Path
    execstack: Path
    preload: Path


def _gcc(source: str, out: Path, flags: list[str]) -> Path:
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["gcc", *flags, "-o", str(out), str(src)], check=True, capture_output=True)
    src.unlink()
    return out


def build_hardened(out: Path, *, full_relro: bool = True) -> Path:
    """A static PIE with stack cookies and NX; full RELRO unless ``full_relro`` is False
    (then partial: the one weakness, rated Low, makes the file show up in a report)."""
    lazy = [] if full_relro else [LAZY]
    return _gcc(_SLEEPER, out, ["-static-pie", "-fPIE", *HARDENING, *lazy])


def build_execstack(out: Path) -> Path:
    """A PIE with an executable stack and no stack protector."""
    return _gcc(_SLEEPER, out, ["-O0", "-fno-stack-protector", "-z", "execstack"])


def build_preload(out: Path) -> Path:
    """A hardened shared object (for LD_PRELOAD)."""
    return _gcc(_PRELOAD, out, ["-shared", "-fPIC", *HARDENING])


def build_all(directory: Path) -> Programs:
    """Build the three programs into ``directory``."""
    return Programs(
        hardened=build_hardened(directory / "rba-e2e-hardened"),
        execstack=build_execstack(directory / "rba-e2e-execstack"),
        preload=build_preload(directory / "librba-e2e-preload.so"),
    )
