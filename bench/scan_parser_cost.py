"""Per-file cost of rba's struct-level ELF reader vs pyelftools' high-level API, same checks.

    .venv/bin/python bench/scan_parser_cost.py [--dir /usr/bin] [--repeat 3]

Both sides answer the same questions for every ELF file in the directory, in one process:
the last PT_GNU_STACK's flags, PT_INTERP, PT_GNU_RELRO, the dynamic tags (BIND_NOW, FLAGS,
FLAGS_1), and whether __stack_chk_fail is among the dynamic symbols. pyelftools uses
``ELFFile``, ``iter_segments``, ``DynamicSegment.iter_tags`` and the GNU hash table
(``get_symbol_by_name``), i.e. its fastest high-level route. Best-of-N wall times.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from binanalysis import inspect


def elf_files(directory: str) -> list[str]:
    found = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        try:
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    if f.read(4) == b"\x7fELF":
                        found.append(path)
        except OSError:
            continue
    return found


def with_pyelftools(path: str) -> bool:
    from elftools.elf.dynamic import DynamicSegment
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        stack_x = None
        cookies = False
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_GNU_STACK":
                stack_x = bool(seg["p_flags"] & 1)
            elif isinstance(seg, DynamicSegment):
                tags = {t.entry.d_tag: t.entry.d_val for t in seg.iter_tags()}
                _now = "DT_BIND_NOW" in tags or tags.get("DT_FLAGS", 0) & 8
                try:
                    cookies = bool(seg.get_symbol_by_name("__stack_chk_fail"))
                except Exception:  # pyelftools raises on odd tables; counts as "no"
                    cookies = False
        return bool(stack_x) or cookies


def pyelftools_headers_only(path: str) -> bool:
    """The same without the symbol lookup: the cost floor of ELFFile itself."""
    from elftools.elf.dynamic import DynamicSegment
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        stack_x = False
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_GNU_STACK":
                stack_x = bool(seg["p_flags"] & 1)
            elif isinstance(seg, DynamicSegment):
                tags = {t.entry.d_tag: t.entry.d_val for t in seg.iter_tags()}
                stack_x = stack_x or "DT_BIND_NOW" in tags
        return stack_x


def best(fn: object, paths: list[str], repeat: int) -> float:
    assert callable(fn)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for path in paths:
            fn(path)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/usr/bin")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    paths = elf_files(args.dir)
    start = time.perf_counter()
    import elftools.elf.elffile  # noqa: F401

    import_ms = (time.perf_counter() - start) * 1000
    ours = best(inspect, paths, args.repeat)
    headers = best(pyelftools_headers_only, paths, args.repeat)
    theirs = best(with_pyelftools, paths, 1)  # ~1 minute: once is enough
    n = len(paths)
    print(
        f"{n} ELF files in {args.dir}, one process, best of {args.repeat} (pyelftools+symbols: 1)"
    )
    print(f"{'reader':40s} {'total s':>8s} {'per file ms':>12s} {'vs rba':>7s}")
    for label, seconds in (
        ("rba binanalysis.inspect (every check)", ours),
        ("pyelftools: headers + dynamic tags", headers),
        ("pyelftools: + get_symbol_by_name", theirs),
    ):
        print(f"{label:40s} {seconds:8.3f} {seconds / n * 1000:12.3f} {seconds / ours:6.0f}x")
    print(f"importing pyelftools costs {import_ms:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
