"""rba scan vs checksec, in the same run: wall time (cold and warm) and per-file agreement.

    .venv/bin/python bench/scan_vs_checksec.py [--dir /usr/bin] [--runs 5] [--checksec-runs 3]

- *cold*: no rba facts cache (it is deleted before each run, and written by the run);
  *warm*: the cache left by the cold runs. The OS page cache is warm for both tools (each
  tool reads the tree once before timing), so the comparison is CPU, not disk.
- Times are wall-clock medians of whole commands, Python start-up included, ``--jobs`` at
  its default.
- Agreement compares checksec's NX and canary with rba's dep and stack_cookies for every
  file both report, and explains each disagreement.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RBA = [str(REPO / ".venv" / "bin" / "rba")]


# As installed by pip: bytecode is cached (some shells here export PYTHONDONTWRITEBYTECODE,
# which would make every run recompile rba from source).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600, env=ENV)
    return time.perf_counter() - start, done.stdout


def parse_checksec_json(text: str) -> dict[str, dict[str, str]]:
    """checksec 2.6's --output=json, read leniently (it is not always valid JSON)."""
    entries = {}
    for path, body in re.findall(r'"(/[^"]+)":\s*\{([^}]*)\}', text):
        entries[path] = dict(re.findall(r'"([\w-]+)":"([^"]*)"', body))
    return entries


def explain(path: str, field: str, rba: dict[str, object], checksec: str) -> str:
    """Why rba and checksec differ on one file, stated from the evidence rba recorded."""
    notes = rba["notes"]
    assert isinstance(notes, dict)
    note = str(notes["stack_cookies" if field == "canary" else "dep"])
    value = rba["stack_cookies" if field == "canary" else "dep"]
    if field == "canary" and value is True and "canary load" in note:
        return (
            f"checksec wrong: stripped self-contained binary, no symbols to grep; rba found "
            f"the canary in the code ({note})"
        )
    if field == "canary" and value is None and "Go binary" in note:
        return "not applicable: Go binary (checksec says no canary; the Go runtime checks stacks)"
    if field == "canary" and value is True and "defined" in note:
        return f"checksec wrong: the cookie symbol is defined, not imported ({note})"
    return f"UNEXPLAINED: rba {value} ({note}) vs checksec {checksec}"


def agreement(rba_items: list[dict[str, object]], checksec: dict[str, dict[str, str]]) -> None:
    by_path = {str(i["path"]): i for i in rba_items}
    common = sorted(set(by_path) & set(checksec))
    print(f" agreement on {len(common)} files both report "
          f"(rba: {len(by_path)} ELF/PE files, checksec: {len(checksec)} entries)")  # fmt: skip
    only_checksec = sorted(set(checksec) - set(by_path))
    if only_checksec:
        print(f"  only checksec lists: {len(only_checksec)} e.g. {only_checksec[:3]}")
    for field, ours in (("nx", "dep"), ("canary", "stack_cookies")):
        agree, differ = 0, []
        for path in common:
            want = {"yes": True, "no": False}.get(checksec[path].get(field, ""))
            got = by_path[path][ours]
            if got == want:
                agree += 1
            else:
                differ.append((path, explain(path, field, by_path[path], str(want))))
        print(f"  {field:7s} agree {agree}/{len(common)}; differ {len(differ)}")
        for path, why in differ:
            print(f"    {path}: {why}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/usr/bin")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--checksec-runs", type=int, default=3)
    parser.add_argument(
        "--also-agree", nargs="*", default=["/usr/sbin"], metavar="DIR",
        help="more directories for the agreement check only (checksec runs once, untimed)",
    )  # fmt: skip
    args = parser.parse_args()
    if shutil.which("checksec") is None:
        print("checksec is not installed (bash scripts/install-test.sh)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="rba-bench-"))
    cache = work / "facts.json"
    scan = [*RBA, "scan", "--recursive", args.dir, "--cache", str(cache)]
    timed([*scan[:-2], "--no-cache"])  # fills the page cache and rba's bytecode cache
    timed(["checksec", f"--dir={args.dir}", "--output=json"])  # the same for checksec
    cold, warm, checks = [], [], []
    for _ in range(args.runs):
        cache.unlink(missing_ok=True)
        cold.append(timed(scan)[0])
    for _ in range(args.runs):
        warm.append(timed(scan)[0])
    checksec_out = ""
    for _ in range(args.checksec_runs):
        seconds, checksec_out = timed(["checksec", f"--dir={args.dir}", "--output=json"])
        checks.append(seconds)
    shutil.rmtree(work)
    c, w, k = (statistics.median(x) for x in (cold, warm, checks))
    print(f"{'tool':28s} {'median s':>9s} {'runs':>5s} {'vs checksec':>12s}")
    print(f"{'checksec --dir':28s} {k:9.3f} {len(checks):5d} {'1x':>12s}")
    print(f"{'rba scan -r (cold)':28s} {c:9.3f} {len(cold):5d} {k / c:11.0f}x")
    print(f"{'rba scan -r (warm cache)':28s} {w:9.3f} {len(warm):5d} {k / w:11.0f}x")
    print(f"cold runs: {' '.join(f'{x:.3f}' for x in cold)}")
    print(f"warm runs: {' '.join(f'{x:.3f}' for x in warm)}")
    print(f"checksec runs: {' '.join(f'{x:.1f}' for x in checks)}; cpus: {os.cpu_count()}")
    for directory in [args.dir, *args.also_agree]:
        if directory != args.dir:
            checksec_out = timed(["checksec", f"--dir={directory}", "--output=json"])[1]
        rba_json = timed([*RBA, "scan", "-r", directory, "--no-cache", "--format", "json"])[1]
        print(f"\n{directory}:", end="")
        agreement(json.loads(rba_json), parse_checksec_json(checksec_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
