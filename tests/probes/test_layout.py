"""struct rba_event in probes/ebpf_program.c matches EVENT_DTYPE byte for byte.

gcc compiles the struct exactly as written in the BPF source (cut out between its
layout markers) and prints each member's offset and size; the numpy dtype must agree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from probes.ebpf import PROGRAM_PATH
from probes.events import EVENT_DTYPE, EVENT_SIZE

BEGIN = "// rba_event layout begin"
END = "// rba_event layout end"


def _struct_source() -> str:
    text = PROGRAM_PATH.read_text()
    start, end = text.index(BEGIN), text.index(END)
    return text[start:end]


def _members(struct: str) -> list[str]:
    body = struct[struct.index("{") + 1 : struct.rindex("}")]
    return re.findall(r"(\w+)(?:\[\d+\])?;", body)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_kernel_struct_matches_numpy_dtype(tmp_path: Path) -> None:
    struct = _struct_source()
    members = _members(struct)
    assert members == list(EVENT_DTYPE.names or ())
    prints = "\n".join(
        f'    printf("{m} %zu %zu\\n", offsetof(struct rba_event, {m}), '
        f"sizeof(((struct rba_event *)0)->{m}));"
        for m in members
    )
    source = tmp_path / "layout.c"
    source.write_text(
        "#include <stddef.h>\n#include <stdio.h>\n#include <stdint.h>\n"
        "typedef uint8_t u8; typedef uint16_t u16; typedef uint32_t u32; typedef uint64_t u64;\n"
        f"{struct}\nint main(void) {{\n{prints}\n"
        '    printf("total %zu 0\\n", sizeof(struct rba_event));\n    return 0;\n}\n'
    )
    binary = tmp_path / "layout"
    subprocess.run(["gcc", "-o", str(binary), str(source)], check=True)
    out = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    rows = (line.split() for line in out.splitlines())
    seen = {name: (int(off), int(size)) for name, off, size in rows}
    assert seen.pop("total") == (EVENT_SIZE, 0)
    expected = {
        name: (EVENT_DTYPE.fields[name][1], EVENT_DTYPE.fields[name][0].itemsize)  # type: ignore[index]
        for name in EVENT_DTYPE.names or ()
    }
    assert seen == expected


def test_program_defines_the_kind_numbers_of_the_model() -> None:
    from probes.events import Family, Flag, Kind, Source

    text = PROGRAM_PATH.read_text()
    defines = dict(re.findall(r"#define (K_\w+|F_\w+|FAM_\w+|SRC_\w+) (\d+)", text))
    for name, value in defines.items():
        prefix, _, rest = name.partition("_")
        enum = {"K": Kind, "F": Flag, "FAM": Family, "SRC": Source}[prefix]
        member = {"INET": "INET", "INET6": "INET6", "EBPF": "EBPF"}.get(rest, rest)
        assert int(enum[member]) == int(value), name
