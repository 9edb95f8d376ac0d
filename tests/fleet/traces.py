"""Small real traces of synthetic hosts for the fleet tests and benchmarks.

Each is written by the real :class:`TraceRecorder` from synthetic kernel events and file
facts (tests/behavior/synth.py): host ``i`` runs telnet to 198.51.100.7, listens on a port
of its own, and every third host runs /opt/app/bin/app (package acme-app), built without
DEP or stack cookies. Replaying one gives the findings the rules really produce."""

from __future__ import annotations

import hashlib
from pathlib import Path

from behavior.facts.interface import Fact, FactSet, HostFact, UserFact
from behavior.recording.recorder import TraceRecorder
from behavior.window.assess import AssessConfig, WindowEnd
from probes.events import Kind, StringTable
from probes.interface import SourceStats
from tests.behavior.synth import (
    HOST_NETNS,
    ROOT_FILE,
    SEC,
    T0,
    batch,
    binary,
    connect,
    event,
    facts_with,
    listen,
    process,
)

APP = "/opt/app/bin/app"
WINDOW_S = 60
DAY_S = 24 * 3600


def host_fact(host: str) -> HostFact:
    """A synthetic host with a machine id of its own (fingerprints are keyed by it)."""
    machine_id = hashlib.sha256(host.encode()).hexdigest()[:32]
    return HostFact(host, "6.1", HOST_NETNS, machine_id=machine_id)


def _facts(host: str, with_app: bool) -> list[Fact]:
    procs = [process(10, APP, euid=1000, t=2.0)] if with_app else []
    files = {APP: (ROOT_FILE, binary(APP, dep=False, cookies=False), "acme-app")}
    fs: FactSet = facts_with(procs, files if with_app else {})
    out: list[Fact] = [host_fact(host)]
    out += [f for f in (fs.coverage,) if f is not None]
    out += [*fs.processes.values(), *fs.files.values(), *fs.dirs.values()]
    out += [UserFact(uid, name) for uid, name in sorted(fs.users.items())]
    return out


def write_host_trace(directory: Path, i: int, *, day: int = 0) -> Path:
    """The trace of host ``i``'s window, ``day`` days after T0."""
    start = T0 + day * DAY_S * SEC
    host = f"host{i:04d}"
    strings = StringTable()
    path = directory / f"{host}-d{day}.rbt"
    recorder = TraceRecorder(str(path), purpose="capture")
    facts = _facts(host, with_app=i % 3 == 0)
    recorder.begin(
        run_id=f"run-{host}-d{day}", host=host_fact(host), started_at_ns=start,
        sources=("ebpf",), strings=strings, config=AssessConfig(duration_s=WINDOW_S),
    )  # fmt: skip
    for fact in facts:
        recorder.fact(fact)
    rows = [
        listen(strings, 30, "0.0.0.0", 8000 + i % 50, comm="python3", uid=1000, t=0.5),
        event(strings, Kind.EXEC, t=5, pid=20 + i, ppid=1, uid=1000, euid=1000, comm="telnet",
              str_a="/usr/bin/telnet", str_b="telnet 198.51.100.7"),
        *[connect(strings, 20 + i, "198.51.100.7", 23, comm="telnet", t=t) for t in (5.2, 6)],
    ]  # fmt: skip
    if i % 3 == 0:
        rows.insert(1, event(strings, Kind.EXEC, t=2, pid=10, ppid=1, uid=1000, euid=1000,
                             comm="app", str_a=APP, str_b=APP))  # fmt: skip
    shifted = batch(*rows)
    shifted["ts_wall"] += day * DAY_S * SEC
    recorder.events(shifted)
    recorder.end(
        WindowEnd(
            ended_at_ns=start + WINDOW_S * SEC, partial=False, notices=(),
            source_stats={"ebpf": SourceStats(len(rows), 0, ())}, sources=("ebpf",),
        )
    )  # fmt: skip
    recorder.close()
    return path


def write_traces(directory: Path, hosts: int, *, day: int = 0) -> list[Path]:
    """One trace per host, hosts 0 .. ``hosts`` - 1."""
    return [write_host_trace(directory, i, day=day) for i in range(hosts)]
