"""The aggregator folds events into observations with exact counts and lifetimes."""

from __future__ import annotations

from typing import Any

import numpy as np

from behavior.window.aggregate import Aggregator
from probes.events import Family, Flag, Kind, Source, StringTable, empty, format_address
from tests.behavior.synth import HOST_NETNS, SEC, T0, accept, batch, connect, event, listen

WINDOW = (T0, T0 + 60 * SEC)


def _obs(agg: Aggregator):  # type: ignore[no-untyped-def]
    return agg.observations(started_ns=WINDOW[0], ended_ns=WINDOW[1])


def test_connections_counted_per_key_across_batches(strings: StringTable) -> None:
    agg = Aggregator(strings)
    agg.fold(batch(*(connect(strings, 10, "198.51.100.2", 23, t=i) for i in range(5))))
    agg.fold(batch(connect(strings, 10, "198.51.100.2", 23, t=9), connect(strings, 11, "::1", 80)))
    conns = {(c.pid, c.remote, c.port): c for c in _obs(agg).connections}
    telnet = conns[(10, "198.51.100.2", 23)]
    assert (telnet.count, telnet.first_ns, telnet.last_ns) == (6, T0, T0 + 9 * SEC)
    assert telnet.transport == "tcp" and not telnet.remote_loopback
    assert conns[(11, "::1", 80)].remote_loopback
    assert agg.events == 7


def test_connect_and_active_established_of_one_connection_count_once(
    strings: StringTable,
) -> None:
    agg = Aggregator(strings)
    est = event(
        strings, Kind.TCP_ESTABLISHED, flags=Flag.ACTIVE, pid=10, daddr="192.0.2.9", dport=80
    )
    agg.fold(batch(connect(strings, 10, "192.0.2.9", 80), est))
    [conn] = _obs(agg).connections
    assert conn.count == 1


def test_poll_and_ebpf_sightings_merge(strings: StringTable) -> None:
    agg = Aggregator(strings)
    agg.fold(
        batch(
            connect(strings, 10, "192.0.2.9", 21),
            connect(strings, 10, "192.0.2.9", 21, source=Source.POLL, t=1),
        )
    )
    [conn] = _obs(agg).connections
    assert conn.count == 1 and conn.sources == ("ebpf", "poll")


def test_udp_sends_are_their_own_transport(strings: StringTable) -> None:
    agg = Aggregator(strings)
    agg.fold(event(strings, Kind.UDP_SEND, pid=5, daddr="192.0.2.1", dport=161))
    [conn] = _obs(agg).connections
    assert (conn.transport, conn.port) == ("udp", 161)


def test_memory_is_bounded_by_distinct_keys(strings: StringTable) -> None:
    agg = Aggregator(strings)
    one = batch(*(connect(strings, pid, "192.0.2.1", 80) for pid in range(100)))
    for _ in range(50):
        agg.fold(one)
    assert agg.connection_keys == 100  # 5000 events, 100 keys
    assert sum(c.count for c in _obs(agg).connections) == 5000


def test_listener_lifetime_snapshot_and_mid_window(strings: StringTable) -> None:
    agg = Aggregator(strings)
    agg.fold(
        batch(
            listen(strings, 7, "0.0.0.0", 22, flags=Flag.SNAPSHOT),
            listen(strings, 8, "10.0.0.1", 8080, t=40),
            listen(strings, 9, "127.0.0.1", 631, t=10),
            event(strings, Kind.TCP_CLOSE, flags=Flag.LISTENER, saddr="127.0.0.1", sport=631, t=20),
        )
    )
    by_port = {s.port: s for s in _obs(agg).listeners}
    assert by_port[22].listening_ns == 60 * SEC and by_port[22].before_window
    assert by_port[8080].listening_ns == 20 * SEC
    assert by_port[631].listening_ns == 10 * SEC and by_port[631].loopback_only


def test_listener_closed_and_reopened_sums_intervals(strings: StringTable) -> None:
    agg = Aggregator(strings)
    close = {"flags": Flag.LISTENER, "saddr": "0.0.0.0", "sport": 9000}
    agg.fold(
        batch(
            listen(strings, 7, "0.0.0.0", 9000, t=0),
            event(strings, Kind.TCP_CLOSE, t=10, **close),
            listen(strings, 7, "0.0.0.0", 9000, source=Source.POLL, t=5),  # stale poll
            listen(strings, 7, "0.0.0.0", 9000, t=30),
        )
    )
    [listener] = _obs(agg).listeners
    assert listener.listening_ns == 40 * SEC


def test_accepts_match_wildcard_and_exact_listeners(strings: StringTable) -> None:
    agg = Aggregator(strings)
    agg.fold(
        batch(
            listen(strings, 7, "0.0.0.0", 80),
            listen(strings, 8, "10.0.0.1", 81),
            listen(strings, 9, "::", 82),
            accept(strings, "10.0.0.5", 80, "192.0.2.1"),
            accept(strings, "10.0.0.5", 80, "192.0.2.2"),
            accept(strings, "10.0.0.2", 81, "192.0.2.1"),  # another address: not ours
            accept(strings, "10.0.0.2", 82, "192.0.2.1"),  # v4 into a dual-stack [::]
        )
    )
    accepted = {s.port: s.accepted for s in _obs(agg).listeners}
    assert accepted == {80: 2, 81: 0, 82: 1}


def test_accepts_in_another_namespace_are_not_the_hosts(strings: StringTable) -> None:
    agg = Aggregator(strings)
    agg.fold(
        batch(
            listen(strings, 7, "0.0.0.0", 21),
            accept(strings, "10.0.0.5", 21, "192.0.2.1", netns=99),
        )
    )
    [listener] = _obs(agg).listeners
    assert listener.accepted == 0


def test_telnetd_starting_login_is_an_accepted_login(strings: StringTable) -> None:
    agg = Aggregator(strings)
    agg.fold(
        batch(
            event(strings, Kind.EXEC, pid=50, ppid=1, comm="telnetd", str_a="/usr/sbin/telnetd"),
            event(strings, Kind.FORK, pid=51, ppid=50, comm="telnetd", t=1),
            event(strings, Kind.EXEC, pid=51, ppid=50, comm="login", str_a="/bin/login", t=1.1),
            # A shell exec'd by a non-login server is nothing.
            event(strings, Kind.EXEC, pid=60, ppid=1, comm="bash", str_a="/bin/bash", t=2),
        )
    )
    [accepted] = _obs(agg).login_accepts
    assert (accepted.protocol, accepted.server_pid, accepted.pid) == ("telnet", 50, 51)


def test_processes_follow_exec_and_fork(strings: StringTable) -> None:
    agg = Aggregator(strings)
    agg.fold(
        batch(
            event(strings, Kind.EXEC, pid=5, ppid=1, comm="sh", str_a="/bin/sh", str_b="sh -c x"),
            event(strings, Kind.FORK, pid=6, ppid=5, comm="sh", t=1),
            connect(strings, 6, "192.0.2.1", 80, t=1.5),
            event(strings, Kind.EXIT, pid=6, t=2),
        )
    )
    procs = _obs(agg).processes
    assert procs[6].exe == "/bin/sh" and procs[6].cmdline == "sh -c x"
    assert procs[6].last_ns == T0 + 2 * SEC


def test_empty_batches_are_harmless(strings: StringTable) -> None:
    agg = Aggregator(strings)
    agg.fold(batch())
    obs = _obs(agg)
    assert obs.events == 0 and obs.connections == () and obs.listeners == ()


def test_exited_processes_nobody_refers_to_are_dropped(strings: StringTable) -> None:
    agg = Aggregator(strings)
    churn = []
    for pid in range(100, 1100):
        churn += [
            event(strings, Kind.EXEC, pid=pid, ppid=1, comm="true", str_a="/bin/true"),
            event(strings, Kind.EXIT, pid=pid, t=0.1),
        ]
    agg.fold(
        batch(
            event(strings, Kind.EXEC, pid=7, ppid=1, comm="curl", str_a="/usr/bin/curl"),
            connect(strings, 7, "192.0.2.1", 80),
            *churn,
            event(strings, Kind.EXIT, pid=7, t=1),
        )
    )
    procs = _obs(agg).processes
    assert list(procs) == [7]  # the client's entry outlives its exit: evidence names it
    assert procs[7].exe == "/usr/bin/curl" and procs[7].last_ns == T0 + SEC


def test_connection_list_equals_a_merge_row_by_row(strings: StringTable) -> None:
    """The vectorised merge gives what merging every outbound event one by one in a dict
    gives: connect and established of a key count once (max), sources unite, and the
    list is ordered by (first, pid, remote, port, transport)."""
    rng = np.random.default_rng(19)
    n = 6000
    ev = empty(n)
    ev["ts_wall"] = T0 + rng.permutation(n).astype(np.uint64) * 1000
    ev["kind"] = rng.choice([Kind.TCP_CONNECT, Kind.TCP_ESTABLISHED, Kind.UDP_SEND], n)
    ev["flags"] = np.where(ev["kind"] == Kind.TCP_ESTABLISHED, Flag.ACTIVE, 0)
    ev["source"] = rng.choice([Source.EBPF, Source.POLL], n)
    ev["pid"] = rng.integers(1, 40, n)
    ev["uid"] = ev["pid"] * 10
    ev["comm"] = np.char.add(b"p", ev["pid"].astype("S3"))
    ev["netns"] = rng.choice([HOST_NETNS, HOST_NETNS + 1], n)
    ev["dport"] = rng.choice([21, 23, 80, 443], n)
    v6 = rng.random(n) < 0.3
    ev["family"] = np.where(v6, Family.INET6, Family.INET)
    ev["daddr"][:, 0] = np.where(v6, 0x20, rng.choice([127, 198, 203], n))
    ev["daddr"][:, 3] = rng.integers(1, 4, n)
    ev["daddr"][:, 15] = rng.integers(0, 2, n)  # beyond an IPv4 address: a key apart
    agg = Aggregator(strings)
    for i in range(0, n, 1000):
        agg.fold(ev[i : i + 1000])
    merged: dict[tuple[Any, ...], list[Any]] = {}
    for row in ev:
        transport = "udp" if row["kind"] == Kind.UDP_SEND else "tcp"
        family, raw = int(row["family"]), bytes(row["daddr"])
        key = (int(row["pid"]), int(row["netns"]), family, raw, int(row["dport"]), transport)
        part = (int(row["kind"]) == Kind.TCP_ESTABLISHED, int(row["source"]))
        total = merged.setdefault(key, [{}, set(), []])
        total[0][part] = total[0].get(part, 0) + 1
        total[1].add(Source(int(row["source"])).label)
        total[2].append(int(row["ts_wall"]))
    expected = sorted(
        (
            min(ts),
            pid,
            format_address(family, raw),
            port,
            transport,
            max(counts.values()),
            max(ts),
            tuple(sorted(sources)),
            netns,
        )
        for (pid, netns, family, raw, port, transport), (counts, sources, ts) in merged.items()
    )
    got = [
        (c.first_ns, c.pid, c.remote, c.port, c.transport, c.count, c.last_ns, c.sources, c.netns)
        for c in _obs(agg).connections
    ]
    assert got == expected
    assert all(c.comm == f"p{c.pid}" and c.uid == c.pid * 10 for c in _obs(agg).connections)
