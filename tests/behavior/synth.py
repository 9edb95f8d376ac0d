"""Synthetic events and facts for the behavior unit tests: one row per call, every
field named, so each test states exactly what the kernel would have reported."""

from __future__ import annotations

from typing import Any

import numpy as np

from behavior.facts.interface import (
    CoverageFact,
    DirFact,
    FactSet,
    FactSource,
    FileFact,
    HostFact,
    PathStat,
    ProcessFact,
)
from binanalysis.interface import BinaryFacts, FileFormat, Relro, Verdict
from probes.events import EventArray, Flag, Kind, Source, StringTable, empty, pack_address

SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC  # window start (wall ns)
HOST_NETNS = 4026531840


def event(strings: StringTable, kind: Kind, *, t: float = 0.0, **fields: Any) -> EventArray:
    """One event ``t`` seconds after T0. Addresses are text (``saddr="10.0.0.1"``),
    strings are text (``str_a="/usr/bin/telnet"``), flags are :class:`Flag` values."""
    row = empty(1)
    row["kind"] = kind
    row["ts_wall"] = T0 + int(t * SEC)
    row["ts_mono"] = int(t * SEC) + 1
    row["source"] = fields.pop("source", Source.EBPF)
    row["netns"] = fields.pop("netns", HOST_NETNS)
    for side in ("saddr", "daddr"):
        if side in fields:
            family, raw = pack_address(fields.pop(side))
            row[side] = np.frombuffer(raw, dtype=np.uint8)
            row["family"] = family
    for name in ("str_a", "str_b", "str_c"):
        if name in fields:
            row[name] = strings.intern(fields.pop(name))
    if "comm" in fields:
        row["comm"] = fields.pop("comm").encode()
    for name, value in fields.items():
        row[name] = value
    return row


def batch(*rows: EventArray) -> EventArray:
    """Concatenate single events into a batch."""
    return np.concatenate(rows) if rows else empty(0)


def connect(strings: StringTable, pid: int, remote: str, port: int, **kw: Any) -> EventArray:
    """A TCP connect (SYN_SENT) by ``pid`` to ``remote:port``."""
    kw.setdefault("comm", "client")
    kw.setdefault("uid", 1000)
    return event(strings, Kind.TCP_CONNECT, pid=pid, daddr=remote, dport=port, **kw)


def listen(strings: StringTable, pid: int, addr: str, port: int, **kw: Any) -> EventArray:
    """A TCP listen by ``pid`` on ``addr:port``."""
    kw.setdefault("comm", "server")
    return event(strings, Kind.TCP_LISTEN, pid=pid, saddr=addr, sport=port, **kw)


def accept(strings: StringTable, addr: str, port: int, peer: str, **kw: Any) -> EventArray:
    """A passive ESTABLISHED on local ``addr:port`` from ``peer``."""
    return event(
        strings,
        Kind.TCP_ESTABLISHED,
        flags=Flag.PASSIVE,
        saddr=addr,
        sport=port,
        daddr=peer,
        dport=50000,
        **kw,
    )


def verdict(value: bool | None, reason: str = "") -> Verdict:
    """A binanalysis verdict."""
    return Verdict(value, reason or f"synthetic {value}")


def binary(
    path: str,
    *,
    dep: bool | None = True,
    cookies: bool | None = True,
    aslr: bool | None = True,
    relro: Relro | None = Relro.FULL,
) -> BinaryFacts:
    """Binary facts for an ELF with the given verdicts."""
    return BinaryFacts(
        path=path,
        format=FileFormat.ELF,
        arch="x86_64",
        dep=verdict(dep),
        stack_cookies=verdict(cookies),
        aslr=verdict(aslr),
        relro=relro,
        relro_reason=f"synthetic {relro}",
    )


ROOT_DIR = PathStat(0, 0, 0o40755)
ROOT_FILE = PathStat(0, 0, 0o100755)


def facts_with(
    processes: list[ProcessFact],
    files: dict[str, tuple[PathStat, BinaryFacts | None, str | None]],
    dirs: dict[str, PathStat] | None = None,
    *,
    maps_readable: bool = True,
) -> FactSet:
    """A FactSet: the host, coverage, processes, files (stat, binary, package) and the
    directories of every file (root-owned 0755 unless ``dirs`` says otherwise)."""
    fs = FactSet.of(
        [
            HostFact("testhost", "6.1", HOST_NETNS),
            CoverageFact(maps_readable, True, "" if maps_readable else "not root"),
            *processes,
        ]
    )
    for path, (st, bin_facts, package) in files.items():
        fs.add(FileFact(path, st, package, bin_facts))
        directory = path
        while directory != "/":
            directory = directory.rsplit("/", 1)[0] or "/"
            given = (dirs or {}).get(directory, ROOT_DIR)
            fs.add(DirFact(directory, given))
    fs.users.update({0: "root", 1000: "alice", 65534: "nobody"})
    return fs


def process(
    pid: int,
    exe: str,
    *,
    euid: int = 0,
    uid: int | None = None,
    modules: tuple[str, ...] = (),
    script: str | None = None,
    exec_stack: bool | None = False,
    t: float = 1.0,
) -> ProcessFact:
    """A process image fact seen ``t`` seconds after T0."""
    return ProcessFact(
        key=f"{pid}@{t}",
        pid=pid,
        ppid=1,
        uid=euid if uid is None else uid,
        euid=euid,
        exe=exe,
        cmdline=(exe, *([script] if script else [])),
        script=script,
        modules=tuple(sorted({exe, *modules})),
        exec_stack=exec_stack,
        seen_ns=T0 + int(t * SEC),
    )


class FixedFacts(FactSource):
    """A fact source that serves one prepared :class:`FactSet` (what a window's
    gathering would have produced)."""

    def __init__(self, facts: FactSet) -> None:
        self._facts = facts

    def observe(self, events: EventArray, strings: StringTable) -> None:
        pass

    def facts(self, *, timeout: float = 30.0) -> FactSet:
        return self._facts
