"""End-of-window evaluation time for a host with many processes.

Builds a realistic window (default 500 process images, each mapping ~30 of 2,000 shared
libraries, 200 listeners, 5,000 outbound endpoints) as events plus recorded facts, then
times :meth:`behavior.window.assess.Assessment.finish`: observations, every rule, the report,
and rendering it as JSON and text. Prints the median of the repeats, in wall and in CPU
seconds (the CPU time is what a loaded machine distorts least).

With ``--connections N`` the window holds N distinct outbound connections instead (half
to loopback, the rest to 254 remotes on eight ports, from 8 programs), as a proxy or a
crawler makes them: what issue 19's "1M distinct connections in 2 s" measures.

    .venv/bin/python bench/fold_evaluate.py [--processes 500] [--repeats 5]
    .venv/bin/python bench/fold_evaluate.py --connections 1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from behavior.facts.interface import (
    CoverageFact,
    DirFact,
    Fact,
    FileFact,
    HostFact,
    PathStat,
    ProcessFact,
    RecordedFactSource,
)
from behavior.formats import Format, render
from behavior.interface import NullObserver
from behavior.window.assess import AssessConfig, Assessment, WindowEnd
from bench.trace_workload import PROGRAMS, SERVER_PORTS
from binanalysis.interface import BinaryFacts, FileFormat, Relro, Verdict
from probes.events import Flag, Kind, Source, StringTable, empty
from probes.interface import SourceStats

T0 = 1_700_000_000 * 10**9
NETNS = 4026531840
LIBS = 2_000


def _binary(path: str, rng: np.random.Generator) -> BinaryFacts:
    def v() -> Verdict:
        return Verdict(bool(rng.random() > 0.05), "synthetic")

    return BinaryFacts(path, FileFormat.ELF, "x86_64", v(), v(), v(), Relro.FULL, "full")


def build_facts(processes: int, rng: np.random.Generator) -> list[Fact]:
    """Facts of ``processes`` images over a pool of shared libraries."""
    facts: list[Fact] = [HostFact("bench", "6.1", NETNS), CoverageFact(True, True)]
    libs = [f"/usr/lib/x86_64-linux-gnu/pkg{i % 50}/lib{i}.so" for i in range(LIBS)]
    exes = [f"/usr/bin/prog{i}" for i in range(processes // 2)]
    for path in libs + exes:
        mode = 0o100777 if rng.random() < 0.01 else 0o100755
        facts.append(FileFact(path, PathStat(0, 0, mode), "pkg", _binary(path, rng)))
    dirs = {p.rsplit("/", 1)[0] for p in libs + exes} | {"/usr/lib", "/usr", "/"}
    facts += [DirFact(d, PathStat(0, 0, 0o40755)) for d in sorted(dirs)]
    for pid in range(1, processes + 1):
        exe = exes[pid % len(exes)]
        mods = tuple(sorted({exe, *(libs[int(i)] for i in rng.integers(0, LIBS, 30))}))
        euid = 0 if pid % 3 == 0 else 1000
        facts.append(
            ProcessFact(f"{pid}@0", pid, 1, euid, euid, exe, (exe,), None, mods, False, T0 + pid)
        )
    return facts


def build_events(processes: int, strings: StringTable, rng: np.random.Generator) -> np.ndarray:
    """Snapshots of every process, 200 listeners and 5,000 outbound endpoints."""
    n = processes + 200 + 5000
    ev = empty(n)
    ev["source"], ev["netns"], ev["family"] = Source.EBPF, NETNS, 4
    ev["ts_wall"] = T0 + np.arange(n)
    procs = slice(0, processes)
    ev["kind"][procs] = Kind.PROC_SNAPSHOT
    ev["flags"][procs] = Flag.SNAPSHOT
    ev["pid"][procs] = np.arange(1, processes + 1)
    ev["str_a"][procs] = [
        strings.intern(f"/usr/bin/prog{p % (processes // 2)}") for p in range(1, processes + 1)
    ]
    listeners = slice(processes, processes + 200)
    ev["kind"][listeners] = Kind.TCP_LISTEN
    ev["pid"][listeners] = rng.integers(1, processes, 200)
    ev["sport"][listeners] = np.arange(20000, 20200)
    conns = slice(processes + 200, n)
    ev["kind"][conns] = Kind.TCP_CONNECT
    ev["pid"][conns] = rng.integers(1, processes, 5000)
    ev["daddr"][conns, 0] = 198
    ev["daddr"][conns, 3] = rng.integers(1, 255, 5000)
    ev["dport"][conns] = rng.choice([80, 443, 23, 21, 6379, 5432], 5000)
    return ev


PER_PID = 254 * 8  # distinct (remote, port) pairs of one pid


def build_connections(n: int, strings: StringTable) -> np.ndarray:
    """``n`` connects, each of a distinct (pid, remote, port), and the snapshots of their
    processes."""
    pids = 1000 + np.arange(n) // PER_PID
    procs = np.unique(pids)
    ev = empty(n + len(procs))
    ev["source"], ev["netns"] = Source.EBPF, NETNS
    ev["ts_wall"] = T0 + np.arange(len(ev)) * 1000
    head = slice(0, len(procs))
    ev["kind"][head] = Kind.PROC_SNAPSHOT
    ev["flags"][head] = Flag.SNAPSHOT
    ev["pid"][head] = procs
    programs = [strings.intern(p) for p, _ in PROGRAMS]
    ev["str_a"][head] = [programs[p % len(programs)] for p in procs.tolist()]
    ev["comm"][head] = [PROGRAMS[p % len(PROGRAMS)][1] for p in procs.tolist()]
    conns = slice(len(procs), len(ev))
    rest = np.arange(n) % PER_PID
    loop = (pids % 2).astype(bool)
    ev["kind"][conns] = Kind.TCP_CONNECT
    ev["family"][conns] = 4
    ev["pid"][conns] = pids
    ev["comm"][conns] = np.array([c for _, c in PROGRAMS], dtype="S16")[pids % len(PROGRAMS)]
    ev["daddr"][conns, 0] = np.where(loop, 127, 203)
    ev["daddr"][conns, 2] = np.where(loop, 0, 113)
    ev["daddr"][conns, 3] = 1 + rest // 8
    ev["dport"][conns] = SERVER_PORTS[rest % 8]
    return ev


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=500)
    parser.add_argument("--connections", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(3)
    facts = build_facts(0 if args.connections else args.processes, rng)
    times, cpu, findings = [], [], 0
    for _ in range(args.repeats):
        strings = StringTable()
        if args.connections:
            events = build_connections(args.connections, strings)
        else:
            events = build_events(args.processes, strings, rng)
        window = Assessment(
            AssessConfig(900),
            strings=strings,
            facts=RecordedFactSource(facts),
            observer=NullObserver(),
            run_id="bench",
            started_at_ns=T0,
        )
        for i in range(0, len(events), 65_536):
            window.feed(events[i : i + 65_536])
        start, start_cpu = time.perf_counter(), time.process_time()
        report = window.finish(
            WindowEnd(
                ended_at_ns=T0 + 900 * 10**9,
                partial=False,
                source_stats={"ebpf": SourceStats(len(events), 0)},
                sources=("ebpf",),
                notices=(),
            )
        )
        render(Format.JSON, report)
        render(Format.TEXT, report)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        findings = len(report.findings)
    what = "connections" if args.connections else "processes"
    print(
        f"{what:>11} {'facts':>7} {'findings':>9} {'median s':>9} {'max s':>7} "
        f"{'median CPU s':>13}  load"
    )
    print(
        f"{args.connections or args.processes:>11} {len(facts):>7} {findings:>9} "
        f"{statistics.median(times):>9.3f} {max(times):>7.3f} "
        f"{statistics.median(cpu):>13.3f}  {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
