"""rba scan against its real peers, in one run: checksec.py (PyPI, LIEF-based), pwntools'
``ELF.checksec()`` properties and Debian's checksec.sh, with per-file agreement on NX, PIE
and RELRO (and, for information, the canary).

    bash bench/setup_peers.sh                      # once: the peers' venv (gitignored)
    .venv/bin/python bench/scan_vs_peers.py [--dir /usr/bin] [--runs 5] [--peer-runs 1]

- *cold*: no rba facts cache (deleted before each run); *warm*: the cache the cold run left.
  The OS page cache is warm for every tool (each reads the tree once before timing).
- rba runs with ``--jobs`` chosen automatically, and also with ``--jobs 1`` and ``--jobs 2``
  (interleaved rounds), so the automatic choice can be checked against both.
- *single file*: ``rba scan --no-cache /usr/bin/ls``, start-up included.
- Times are wall-clock medians of whole commands, Python start-up included.
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
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RBA = str(REPO / ".venv" / "bin" / "rba")
PEERS = REPO / "bench" / ".venv-peers" / "bin" / "python"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

CHECKSEC_PY = (
    "import sys; from checksec.__main__ import entrypoint; "
    "sys.argv = ['checksec', '-r', '-j', sys.argv[1]]; entrypoint()"
)
PWNTOOLS = r"""
import json, os, sys
from pwn import ELF, context
context.log_level = "error"
out = {}
for name in sorted(os.listdir(sys.argv[1])):
    path = os.path.join(sys.argv[1], name)
    if os.path.islink(path) or not os.path.isfile(path):
        continue
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            continue
    try:
        e = ELF(path, checksec=False)
        out[path] = {"nx": bool(e.nx), "pie": bool(e.pie), "relro": e.relro,
                     "canary": bool(e.canary)}
    except Exception as err:
        out[path] = {"error": str(err)}
print(json.dumps(out))
"""

Verdicts = dict[str, dict[str, object]]  # path -> {"nx", "pie", "relro", "canary"}


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=ENV, check=False)
    if done.returncode:
        raise SystemExit(f"{cmd[:3]} failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - start, done.stdout


def relro(value: object) -> str:
    text = str(value).lower()
    return {"full": "full", "partial": "partial"}.get(text, "none")


def rba_verdicts(text: str) -> Verdicts:
    out: Verdicts = {}
    for item in json.loads(text):
        if item["format"] == "elf" and item["error"] is None:
            out[item["path"]] = {"nx": item["dep"], "pie": item["aslr"],
                                 "relro": relro(item["relro"]),
                                 "canary": item["stack_cookies"]}  # fmt: skip
    return out


def checksec_py_verdicts(text: str) -> Verdicts:
    return {path: {"nx": v["nx"], "pie": v["pie"] in ("PIE", "DSO"), "relro": relro(v["relro"]),
                   "canary": v["canary"]} for path, v in json.loads(text).items()}  # fmt: skip


def pwntools_verdicts(text: str) -> Verdicts:
    return {path: {**v, "relro": relro(v["relro"])} for path, v in json.loads(text).items()
            if "error" not in v}  # fmt: skip


def checksec_sh_verdicts(text: str) -> Verdicts:
    """checksec 2.6's --output=json, read leniently (it is not always valid JSON)."""
    out: Verdicts = {}
    for path, body in re.findall(r'"(/[^"]+)":\s*\{([^}]*)\}', text):
        v = dict(re.findall(r'"([\w-]+)":"([^"]*)"', body))
        out[path] = {"nx": v.get("nx") == "yes", "pie": v.get("pie") in ("yes", "dso"),
                     "relro": relro(v.get("relro")),
                     "canary": v.get("canary") == "yes"}  # fmt: skip
    return out


def agreement(name: str, ours: Verdicts, theirs: Verdicts) -> int:
    """Print the per-field agreement table; return the NX/PIE/RELRO disagreements. Files
    are matched by real path (checksec.py reports a symlink's target, rba its name)."""
    ours = {os.path.realpath(p): v for p, v in ours.items()}
    theirs = {os.path.realpath(p): v for p, v in theirs.items()}
    common = sorted(set(ours) & set(theirs))
    print(f"\nagreement with {name}: {len(common)} files both report "
          f"(rba {len(ours)}, {name} {len(theirs)})")  # fmt: skip
    hard = 0
    for field in ("nx", "pie", "relro", "canary"):
        differ = [p for p in common if ours[p][field] != theirs[p][field]]
        if field != "canary":
            hard += len(differ)
        print(f"  {field:7s} agree {len(common) - len(differ):4d}/{len(common)}; "
              f"differ {len(differ)}")  # fmt: skip
        for path in differ[:8]:
            print(f"    {path}: rba {ours[path][field]} vs {theirs[path][field]}")
    return hard


def median_of(runs: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    times = [fn() for _ in range(runs)]
    return statistics.median(times), times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/usr/bin")
    parser.add_argument("--runs", type=int, default=5, help="rba rounds")
    parser.add_argument("--peer-runs", type=int, default=1, help="runs of each peer")
    args = parser.parse_args()
    if not PEERS.exists():
        print("the peers' venv is missing: bash bench/setup_peers.sh", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="rba-peers-"))
    cache = work / "facts.json"
    scan = [RBA, "scan", "-r", args.dir, "--output", str(work / "out.txt")]
    timed([*scan, "--no-cache"])  # page cache and bytecode, for every tool below too
    cold: dict[str, list[float]] = {"auto": [], "1": [], "2": []}
    warm: list[float] = []
    for _ in range(args.runs):  # interleaved, so load changes hit every variant alike
        for jobs, times in cold.items():
            cache.unlink(missing_ok=True)
            extra = [] if jobs == "auto" else ["--jobs", jobs]
            times.append(timed([*scan, "--cache", str(cache), *extra])[0])
        warm.append(timed([*scan, "--cache", str(cache)])[0])
    single = [timed([RBA, "scan", "--no-cache", "/usr/bin/ls"])[0] for _ in range(args.runs)]
    peers: dict[str, tuple[list[float], Verdicts]] = {}
    commands = {
        "checksec.py": ([str(PEERS), "-c", CHECKSEC_PY, args.dir], checksec_py_verdicts),
        "pwntools": ([str(PEERS), "-c", PWNTOOLS, args.dir], pwntools_verdicts),
        "checksec.sh": (["checksec", f"--dir={args.dir}", "--output=json"], checksec_sh_verdicts),
    }
    for name, (cmd, parse) in commands.items():
        if name == "checksec.sh" and shutil.which("checksec") is None:
            continue
        times, text = [], ""
        for _ in range(args.peer_runs):
            seconds, text = timed(cmd)
            times.append(seconds)
        peers[name] = (times, parse(text))
    ours = rba_verdicts(timed([RBA, "scan", "-r", args.dir, "--no-cache", "--format", "json"])[1])
    shutil.rmtree(work)
    base = statistics.median(peers["checksec.py"][0]) if "checksec.py" in peers else None
    print(f"{'tool':30s} {'median s':>9s} {'runs':>5s} {'checksec.py / tool':>19s}")
    rows = [
        (f"rba scan -r (cold, --jobs {j})", statistics.median(t), len(t)) for j, t in cold.items()
    ]
    rows.append(("rba scan -r (warm cache)", statistics.median(warm), len(warm)))
    rows.append(("rba scan one file (cold)", statistics.median(single), len(single)))
    rows += [(name, statistics.median(t), len(t)) for name, (t, _v) in peers.items()]
    for name, seconds, n in rows:
        ratio = f"{base / seconds:18.1f}x" if base else ""
        print(f"{name:30s} {seconds:9.3f} {n:5d} {ratio}")
    for jobs, times in cold.items():
        print(f"cold --jobs {jobs}: {' '.join(f'{x:.3f}' for x in times)}")
    print(f"warm: {' '.join(f'{x:.3f}' for x in warm)}")
    print(f"one file: {' '.join(f'{x:.3f}' for x in single)}")
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at the end")
    hard = sum(agreement(name, ours, verdicts) for name, (_t, verdicts) in peers.items())
    print(f"\nNX/PIE/RELRO disagreements with any peer: {hard}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
