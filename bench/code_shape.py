"""The shape of the code base: function lengths (median, p90, max) and the module map
(modules and lines per package folder). ``python3 bench/code_shape.py [CHECKOUT]``"""

from __future__ import annotations

import ast
import statistics
import sys
from pathlib import Path

PACKAGES = ("behavior", "probes", "binanalysis")


def function_lengths(root: Path) -> list[int]:
    """Lines of every function and method in the packages."""
    lengths = []
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lengths.append((node.end_lineno or node.lineno) - node.lineno + 1)
    return sorted(lengths)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    lengths = function_lengths(root)
    p90 = statistics.quantiles(lengths, n=10)[8]
    print(f"{len(lengths)} functions: median {statistics.median(lengths):g} lines, "
          f"p90 {p90:.0f}, longest {lengths[-1]}")  # fmt: skip
    print("| folder | modules (not counting __init__) | lines |\n|---|---|---|")
    for package in PACKAGES:
        for folder in sorted({p.parent for p in (root / package).rglob("*.py")}):
            modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
            lines = sum(len(p.read_text().splitlines()) for p in folder.glob("*.py"))
            print(f"| `{folder.relative_to(root)}/` | {len(modules)} | {lines} |")


if __name__ == "__main__":
    main()
