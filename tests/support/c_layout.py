"""The layout gcc gives a struct of the BPF program, to compare with its numpy dtype.

The struct is cut out of ``probes/ebpf_program.c`` between ``// <marker> layout begin``
and ``// <marker> layout end``, compiled as written, and a small program prints each
member's offset and size.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

from probes.ebpf import PROGRAM_PATH

Layout = dict[str, tuple[int, int]]  # member -> (offset, size); "total" -> (sizeof, 0)
_PRELUDE = (
    "#include <stddef.h>\n#include <stdio.h>\n#include <stdint.h>\n"
    "typedef uint8_t u8; typedef uint16_t u16; typedef uint32_t u32; typedef uint64_t u64;\n"
)


def struct_source(marker: str) -> str:
    """The struct's text as the BPF program has it."""
    text = PROGRAM_PATH.read_text()
    return text[text.index(f"// {marker} layout begin") : text.index(f"// {marker} layout end")]


def members(struct: str) -> list[str]:
    """The struct's member names, in order."""
    body = struct[struct.index("{") + 1 : struct.rindex("}")]
    return re.findall(r"(\w+)(?:\[\w+\])?;", body)


def compiled_layout(tmp_path: Path, marker: str, name: str, defines: str = "") -> Layout:
    """Offsets and sizes of ``struct name`` as gcc lays it out (``defines``: C lines that
    the struct needs, such as array lengths)."""
    struct = struct_source(marker)
    prints = "\n".join(
        f'    printf("{m} %zu %zu\\n", offsetof(struct {name}, {m}), '
        f"sizeof(((struct {name} *)0)->{m}));"
        for m in members(struct)
    )
    source = tmp_path / f"{name}.c"
    source.write_text(
        f"{_PRELUDE}{defines}{struct}\nint main(void) {{\n{prints}\n"
        f'    printf("total %zu 0\\n", sizeof(struct {name}));\n    return 0;\n}}\n'
    )
    binary = tmp_path / name
    subprocess.run(["gcc", "-o", str(binary), str(source)], check=True)
    out = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    rows = (line.split() for line in out.splitlines())
    return {member: (int(offset), int(size)) for member, offset, size in rows}


def dtype_layout(dtype: np.dtype[np.void]) -> Layout:
    """The same description of a numpy structured dtype."""
    fields = dtype.fields or {}
    layout: Layout = {name: (fields[name][1], fields[name][0].itemsize) for name in fields}
    layout["total"] = (dtype.itemsize, 0)
    return layout
