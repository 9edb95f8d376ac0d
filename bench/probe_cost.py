"""What each eBPF program costs per loopback connect, measured by the kernel.

    .venv/bin/python bench/probe_cost.py [--connects 20000] [--rounds 5]

The connect burst of bench/probe_burst.py (a gcc-built C client, 20,000 loopback
connects against its forked acceptor) runs under the eBPF source with content capture
on and off, alternating, while ``kernel.bpf_stats_enabled`` is 1 (restored after): the
kernel then sums every program's run time (``run_time_ns``, ``run_cnt`` in the
program's fdinfo). Program time is what the probes add to each traced syscall, minus
the tracepoint dispatch around it; unlike the loop's throughput it does not depend on
what else this shared machine runs. Printed: median ns per connect per program and in
all, with and without capture, and the client's CPU per connect, paired with a run
without probes in the same round. Needs root, bcc and gcc.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.probe_burst import build_client, burst  # noqa: E402
from probes.ebpf import EbpfSource, wait_detached  # noqa: E402
from probes.events import StringTable  # noqa: E402

STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
PORT = 20997


def program_times(source: EbpfSource) -> dict[str, int]:
    """Each program's total run time so far, in ns, by tracepoint event name."""
    program = source._program  # the bench reads the programs' fdinfo directly
    assert program is not None
    times = {}
    for name, fn in program.bpf.funcs.items():
        with open(f"/proc/self/fdinfo/{fn.fd}") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        times[name.decode().rsplit("__", 1)[-1]] = int(fields["run_time_ns"])
    return times


def measured(client: Path, connects: int, content: bool) -> tuple[dict[str, float], float]:
    """(ns per connect per program, client CPU us per connect) of one burst."""
    source = EbpfSource(content=content)
    source.start(StringTable())
    try:
        before = program_times(source)
        _, ok, _, cpu = burst(client, PORT, connects)
        after = program_times(source)
    finally:
        source.stop()
    return {k: (after[k] - before[k]) / ok for k in after}, 1e6 * cpu / ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connects", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    previous = STATS.read_text()
    ns: dict[bool, list[dict[str, float]]] = collections.defaultdict(list)
    cpu: dict[str, list[float]] = collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        client = build_client(Path(tmp))
        for content in (True, False):
            EbpfSource(content=content).stop()  # compile both before timing
        STATS.write_text("1")
        try:
            for _ in range(args.rounds):
                _, _, _, base = burst(client, PORT, args.connects)
                cpu["none"].append(1e6 * base / args.connects)
                for content in (True, False):
                    wait_detached()
                    per_program, client_us = measured(client, args.connects, content)
                    ns[content].append(per_program)
                    cpu["on" if content else "off"].append(client_us)
        finally:
            STATS.write_text(previous)
    report(ns, cpu, args)
    return 0


def report(
    ns: dict[bool, list[dict[str, float]]], cpu: dict[str, list[float]], args: argparse.Namespace
) -> None:
    print(f"{args.rounds} rounds of {args.connects} loopback connects; program time in ns per")
    print("connect (kernel bpf_stats, median over rounds); capture on / off")
    names = sorted(ns[True][0], key=lambda k: -statistics.median(r[k] for r in ns[True]))
    print(f"  {'program':<26}{'on':>8}{'off':>8}")
    for name in names:
        on = statistics.median(r[name] for r in ns[True])
        off = statistics.median(r.get(name, 0.0) for r in ns[False])
        if on >= 1 or off >= 1:
            print(f"  {name:<26}{on:>8.0f}{off:>8.0f}")
    total = {c: [sum(r.values()) for r in ns[c]] for c in (True, False)}
    on, off = statistics.median(total[True]), statistics.median(total[False])
    print(f"  {'all programs':<26}{on:>8.0f}{off:>8.0f}   content capture: {on - off:+.0f} ns")
    none = cpu["none"]
    for mode in ("on", "off"):
        ratios = [a / b for a, b in zip(cpu[mode], none)]
        print(
            f"client CPU per connect, capture {mode}: median {statistics.median(cpu[mode]):.1f} us"
            f" (none {statistics.median(none):.1f}); paired ratio to none median "
            f"{statistics.median(ratios):.3f}, worst {max(ratios):.3f}"
        )
    paired = [a / b for a, b in zip(cpu["on"], cpu["off"])]
    print(
        f"client CPU per connect, capture on / off, paired: median "
        f"{statistics.median(paired):.3f}, worst {max(paired):.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
