"""A synthetic but realistic event stream for the trace benchmarks.

The mix follows what a busy host produces in a window: mostly TCP connection life
cycles (connect, established on both ends when the peer is local, close), a steady
stream of short processes (fork, exec, exit), some UDP sends, and the snapshot of
processes and listeners at the start. Values are drawn like the kernel hands them
out: monotonic timestamps a few microseconds apart, kernel socket addresses, ephemeral
ports, pids that grow, a small population of programs.
"""

from __future__ import annotations

import numpy as np

from probes.events import EVENT_DTYPE, EventArray, Family, Flag, Kind, Source, StringTable

PROGRAMS = [
    ("/usr/bin/curl", b"curl"),
    ("/usr/sbin/nginx", b"nginx"),
    ("/usr/bin/python3.11", b"python3"),
    ("/usr/bin/bash", b"bash"),
    ("/usr/sbin/sshd", b"sshd"),
    ("/usr/bin/ls", b"ls"),
    ("/usr/lib/postgresql/15/bin/postgres", b"postgres"),
    ("/usr/bin/redis-server", b"redis-server"),
]
SERVER_PORTS = np.array([80, 443, 5432, 6379, 8080, 22, 25, 21], dtype=np.uint16)
WALL_START_NS = 1_790_000_000_000_000_000
KINDS = [
    Kind.TCP_CONNECT,
    Kind.TCP_ESTABLISHED,
    Kind.TCP_CLOSE,
    Kind.FORK,
    Kind.EXEC,
    Kind.EXIT,
    Kind.UDP_SEND,
    Kind.TCP_LISTEN,
    Kind.PROC_SNAPSHOT,
]
# Shares of KINDS per workload: a realistic host, one busy with connections (a proxy, a
# crawler) and one busy with short processes (a build, a CI runner).
MIXES = {
    "realistic": [0.17, 0.30, 0.30, 0.06, 0.06, 0.06, 0.03, 0.005, 0.015],
    "connections": [0.30, 0.30, 0.30, 0.02, 0.02, 0.02, 0.03, 0.0025, 0.0075],
    "processes": [0.03, 0.03, 0.03, 0.29, 0.29, 0.29, 0.01, 0.005, 0.025],
}
MONO_START_NS = 86_400_000_000_000


def make_strings(strings: StringTable, rng: np.random.Generator, n_cmdlines: int) -> np.ndarray:
    """Intern the programs' paths and ``n_cmdlines`` distinct command lines; return ids
    shaped (n_cmdlines, 2): (exe id, cmdline id)."""
    ids = np.zeros((n_cmdlines, 2), dtype=np.uint32)
    for i in range(n_cmdlines):
        path, comm = PROGRAMS[i % len(PROGRAMS)]
        arg = rng.integers(0, 1 << 32)
        ids[i] = (strings.intern(path), strings.intern(f"{comm.decode()} --job {arg:x} -v"))
    return ids


def generate(
    n: int, seed: int = 7, strings: StringTable | None = None, mix: str = "realistic"
) -> EventArray:
    """``n`` events in the mix ``mix`` (a key of MIXES), in time order."""
    rng = np.random.default_rng(seed)
    table = strings if strings is not None else StringTable()
    cmd_ids = make_strings(table, rng, max(16, n // 2000))
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    gaps = rng.exponential(40_000, n).astype(np.uint64) + 1000
    ev["ts_mono"] = MONO_START_NS + np.cumsum(gaps)
    ev["ts_wall"] = ev["ts_mono"] - MONO_START_NS + WALL_START_NS
    kinds = rng.choice(KINDS, size=n, p=MIXES[mix]).astype(np.uint8)
    ev["kind"] = kinds
    ev["source"] = Source.EBPF
    prog = rng.integers(0, len(PROGRAMS), n)
    ev["comm"] = np.array([c for _, c in PROGRAMS], dtype="S16")[prog]
    ev["pid"] = 1000 + (np.arange(n) // 50) % 30000 + prog
    ev["ppid"] = np.where(np.isin(kinds, [Kind.EXEC, Kind.FORK, Kind.PROC_SNAPSHOT]), 1 + prog, 0)
    ev["uid"] = np.where(prog % 3 == 0, 0, 1000)
    ev["euid"] = ev["uid"]
    ev["netns"] = 4026531840
    net = np.isin(
        kinds,
        [Kind.TCP_CONNECT, Kind.TCP_ESTABLISHED, Kind.TCP_CLOSE, Kind.UDP_SEND, Kind.TCP_LISTEN],
    )
    ev["family"] = np.where(net, Family.INET, Family.NONE)
    sock = rng.integers(0, 1 << 30, n).astype(np.uint64) * np.uint64(64)
    ev["sock"] = np.where(net, np.uint64(0xFFFF_8880_0000_0000) + sock, 0)
    ev["sport"] = np.where(net, rng.integers(32768, 60999, n), 0)
    ev["dport"] = np.where(net, SERVER_PORTS[rng.integers(0, len(SERVER_PORTS), n)], 0)
    local = rng.random(n) < 0.5
    saddr = ev["saddr"]
    daddr = ev["daddr"]
    saddr[:, 0] = np.where(net, np.where(local, 127, 198), 0)
    saddr[:, 1] = np.where(net & ~local, 51, 0)
    saddr[:, 2] = np.where(net & ~local, 100, 0)
    saddr[:, 3] = np.where(net, np.where(local, 1, 2), 0)
    daddr[:, 0] = np.where(net, np.where(local, 127, 203), 0)
    daddr[:, 1] = np.where(net & ~local, 0, 0)
    daddr[:, 2] = np.where(net & ~local, 113, 0)
    daddr[:, 3] = np.where(net, np.where(local, 1, rng.integers(1, 255, n)), 0)
    est = kinds == Kind.TCP_ESTABLISHED
    ev["flags"] = np.where(est, np.where(local, Flag.PASSIVE, Flag.ACTIVE), 0)
    ev["flags"] |= np.where(
        np.isin(kinds, [Kind.PROC_SNAPSHOT, Kind.TCP_LISTEN]), Flag.SNAPSHOT, 0
    ).astype(np.uint8)
    withstr = np.isin(kinds, [Kind.EXEC, Kind.PROC_SNAPSHOT])
    pick = cmd_ids[rng.integers(0, len(cmd_ids), n)]
    ev["str_a"] = np.where(withstr, pick[:, 0], 0)
    ev["str_b"] = np.where(withstr, pick[:, 1], 0)
    ev["aux"] = np.where(kinds == Kind.EXIT, rng.integers(0, 2, n), 0)
    return ev
