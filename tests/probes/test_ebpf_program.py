"""probes/ebpf_program.py declares what probes/ebpf_program.c contains, and bcc agrees.

Each ``TRACEPOINT_PROBE`` has exactly one declared role, because the role decides where
its kernel-skipped runs are counted (lost events, or a stated gap); a renamed or added
program that is not declared fails here instead of moving its losses silently.
"""

from __future__ import annotations

import ctypes
import re
from collections import Counter

import pytest

from probes import ebpf_program as layout
from probes.ebpf import ebpf_unavailable_reason

SOURCE = layout.SOURCE_PATH.read_text()


def _probes_in_source() -> list[str]:
    return [
        f"{cat}:{event}" for cat, event in re.findall(r"TRACEPOINT_PROBE\((\w+), (\w+)\)", SOURCE)
    ]


def _maps_in_source() -> list[str]:
    tables = re.findall(r'BPF_TABLE\("\w+", [^,]+, [^,]+, (\w+),', SOURCE)
    others = re.findall(r"BPF_(?:RINGBUF_OUTPUT|PERCPU_ARRAY|ARRAY)\((\w+),", SOURCE)
    return tables + others


def test_every_tracepoint_probe_has_exactly_one_role() -> None:
    in_source = _probes_in_source()
    declared = [tp.name for tp in layout.TRACEPOINTS]
    assert len(in_source) == len(set(in_source)), "a TRACEPOINT_PROBE is defined twice"
    assert len(declared) == len(set(declared)), "a tracepoint is declared twice"
    assert sorted(in_source) == sorted(declared)
    roles = Counter(tp.role for tp in layout.TRACEPOINTS)
    assert sum(roles.values()) == len(in_source)
    assert set(roles) == set(layout.Role)


def test_every_map_is_declared_once_and_lru_maps_are_window_state() -> None:
    in_source = _maps_in_source()
    declared = [m.name for m in layout.MAPS]
    assert len(declared) == len(set(declared))
    assert sorted(in_source) == sorted(declared)
    lru = set(re.findall(r'BPF_TABLE\("lru_hash", [^,]+, [^,]+, (\w+),', SOURCE))
    assert lru == {m.name for m in layout.MAPS if m.window_state}


def test_every_program_checks_the_window_gate_first() -> None:
    bodies = re.findall(r"TRACEPOINT_PROBE\(\w+, \w+\) \{\n(.*)\n", SOURCE)
    assert len(bodies) == len(layout.TRACEPOINTS)
    assert all(body.strip() == "if (window_closed())" for body in bodies)


@pytest.mark.parametrize("content", [True, False])
def test_bcc_compiles_exactly_the_declared_programs_and_maps(content: bool) -> None:
    """What the compiler keeps with content capture on and off is what the table says:
    the content-only programs and maps exist only with capture on."""
    reason = ebpf_unavailable_reason()
    if reason:
        pytest.skip(f"eBPF unavailable: {reason}")
    from bcc import lib

    cflags = (ctypes.c_char_p * 1)(f"-DRBA_CONTENT={int(content)}".encode())
    module = lib.bpf_module_create_c_from_string(SOURCE.encode(), 0, cflags, 1, True, None)
    assert module
    try:
        functions = {
            lib.bpf_function_name(module, i).decode() for i in range(lib.bpf_num_functions(module))
        }
        maps = {m.name for m in layout.MAPS if lib.bpf_table_fd(module, m.key) >= 0}
    finally:
        lib.bpf_module_destroy(module)
    assert functions == {tp.function for tp in layout.tracepoints(content)}
    assert maps == {m.name for m in layout.MAPS if m.loaded(content)}
    roles = {tp.role for tp in layout.tracepoints(content)}
    assert (layout.Role.CONTENT in roles) is content
