"""The stack-cookie classes, measured: where today's "no stack cookies" verdicts land, and
how well the frame-exposure threshold separates real builds with and without protection.

    .venv/bin/python bench/scan_cookie_classes.py [--dirs /usr/lib/x86_64-linux-gnu /usr/bin]
        [--before REV] [--corpus]

- *before*: the verdicts of the inspector at git revision REV (default ``HEAD~0`` of
  ``binanalysis/`` as committed before the classes; pass the commit), run from a copy.
- *ground truth* for the files without a cookie symbol: Debian builds a source package with
  one set of flags, so if any sibling ELF file of the same source package imports or
  defines a cookie symbol, the package was built with protection; if the package has
  sibling ELF files and none has one, it was built without; otherwise it is unknown.
- *threshold*: for T = 1..5, "built without" when at least T functions take the address of
  a 64+ byte frame and none loads the canary; the error rates against the ground truth.
- *corpus* (``--corpus``): the C examples under /usr/share/doc built as stripped shared
  objects with ``-fstack-protector-strong`` and with ``-fno-stack-protector``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from binanalysis import inspect  # noqa: E402
from binanalysis.elf import code_coverage  # noqa: E402
from binanalysis.reader import FileBytes  # noqa: E402

OLD_VERDICTS = r"""
import json, sys
from binanalysis import inspect
out = {}
for path in sys.stdin.read().splitlines():
    facts = inspect(path)
    out[path] = [facts.stack_cookies.value, facts.stack_cookies.reason]
print(json.dumps(out))
"""


def elf_files(directory: str) -> list[str]:
    """Regular ELF files directly in ``directory``, one name per inode."""
    seen: dict[tuple[int, int], str] = {}
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        try:
            if not entry.is_file():
                continue
            st = entry.stat()
            with open(entry.path, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
        except OSError:
            continue
        seen.setdefault((st.st_dev, st.st_ino), entry.path)
    return sorted(seen.values())


def old_verdicts(rev: str, paths: list[str]) -> dict[str, list[object]]:
    with tempfile.TemporaryDirectory() as work:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "binanalysis"],
                                 check=True, capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", work], input=archive, check=True)
        done = subprocess.run([sys.executable, "-c", OLD_VERDICTS], input="\n".join(paths),
                              capture_output=True, text=True, check=True, cwd=work,
                              env={**os.environ, "PYTHONPATH": work})  # fmt: skip
    result: dict[str, list[object]] = json.loads(done.stdout)
    return result


def klass(reason: str, value: bool | None) -> str:
    if reason.startswith("built with stack protection"):
        return "built with (canary, no symbol)"
    if reason.startswith("built without"):
        return "built without (finding)"
    if value is None:
        return "nothing to protect / n.a."
    return "cookie symbol" if value else "other false"


def source_package(path: str, memo: dict[str, str | None]) -> str | None:
    """The Debian source package that ships ``path`` (under any of its names: /usr is
    merged, so dpkg may know /usr/lib/... as /lib/...)."""
    names = []
    for name in (path, os.path.realpath(path)):
        names += [name, name.removeprefix("/usr")] if name.startswith("/usr/") else [name]
    for name in names:
        done = subprocess.run(["dpkg", "-S", name], capture_output=True, text=True, check=False)
        if not done.returncode:
            break
    else:
        return None
    package = done.stdout.split(":")[0].split(",")[0].strip()
    if package not in memo:
        query = ["dpkg-query", "-W", "-f", "${source:Package}", package]
        q = subprocess.run(query, capture_output=True, text=True, check=False)
        memo[package] = q.stdout.strip() or package
    return memo[package]


def sibling_truth(path: str, source: str, by_source: dict[str, list[str]]) -> str:
    """protected / unprotected / unknown, from the package's other ELF files."""
    siblings = [
        p for p in by_source.get(source, []) if os.path.realpath(p) != os.path.realpath(path)
    ]
    elves = []
    for p in siblings:
        try:
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    elves.append(p)
        except OSError:
            continue
    if not elves:
        return "unknown"
    for p in elves[:200]:
        reason = inspect(p).stack_cookies.reason
        if "imported" in reason or "defined" in reason:
            return "protected"
    return "unprotected"


def packages_files(sources: set[str]) -> dict[str, list[str]]:
    """source package -> files of its installed binary packages."""
    listing = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${source:Package}\n"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    out: dict[str, list[str]] = collections.defaultdict(list)
    for line in listing.splitlines():
        package, _tab, source = line.partition("\t")
        source = source or package
        if source in sources:
            listed = ["dpkg", "-L", package]
            files = subprocess.run(listed, capture_output=True, text=True, check=False)
            out[source] += [f for f in files.stdout.splitlines() if os.path.isfile(f)]
    return out


def exposed_of(path: str) -> tuple[int, int, int]:
    with FileBytes(path) as r:
        cov = code_coverage(r)
    return (0, 0, 0) if cov is None else (cov.functions, cov.canary, cov.exposed)


def thresholds(rows: list[tuple[str, str, int, int]]) -> None:
    """rows: (path, truth, canary functions, exposed functions)."""
    known = [r for r in rows if r[1] != "unknown"]
    prot = [r for r in known if r[1] == "protected"]
    unprot = [r for r in known if r[1] == "unprotected"]
    print(f"\nthreshold study on {len(known)} files with ground truth "
          f"({len(prot)} protected builds, {len(unprot)} unprotected)")  # fmt: skip
    print(f"{'T':>3s} {'right':>7s} {'false finding':>14s} {'missed':>7s}")
    for t in range(1, 6):
        false_finding = sum(1 for r in prot if r[2] == 0 and r[3] >= t)
        missed = sum(1 for r in unprot if r[2] or r[3] < t)
        right = len(known) - false_finding - missed
        print(f"{t:3d} {right:4d}/{len(known):<3d} {false_finding:14d} {missed:7d}")


def study(directories: list[str], rev: str | None) -> None:
    paths = [p for d in directories for p in elf_files(d)]
    before = old_verdicts(rev, paths) if rev else {}
    now = {p: inspect(p).stack_cookies for p in paths}
    print(f"{len(paths)} ELF files (one per inode) in {' '.join(directories)}")
    counts = collections.Counter(klass(v.reason, v.value) for v in now.values())
    for name, n in counts.most_common():
        print(f"  {name:34s} {n:5d}")
    if before:
        flagged = sorted(p for p, (value, _r) in before.items() if value is False)
        print(f"\ntoday's (rev {rev}) 'no stack cookies': {len(flagged)} files; now:")
        landed = collections.Counter(klass(now[p].reason, now[p].value) for p in flagged)
        for name, n in landed.most_common():
            print(f"  {name:34s} {n:5d}")
    judged = [p for p in paths if now[p].reason.split(":")[0] in
              ("built with stack protection", "built without stack protection",
               "nothing to protect")]  # fmt: skip
    memo: dict[str, str | None] = {}
    sources = {p: source_package(p, memo) for p in judged}
    by_source = packages_files({s for s in sources.values() if s})
    rows = []
    print(f"\n{'class':24s} {'truth':12s} {'fn':>6s} {'canary':>6s} {'exposed':>7s}  file")
    for p in judged:
        source = sources[p]
        truth = sibling_truth(p, source, by_source) if source else "unknown"
        functions, canary, exposed = exposed_of(p)
        rows.append((p, truth, canary, exposed))
        short = klass(now[p].reason, now[p].value).split(" (")[0]
        print(f"{short:24s} {truth:12s} {functions:6d} {canary:6d} {exposed:7d}  {p} [{source}]")
    thresholds(rows)


CORPUS_FLAGS = {"protected": ["-fstack-protector-strong"], "unprotected": ["-fno-stack-protector"]}


def corpus() -> None:
    sources = sorted(Path("/usr/share/doc").glob("*/examples/*.c"))
    with tempfile.TemporaryDirectory() as work:
        rows: list[tuple[str, str, int, int]] = []
        for source in sources:
            for truth, flags in CORPUS_FLAGS.items():
                out = Path(work) / f"{source.parent.parent.name}-{source.stem}-{truth}.so"
                gcc = ["gcc", "-O2", "-fPIC", "-shared", "-s", *flags, "-w", str(source)]
                built = subprocess.run([*gcc, "-o", str(out)], capture_output=True, check=False)
                if built.returncode:
                    continue
                facts = inspect(str(out)).stack_cookies
                functions, canary, exposed = exposed_of(str(out))
                rows.append((str(out), truth, canary, exposed))
                print(f"{truth:12s} {facts.value!s:5s} fn {functions:4d} canary {canary:4d} "
                      f"exposed {exposed:3d}  {out.name}: {facts.reason[:60]}")  # fmt: skip
        print(f"\ngcc corpus: {len(rows) // 2} examples built both ways")
        for truth in CORPUS_FLAGS:
            verdicts = collections.Counter(
                klass(inspect(r[0]).stack_cookies.reason, inspect(r[0]).stack_cookies.value)
                for r in rows
                if r[1] == truth
            )
            print(f"  {truth:12s} {dict(verdicts)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dirs", nargs="+", default=["/usr/lib/x86_64-linux-gnu", "/usr/bin"])
    parser.add_argument("--before", metavar="REV", help="git revision of the old inspector")
    parser.add_argument("--corpus", action="store_true", help="also build the gcc corpus")
    args = parser.parse_args()
    study(args.dirs, args.before)
    if args.corpus:
        corpus()
    return 0


if __name__ == "__main__":
    sys.exit(main())
