"""struct rba_event in probes/ebpf_program.c matches EVENT_DTYPE byte for byte.

gcc compiles the struct exactly as written in the BPF source (cut out between its
layout markers) and prints each member's offset and size; the numpy dtype must agree.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from probes.ebpf import PROGRAM_PATH
from probes.events import EVENT_DTYPE, EVENT_SIZE
from tests.support.c_layout import compiled_layout, dtype_layout, members, struct_source


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_kernel_struct_matches_numpy_dtype(tmp_path: Path) -> None:
    assert members(struct_source("rba_event")) == list(EVENT_DTYPE.names or ())
    layout = compiled_layout(tmp_path, "rba_event", "rba_event")
    assert layout["total"] == (EVENT_SIZE, 0)
    assert layout == dtype_layout(EVENT_DTYPE)


def test_program_defines_the_kind_numbers_of_the_model() -> None:
    from probes.events import Family, Flag, Kind, Source

    text = PROGRAM_PATH.read_text()
    defines = dict(re.findall(r"#define (K_\w+|F_\w+|FAM_\w+|SRC_\w+) (\d+)", text))
    for name, value in defines.items():
        prefix, _, rest = name.partition("_")
        enum = {"K": Kind, "F": Flag, "FAM": Family, "SRC": Source}[prefix]
        member = {"INET": "INET", "INET6": "INET6", "EBPF": "EBPF"}.get(rest, rest)
        assert int(enum[member]) == int(value), name
