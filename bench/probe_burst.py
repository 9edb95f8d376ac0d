"""Benchmark: a burst of loopback TCP connects, seen by eBPF and by 1 s polling.

    .venv/bin/python bench/probe_burst.py [--connects 20000] [--runs 5]

A gcc-built C client (bench/probe_connect_burst.c) connects to 127.0.0.1 as fast as it
can, with an acceptor it forked. Each run is one of four modes, interleaved so that
machine noise spreads evenly:

- ``none``: no probes (baseline throughput);
- ``kernel``: the eBPF programs attached but nothing reading (kernel-side cost alone);
- ``ebpf``: ``open_session("ebpf")`` (eBPF + complementary polling) consuming in this
  process; every connect makes 5 events (SYN_SENT, active and passive ESTABLISHED, two
  CLOSEs), the listener 2 more;
- ``poll``: ``open_session("poll")`` at 1 s, an osquery-style snapshot poller.

Printed: connect throughput (median, and the ratio to ``none``), burst events captured
vs generated, kernel-counted lost (failed reserves + kernel-skipped program runs) and
attempted events (delivered + failed reserves must equal attempted exactly), and this
process's CPU time per 1,000 delivered events.
Needs root, bcc and gcc.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from probes.backend import ProbeSession, open_session  # noqa: E402
from probes.common import concat  # noqa: E402
from probes.ebpf import EbpfSource, wait_detached  # noqa: E402
from probes.events import EventArray, Flag, Kind, StringTable  # noqa: E402

MODES = ("none", "kernel", "ebpf", "poll")
# --content-pair: what first-payload capture costs, paired with the same probes without it.
CONTENT_MODES = ("none", "ebpf-nocontent", "ebpf")
EVENTS_PER_CONNECT = 5
LISTENER_EVENTS = 2  # LISTEN, and CLOSE of the listener


@dataclass
class Run:
    mode: str
    seconds: float  # connect loop only, measured by the client
    connects: int
    client_cpu: float = 0.0  # CPU seconds of the client and its acceptor
    captured: int = 0  # burst events delivered (port match)
    polled_connections: int = 0  # distinct burst connections a poller saw
    delivered: int = 0  # every event the eBPF source delivered in the window
    attempted: int = 0
    lost: int = 0  # reserve failures + kernel-skipped runs
    reserve_failed: int = 0
    cpu: float = 0.0  # this process's CPU seconds from burst start to all burst events in
    cpu_per_1k: float = 0.0  # ... per 1,000 events delivered in that interval

    @property
    def rate(self) -> float:
        return self.connects / self.seconds

    @property
    def client_us(self) -> float:
        """Client + acceptor CPU microseconds per connect."""
        return 1e6 * self.client_cpu / self.connects


def build_client(directory: Path) -> Path:
    binary = directory / "probe_connect_burst"
    source = REPO / "bench" / "probe_connect_burst.c"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def burst(client: Path, port: int, count: int) -> tuple[float, int, int, float]:
    """(seconds of the connect loop, connects that succeeded, client pid, CPU seconds of
    client + acceptor, user and system: the in-kernel probe cost lands here)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [str(client), str(port), str(count)], check=True, capture_output=True, text=True
    ).stdout.split()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(out[3]), int(out[2]), int(out[0]), cpu


def drain(session: ProbeSession, quiet: float = 0.5) -> EventArray:
    """Read until the session has been quiet for ``quiet`` seconds (or 5 s passed)."""
    batches = []
    start = last = time.monotonic()
    while time.monotonic() - last < quiet and time.monotonic() - start < 5:
        batch = session.read(0.05)
        if len(batch):
            batches.append(batch)
            last = time.monotonic()
    return concat(batches)


def collect_burst(session: ProbeSession, port: int, expected: int, settle: float) -> EventArray:
    """Read until ``expected`` burst events arrived, or until ``settle`` seconds pass
    without new burst events (losses, or polling that sees few)."""
    batches = []
    seen = 0
    last = time.monotonic()
    while seen < expected and time.monotonic() - last < settle:
        batch = session.read(0.05)
        if len(batch):
            batches.append(batch)
            found = len(burst_events(batch, port))
            if found:
                seen += found
                last = time.monotonic()
    return concat(batches)


def burst_events(events: EventArray, port: int) -> EventArray:
    on_port = (events["dport"] == port) | (events["sport"] == port)
    tcp = (events["kind"] >= Kind.TCP_CONNECT) & (events["kind"] <= Kind.TCP_CLOSE)
    return events[on_port & tcp & ((events["flags"] & Flag.SNAPSHOT) == 0)]


def burst_pid_events(events: EventArray, port: int, pid: int) -> EventArray:
    """Burst events attributed to the client (it owns the listener too)."""
    mine = burst_events(events, port)
    return mine[mine["pid"] == pid]


def run_once(mode: str, client: Path, port: int, count: int, content: bool = True) -> Run:
    if mode == "ebpf-nocontent":
        run = run_once("ebpf", client, port, count, content=False)
        run.mode = mode
        return run
    if mode == "none":
        seconds, ok, _, client_cpu = burst(client, port, count)
        return Run(mode, seconds, ok, client_cpu=client_cpu)
    if mode == "kernel":
        source = EbpfSource(wait_for_seed=True, content=content)  # attached, not read
        source.start(StringTable())
        seconds, ok, _, client_cpu = burst(client, port, count)
        source.stop()
        return Run(mode, seconds, ok, client_cpu=client_cpu)
    session = open_session(mode, poll_interval=1.0, content=content)
    session.start(StringTable())
    drain(session, quiet=0.3)  # the window-start snapshot
    cpu0 = time.process_time()
    seconds, ok, client_pid, client_cpu = burst(client, port, count)
    expected = ok * EVENTS_PER_CONNECT + LISTENER_EVENTS
    events = collect_burst(session, port, expected, settle=1.0 if mode == "ebpf" else 2.5)
    cpu = time.process_time() - cpu0
    delivered = len(events)
    session.stop()
    events = concat([events, session.read(0.0)])
    run = Run(mode, seconds, ok, cpu=cpu, client_cpu=client_cpu)
    mine = burst_pid_events(events, port, client_pid)
    run.captured = len(mine)
    established = mine[mine["kind"] == Kind.TCP_ESTABLISHED]
    run.polled_connections = len(set(established["sock"].tolist()))
    if mode == "ebpf":
        ebpf = session._ebpf  # the bench reads the kernel counters directly
        assert ebpf is not None
        counts = ebpf.kernel_counts()
        run.attempted, run.lost, run.reserve_failed = (
            counts.attempted,
            counts.lost,
            counts.reserve_failed,
        )
        run.delivered = counts.delivered
    run.cpu_per_1k = 1000 * cpu / max(delivered, 1)
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connects", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--port", type=int, default=20999, help="below the ephemeral range (no collisions)"
    )
    parser.add_argument(
        "--no-content",
        dest="content",
        action="store_false",
        help="load the eBPF programs without first-payload capture (issue 3's probes alone)",
    )
    parser.add_argument(
        "--content-pair",
        action="store_true",
        help=f"run {', '.join(CONTENT_MODES)} instead, to pair capture on and off",
    )
    args = parser.parse_args()
    modes = CONTENT_MODES if args.content_pair else MODES
    with tempfile.TemporaryDirectory() as tmp:
        client = build_client(Path(tmp))
        for content in {args.content, not args.content_pair}:
            open_session("ebpf", content=content).stop()  # compile once, unmeasured
        runs: list[Run] = []
        for i in range(args.runs):
            for mode in modes:
                port = args.port + i % 2
                runs.append(run_once(mode, client, port, args.connects, args.content))
                wait_detached()  # the next run, maybe without probes, starts with none
    report(runs, args.connects, modes)
    return 0


def report(runs: list[Run], connects: int, modes: tuple[str, ...] = MODES) -> None:
    generated = connects * EVENTS_PER_CONNECT + LISTENER_EVENTS
    rounds = len(runs) // len(modes)
    print(f"{connects} loopback connects per run, {rounds} rounds of {', '.join(modes)}")
    print(
        f"{'mode':<15}{'connects/s':>11} {'vs none':>8} {'client us/conn':>15} {'vs none':>8}"
        f" {'burst events':>17} "
        f"{'captured':>9} {'lost':>5} {'deliv+lost=att':>14} {'cpu ms/1k ev':>13}"
    )
    for mode in modes:
        mine = [r for r in runs if r.mode == mode]
        rate = statistics.median(r.rate for r in mine)
        # Paired with the baseline of the same round, so load drifts cancel out.
        ratio = statistics.median(
            r.rate / base.rate for r, base in zip(mine, runs[:: len(modes)], strict=True)
        )
        cpu_ratio = statistics.median(
            r.client_us / base.client_us for r, base in zip(mine, runs[:: len(modes)], strict=True)
        )
        client_us = statistics.median(r.client_us for r in mine)
        line = f"{mode:<15}{rate:>11.0f} {ratio:>8.3f} {client_us:>15.1f} {cpu_ratio:>8.3f}"
        if mode.startswith("ebpf"):
            captured = statistics.median(r.captured for r in mine)
            exact = all(r.delivered + r.reserve_failed == r.attempted for r in mine)
            cpu = statistics.median(r.cpu_per_1k * 1000 for r in mine)
            line += (
                f" {f'{captured:.0f}/{generated}':>17} {100 * captured / generated:>8.2f}%"
                f" {statistics.median(r.lost for r in mine):>5.0f} {exact!s:>14} {cpu:>13.2f}"
            )
        elif mode == "poll":
            seen = statistics.median(r.polled_connections for r in mine)
            line += f" {f'{seen:.0f}/{connects} conns':>17} {100 * seen / connects:>8.2f}%"
        print(line)
    paired_worst(runs, modes)
    print("per run: mode, connects/s, client us/conn, burst events, lost, attempted, delivered,")
    print("         rba cpu ms/1k events")
    for r in runs:
        print(
            f"  {r.mode:<15}{r.rate:>8.0f} {r.client_us:>6.1f} {r.captured:>7} {r.lost:>5} "
            f"{r.attempted:>7} "
            f"{r.delivered:>7} {r.cpu_per_1k * 1000 if r.mode.startswith('ebpf') else 0:.2f}"
        )


def paired_worst(runs: list[Run], modes: tuple[str, ...]) -> None:
    """Connect-rate ratios of eBPF runs, paired per round: to ``none``, and with content
    capture to without it; median and the worst round."""
    rounds = [runs[i : i + len(modes)] for i in range(0, len(runs), len(modes))]
    pairs = [("ebpf", "none")]
    if "ebpf-nocontent" in modes:
        pairs += [("ebpf-nocontent", "none"), ("ebpf", "ebpf-nocontent")]
    for mode, base in pairs:
        ratios = [_rate(rnd, mode) / _rate(rnd, base) for rnd in rounds]
        cpu = [_run(rnd, mode).client_us / _run(rnd, base).client_us for rnd in rounds]
        print(
            f"{mode} / {base}, paired per round: connects/s median "
            f"{statistics.median(ratios):.3f}, worst {min(ratios):.3f}; client CPU per "
            f"connect median {statistics.median(cpu):.3f}, worst {max(cpu):.3f}"
        )


def _rate(round_runs: list[Run], mode: str) -> float:
    return _run(round_runs, mode).rate


def _run(round_runs: list[Run], mode: str) -> Run:
    return next(r for r in round_runs if r.mode == mode)


if __name__ == "__main__":
    sys.exit(main())
