"""Benchmark: a burst of loopback TCP connects, seen by eBPF and by 1 s polling.

    .venv/bin/python bench/probe_burst.py [--connects 20000] [--runs 5]

A gcc-built C client (bench/probe_connect_burst.c) connects to 127.0.0.1 as fast as it
can, with an acceptor it forked. Each run is one of three modes, interleaved so that
machine noise spreads evenly:

- ``none``: no probes (baseline throughput);
- ``ebpf``: ``open_session("ebpf")`` (eBPF + complementary polling) consuming in this
  process; every connect makes 5 events (SYN_SENT, active and passive ESTABLISHED, two
  CLOSEs), the listener 2 more;
- ``poll``: ``open_session("poll")`` at 1 s, an osquery-style snapshot poller.

Printed: connect throughput (median, and the ratio to ``none``), burst events captured
vs generated, kernel-counted lost and attempted events (delivered + lost must equal
attempted exactly), and this process's CPU time per 1,000 delivered events.
Needs root, bcc and gcc.
"""

from __future__ import annotations

import argparse
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
from probes.events import EventArray, Flag, Kind, StringTable  # noqa: E402

EVENTS_PER_CONNECT = 5
LISTENER_EVENTS = 2  # LISTEN, and CLOSE of the listener


@dataclass
class Run:
    mode: str
    seconds: float  # connect loop only, measured by the client
    connects: int
    captured: int = 0  # burst events delivered (port match)
    polled_connections: int = 0  # distinct burst connections a poller saw
    delivered: int = 0  # every event the eBPF source delivered in the window
    attempted: int = 0
    lost: int = 0
    cpu: float = 0.0  # this process's CPU seconds from burst start to all burst events in
    cpu_per_1k: float = 0.0  # ... per 1,000 events delivered in that interval

    @property
    def rate(self) -> float:
        return self.connects / self.seconds


def build_client(directory: Path) -> Path:
    binary = directory / "probe_connect_burst"
    source = REPO / "bench" / "probe_connect_burst.c"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def burst(client: Path, port: int, count: int) -> tuple[float, int, int]:
    """(seconds of the connect loop, connects that succeeded, client pid)."""
    out = subprocess.run(
        [str(client), str(port), str(count)], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[3]), int(out[2]), int(out[0])


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


def run_once(mode: str, client: Path, port: int, count: int) -> Run:
    if mode == "none":
        seconds, ok, _ = burst(client, port, count)
        return Run(mode, seconds, ok)
    session = open_session(mode, poll_interval=1.0)
    session.start(StringTable())
    drain(session, quiet=0.3)  # the window-start snapshot
    cpu0 = time.process_time()
    seconds, ok, client_pid = burst(client, port, count)
    expected = ok * EVENTS_PER_CONNECT + LISTENER_EVENTS
    events = collect_burst(session, port, expected, settle=1.0 if mode == "ebpf" else 2.5)
    cpu = time.process_time() - cpu0
    delivered = len(events)
    session.stop()
    events = concat([events, session.read(0.0)])
    run = Run(mode, seconds, ok, cpu=cpu)
    mine = burst_pid_events(events, port, client_pid)
    run.captured = len(mine)
    established = mine[mine["kind"] == Kind.TCP_ESTABLISHED]
    run.polled_connections = len(set(established["sock"].tolist()))
    if mode == "ebpf":
        ebpf = session._ebpf  # the bench reads the kernel counters directly
        assert ebpf is not None
        run.attempted, run.lost = ebpf.kernel_counts()
        run.delivered = session.stats()["ebpf"].events
    run.cpu_per_1k = 1000 * cpu / max(delivered, 1)
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connects", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--port", type=int, default=20999, help="below the ephemeral range (no collisions)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        client = build_client(Path(tmp))
        open_session("ebpf").stop()  # compile once, outside the measurements
        runs: list[Run] = []
        for i in range(args.runs):
            for mode in ("none", "ebpf", "poll"):
                runs.append(run_once(mode, client, args.port + i % 2, args.connects))
    report(runs, args.connects)
    return 0


def report(runs: list[Run], connects: int) -> None:
    generated = connects * EVENTS_PER_CONNECT + LISTENER_EVENTS
    base = statistics.median(r.rate for r in runs if r.mode == "none")
    print(f"{connects} loopback connects per run, {sum(r.mode == 'none' for r in runs)} runs")
    print(
        f"{'mode':<6} {'connects/s':>11} {'vs none':>8} {'burst events':>14} "
        f"{'captured':>9} {'lost':>6} {'deliv+lost=att':>15} {'cpu ms/1k ev':>13}"
    )
    for mode in ("none", "ebpf", "poll"):
        mine = [r for r in runs if r.mode == mode]
        rate = statistics.median(r.rate for r in mine)
        line = f"{mode:<6} {rate:>11.0f} {rate / base:>8.3f}"
        if mode == "ebpf":
            captured = statistics.median(r.captured for r in mine)
            exact = all(r.delivered + r.lost == r.attempted for r in mine)
            cpu = statistics.median(1000 * r.cpu_per_1k for r in mine)
            line += (
                f" {f'{captured:.0f}/{generated}':>14} {100 * captured / generated:>8.2f}%"
                f" {statistics.median(r.lost for r in mine):>6.0f} {exact!s:>15} {cpu:>13.2f}"
            )
        elif mode == "poll":
            seen = statistics.median(r.polled_connections for r in mine)
            line += f" {f'{seen:.0f}/{connects} conns':>14} {100 * seen / connects:>8.2f}%"
        print(line)
    print("per run (mode, connects/s, captured, lost, attempted, delivered, cpu s):")
    for r in runs:
        print(
            f"  {r.mode:<5} {r.rate:>8.0f} {r.captured:>7} {r.lost:>5} {r.attempted:>7} "
            f"{r.delivered:>7} {r.cpu:.3f}"
        )


if __name__ == "__main__":
    sys.exit(main())
