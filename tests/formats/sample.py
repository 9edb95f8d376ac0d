"""One realistic report for the format tests, made by the real assessment core.

Synthetic kernel events and file facts (see tests/behavior/synth.py) go through
:class:`behavior.window.assess.Assessment`, so the findings carry the evidence shapes the rules
really produce, and the report carries a real timeline: a telnet login and plain HTTP
from this host, an unused listener on 8080, vsftpd on 21 that accepted three
connections, DNS over UDP, a binary without DEP or stack cookies that was exec'd twice,
and a root process running a binary a user can modify."""

from __future__ import annotations

from behavior.facts.interface import FactSet, PathStat
from behavior.interface import NullObserver, Report
from behavior.window.assess import AssessConfig, Assessment, WindowEnd
from probes.events import Flag, Kind, StringTable
from probes.interface import SourceStats
from tests.behavior.synth import (
    ROOT_FILE,
    SEC,
    T0,
    FixedFacts,
    accept,
    batch,
    binary,
    connect,
    event,
    facts_with,
    listen,
    process,
)

APP = "/opt/app/bin/app"
TOOL = "/opt/tool/bin/tool"
WINDOW_S = 60


def _facts() -> FactSet:
    return facts_with(
        [process(10, APP, euid=1000, t=2.0), process(40, TOOL, euid=0, t=3.0)],
        {
            APP: (ROOT_FILE, binary(APP, dep=False, cookies=False), "acme-app"),
            TOOL: (PathStat(1000, 1000, 0o100755), binary(TOOL), None),
        },
    )


def _events(s: StringTable) -> list:  # type: ignore[type-arg]
    rows = [
        listen(s, 30, "0.0.0.0", 8080, comm="python3", uid=1000, flags=Flag.SNAPSHOT),
        listen(s, 31, "0.0.0.0", 21, comm="vsftpd", uid=0, flags=Flag.SNAPSHOT),
        event(
            s,
            Kind.EXEC,
            t=2,
            pid=10,
            ppid=1,
            uid=1000,
            euid=1000,
            comm="app",
            str_a=APP,
            str_b=f"{APP} --serve",
        ),
        event(s, Kind.EXEC, t=3, pid=40, ppid=1, comm="tool", str_a=TOOL, str_b=TOOL),
        event(
            s,
            Kind.EXEC,
            t=5,
            pid=20,
            ppid=1,
            uid=1000,
            euid=1000,
            comm="telnet",
            str_a="/usr/bin/telnet",
            str_b="telnet 198.51.100.7",
        ),
        event(
            s,
            Kind.EXEC,
            t=44,
            pid=11,
            ppid=1,
            uid=1000,
            euid=1000,
            comm="app",
            str_a=APP,
            str_b=f"{APP} --once",
        ),
    ]
    rows += [connect(s, 20, "198.51.100.7", 23, comm="telnet", t=t) for t in (5.2, 6, 31)]
    rows += [connect(s, 21, "203.0.113.9", 80, comm="curl", t=10 + 2.5 * i) for i in range(14)]
    rows += [accept(s, "10.0.0.2", 21, "198.51.100.20", t=t) for t in (12, 25.5, 40)]
    rows += [
        event(
            s, Kind.UDP_SEND, t=t, pid=22, uid=100, comm="resolver", daddr="198.51.100.53", dport=53
        )
        for t in (1, 15, 15.5, 33, 50)
    ]
    return sorted(rows, key=lambda r: int(r["ts_wall"][0]))


def sample_report() -> Report:
    """The report: 7 findings over a 60 s window (see the module docstring)."""
    strings = StringTable()
    assessment = Assessment(
        AssessConfig(duration_s=WINDOW_S),
        strings=strings,
        facts=FixedFacts(_facts()),
        observer=NullObserver(),
        run_id="20231114T221320Z-f0f0f0",
        started_at_ns=T0,
    )
    assessment.feed(batch(*_events(strings)))
    return assessment.finish(
        WindowEnd(
            ended_at_ns=T0 + WINDOW_S * SEC,
            partial=False,
            source_stats={"ebpf": SourceStats(1000, 0, ())},
            sources=("ebpf",),
            notices=(),
        )
    )
