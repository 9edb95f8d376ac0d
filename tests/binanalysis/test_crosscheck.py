"""Our struct-level ELF readers against pyelftools' full parse, on the gcc matrix and on a
sample of this system's binaries and libraries."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest
from elftools.elf.constants import P_FLAGS
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from binanalysis import Relro, inspect
from binanalysis.elf import COOKIE_SYMBOLS

COOKIES = {name.decode() for name in COOKIE_SYMBOLS}


def _system_sample() -> list[str]:
    """Up to 40 small ELF files from /usr/bin and the system library directory."""
    found = []
    for path in sorted(glob.glob("/usr/bin/*")) + sorted(
        glob.glob("/usr/lib/x86_64-linux-gnu/*.so.*")
    ):
        try:
            if os.path.isfile(path) and os.path.getsize(path) < 600_000:
                with open(path, "rb") as f:
                    if f.read(4) == b"\x7fELF":
                        found.append(path)
        except OSError:
            continue
    return found[:: max(1, len(found) // 40)][:40]


def _oracle(path: str) -> dict[str, object]:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        segments = list(elf.iter_segments())
        stacks = [s for s in segments if s["p_type"] == "PT_GNU_STACK"]
        wx = any(
            s["p_type"] == "PT_LOAD" and s["p_flags"] & P_FLAGS.PF_W and s["p_flags"] & P_FLAGS.PF_X
            for s in segments
        )
        dep = bool(stacks) and not stacks[-1]["p_flags"] & P_FLAGS.PF_X and not wx
        tags: dict[str, int] = {}
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags():
                    tags[str(tag.entry.d_tag)] = tag.entry.d_val
        aslr = elf["e_type"] != "ET_EXEC"  # ET_DYN: PIE (interp or DF_1_PIE) or a library
        bind_now = (
            "DT_BIND_NOW" in tags
            or tags.get("DT_FLAGS", 0) & 0x8
            or tags.get("DT_FLAGS_1", 0) & 0x1
        )
        has_relro = any(s["p_type"] == "PT_GNU_RELRO" for s in segments)
        relro = (Relro.FULL if bind_now else Relro.PARTIAL) if has_relro else Relro.NONE
        symbols = [
            sym.name
            for section in elf.iter_sections()
            if isinstance(section, SymbolTableSection)
            for sym in section.iter_symbols()
        ]
        return {
            "dep": dep,
            "aslr": aslr,
            "relro": relro,
            "cookie_symbol": any(name in COOKIES for name in symbols),
            "has_symbols": len(symbols) > 1,
        }


def _compare(path: str) -> None:
    facts = inspect(path)
    want = _oracle(path)
    assert facts.error is None, facts.error
    assert facts.dep.value is want["dep"], facts.dep.reason
    assert facts.aslr.value is want["aslr"], facts.aslr.reason
    assert facts.relro is want["relro"], facts.relro_reason
    if want["cookie_symbol"]:
        assert facts.stack_cookies.value is True, facts.stack_cookies.reason
    elif want["has_symbols"] and "canary load" not in facts.stack_cookies.reason:
        assert facts.stack_cookies.value in (False, None), facts.stack_cookies.reason


def test_matrix_agrees_with_pyelftools(gcc_built: dict[str, Path]) -> None:
    for name, path in gcc_built.items():
        if name.startswith("object"):
            continue  # ET_REL: no segments for the oracle to judge
        _compare(str(path))


@pytest.mark.parametrize("path", _system_sample())
def test_system_files_agree_with_pyelftools(path: str) -> None:
    _compare(path)


def _pyelftools_fde_starts(path: str) -> set[int]:
    """Initial locations of every FDE in .eh_frame, as pyelftools' full CFI parse gives them."""
    from elftools.dwarf.callframe import FDE

    with open(path, "rb") as f:
        elf = ELFFile(f)
        if not elf.has_dwarf_info() or elf.get_section_by_name(".eh_frame") is None:
            return set()
        entries = elf.get_dwarf_info().EH_CFI_entries()
        return {e.header["initial_location"] for e in entries if isinstance(e, FDE)}


@pytest.mark.parametrize("path", _system_sample()[:12])
def test_function_starts_agree_with_pyelftools_fdes(path: str) -> None:
    """The functions the stack-cookie verdict counts (from .eh_frame_hdr's table) are the
    FDEs pyelftools finds by parsing all of .eh_frame."""
    from binanalysis.elf import _eh_frame_functions, _parse, _sections
    from binanalysis.reader import FileBytes

    with FileBytes(path) as r:
        elf = _parse(r)
        ours = set(_eh_frame_functions(elf, _sections(elf)).starts)
    assert ours == _pyelftools_fde_starts(path)
