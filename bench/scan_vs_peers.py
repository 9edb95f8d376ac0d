"""rba scan against its real peers, in one run: checksec.py (PyPI, LIEF-based), pwntools'
``ELF.checksec()`` properties and Debian's checksec.sh, with per-file agreement on NX, PIE
and RELRO (and, for information, the canary).

    bash bench/setup_peers.sh                      # once: the peers' venv (gitignored)
    .venv/bin/python bench/scan_vs_peers.py [--dir /usr/bin] [--runs 5] [--peer-runs 1]
                                            [--peers checksec.py,pwntools,checksec.sh]

- *cold*: no rba facts cache (deleted before each run); *warm*: the cache the cold run left.
  The OS page cache is warm for every tool (each reads the tree once before timing).
- rba runs with ``--jobs`` chosen automatically, and also with ``--jobs 1`` and ``--jobs 2``
  (interleaved rounds), so the automatic choice can be checked against both.
- *single file*: ``rba scan --no-cache /usr/bin/ls``, start-up included.
- checksec.py runs once per round, interleaved with rba's variants, so every ratio to it
  is measured under the same load; the slow peers (pwntools, checksec.sh) run
  ``--peer-runs`` times after the rounds.
- Times are medians of whole commands, Python start-up included: wall clock, and CPU
  (user + system of the command and its children, from ``getrusage``), which a loaded
  machine disturbs far less. *paired* is the median over rounds of checksec.py's time in
  that round divided by rba's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
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


class Run:
    """One command's wall and CPU seconds, and its output."""

    def __init__(self, wall: float, cpu: float, stdout: str) -> None:
        self.wall, self.cpu, self.stdout = wall, cpu, stdout


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str]) -> Run:
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=ENV, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{cmd[:3]} failed: {done.stderr.strip()[-500:]}")
    return Run(wall, _children_cpu() - cpu, done.stdout)


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


def report(runs: dict[str, list[Run]]) -> None:
    """The table: medians of wall and CPU seconds, and checksec.py's over each."""
    base = runs["checksec.py"]
    wall0 = statistics.median(r.wall for r in base)
    cpu0 = statistics.median(r.cpu for r in base)
    print(f"{'tool':30s} {'runs':>4s} {'wall s':>7s} {'cpu s':>7s}   checksec.py / tool: "
          f"{'wall':>6s} {'cpu':>6s} {'paired wall':>11s} {'paired cpu':>10s}")  # fmt: skip
    for name, rs in runs.items():
        wall, cpu = statistics.median(r.wall for r in rs), statistics.median(r.cpu for r in rs)
        paired = ""
        if len(rs) == len(base):
            pw = statistics.median(b.wall / r.wall for b, r in zip(base, rs))
            pc = statistics.median(b.cpu / max(r.cpu, 1e-3) for b, r in zip(base, rs))
            paired = f"{pw:10.1f}x {pc:9.1f}x"
        print(f"{name:30s} {len(rs):4d} {wall:7.3f} {cpu:7.3f}   {'':19s} "
              f"{wall0 / wall:5.1f}x {cpu0 / max(cpu, 1e-3):5.1f}x {paired}")  # fmt: skip
    for name, rs in runs.items():
        walls = " ".join(f"{r.wall:.3f}" for r in rs)
        cpus = " ".join(f"{r.cpu:.3f}" for r in rs)
        print(f"{name}: wall {walls}; cpu {cpus}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/usr/bin")
    parser.add_argument("--runs", type=int, default=5, help="rba rounds")
    parser.add_argument("--peer-runs", type=int, default=1, help="runs of the slow peers")
    parser.add_argument("--peers", default="checksec.py,pwntools,checksec.sh",
                        help="comma-separated; checksec.py runs in every round")  # fmt: skip
    args = parser.parse_args()
    wanted = set(args.peers.split(","))
    if not PEERS.exists():
        print("the peers' venv is missing: bash bench/setup_peers.sh", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="rba-peers-"))
    cache = work / "facts.json"
    scan = [RBA, "scan", "-r", args.dir, "--output", str(work / "out.txt")]
    timed([*scan, "--no-cache"])  # page cache and bytecode, for every tool below too
    checksec_py = [str(PEERS), "-c", CHECKSEC_PY, args.dir]
    runs: dict[str, list[Run]] = {
        **{f"rba scan -r (cold, --jobs {j})": [] for j in ("auto", "1", "2")},
        "rba scan -r (warm cache)": [], "rba scan one file (cold)": [], "checksec.py": [],
    }  # fmt: skip
    load = [os.getloadavg()[0]]
    for _ in range(args.runs):  # interleaved, so load changes hit every variant alike
        for jobs in ("auto", "1", "2"):
            cache.unlink(missing_ok=True)
            extra = [] if jobs == "auto" else ["--jobs", jobs]
            runs[f"rba scan -r (cold, --jobs {jobs})"].append(
                timed([*scan, "--cache", str(cache), *extra])
            )
        runs["rba scan -r (warm cache)"].append(timed([*scan, "--cache", str(cache)]))
        runs["rba scan one file (cold)"].append(timed([RBA, "scan", "--no-cache", "/usr/bin/ls"]))
        runs["checksec.py"].append(timed(checksec_py))
        load.append(os.getloadavg()[0])
    peers: dict[str, Verdicts] = {
        "checksec.py": checksec_py_verdicts(runs["checksec.py"][-1].stdout)
    }
    slow = {
        "pwntools": ([str(PEERS), "-c", PWNTOOLS, args.dir], pwntools_verdicts),
        "checksec.sh": (["checksec", f"--dir={args.dir}", "--output=json"], checksec_sh_verdicts),
    }
    for name, (cmd, parse) in slow.items():
        if name not in wanted or (name == "checksec.sh" and shutil.which("checksec") is None):
            continue
        runs[name] = [timed(cmd) for _ in range(args.peer_runs)]
        peers[name] = parse(runs[name][-1].stdout)
    ours = rba_verdicts(
        timed([RBA, "scan", "-r", args.dir, "--no-cache", "--format", "json"]).stdout
    )
    shutil.rmtree(work)
    report(runs)
    print(f"cpus {os.cpu_count()}, load average {min(load):.1f} to {max(load):.1f} over the rounds")
    hard = sum(agreement(name, ours, verdicts) for name, verdicts in peers.items())
    print(f"\nNX/PIE/RELRO disagreements with any peer: {hard}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
