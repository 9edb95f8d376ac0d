"""The eBPF source, for real: tracepoints in this kernel, real processes and sockets."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from probes.backend import ProbeSession, open_session
from probes.ebpf import EbpfSource
from probes.events import EventArray, Family, Flag, Kind, Source, StringTable, empty, format_address
from tests.probes.conftest import Collector, Listener, read_until, select

pytestmark = pytest.mark.ebpf


@pytest.fixture
def strings() -> StringTable:
    return StringTable()


@pytest.fixture
def session(strings: StringTable) -> Iterator[ProbeSession]:
    s = open_session("ebpf")
    s.start(strings)
    yield s
    s.stop()


def test_session_sources_and_snapshot_first(session: ProbeSession) -> None:
    assert session.sources == ("ebpf", "poll")
    assert session.notices == ()
    assert session.capabilities.sees_every_connection and session.capabilities.sees_logins
    first = session.read(1.0)
    assert first[0]["flags"] & Flag.SNAPSHOT
    snaps = select(first, kind=Kind.PROC_SNAPSHOT)
    assert os.getpid() in snaps["pid"].tolist()
    me = select(snaps, pid=os.getpid())[0]
    assert me["source"] == Source.POLL and me["flags"] & Flag.SNAPSHOT
    assert me["netns"] == os.stat("/proc/self/ns/net").st_ino


def test_500_connect_burst_every_connect_and_passive_attributed(
    session: ProbeSession, listener_factory: Callable[..., Listener]
) -> None:
    server = listener_factory("127.0.0.1")
    socks = []
    for _ in range(500):
        socks.append(socket.create_connection(("127.0.0.1", server.port)))
    for s in socks:
        s.close()

    def complete(ev: EventArray) -> bool:
        passive = select(ev, kind=Kind.TCP_ESTABLISHED, flags=Flag.PASSIVE, sport=server.port)
        return len(passive) >= 500

    ev = read_until(session, complete, timeout=10)
    connects = select(ev, kind=Kind.TCP_CONNECT, dport=server.port)
    assert len(connects) == 500
    assert set(connects["pid"].tolist()) == {os.getpid()}
    assert len(set(connects["sock"].tolist())) == 500
    active = select(ev, kind=Kind.TCP_ESTABLISHED, flags=Flag.ACTIVE, dport=server.port)
    assert len(active) == 500 and set(active["pid"].tolist()) == {os.getpid()}
    passive = select(ev, kind=Kind.TCP_ESTABLISHED, flags=Flag.PASSIVE, sport=server.port)
    assert len(passive) == 500
    # In softirq the kernel's pid is whoever ran (here: us); attribution must say server.
    assert set(passive["pid"].tolist()) == {server.pid}
    assert all(p["netns"] == os.stat("/proc/self/ns/net").st_ino for p in passive[:5])
    assert session.stats()["ebpf"].lost == 0


def test_exec_of_a_program_living_under_10ms(
    session: ProbeSession, strings: StringTable, short_program: Path
) -> None:
    proc = subprocess.run([str(short_program), "arg-one"], check=False)
    assert proc.returncode == 3
    collector = Collector(session)
    ev = collector.until(lambda e: _execs_of(e, strings, short_program).size > 0)
    execs = _execs_of(ev, strings, short_program)
    assert len(execs) == 1
    row = execs[0]
    assert row["ppid"] == os.getpid()
    assert row["uid"] == os.getuid()
    forks = select(ev, kind=Kind.FORK, pid=int(row["pid"]))
    assert len(forks) == 1 and forks[0]["ppid"] == os.getpid()
    ev = collector.until(lambda e: len(select(e, kind=Kind.EXIT, pid=int(row["pid"]))) > 0)
    exits = select(ev, kind=Kind.EXIT, pid=int(row["pid"]))
    assert len(exits) == 1 and exits[0]["aux"] == 3


def _execs_of(ev: EventArray, strings: StringTable, path: Path) -> EventArray:
    execs = select(ev, kind=Kind.EXEC)
    keep = [strings.get(int(e["str_a"])) == str(path) for e in execs]
    return execs[keep]


def test_listeners_before_and_during_the_window_have_owners(
    strings: StringTable, listener_factory: Callable[..., Listener]
) -> None:
    before = listener_factory("0.0.0.0")
    with open_session("ebpf") as session:
        session.start(strings)
        during = listener_factory("::")
        ev = read_until(session, lambda e: len(select(e, sport=during.port)) > 0)
    old = select(ev, kind=Kind.TCP_LISTEN, sport=before.port)
    assert len(old) == 1
    assert old[0]["pid"] == before.pid and old[0]["flags"] & Flag.SNAPSHOT
    assert format_address(int(old[0]["family"]), old[0]["saddr"]) == "0.0.0.0"
    new = select(ev, kind=Kind.TCP_LISTEN, sport=during.port)
    assert len(new) == 1
    assert new[0]["pid"] == during.pid and new[0]["source"] == Source.EBPF
    assert new[0]["family"] == Family.INET6 and not new[0]["flags"] & Flag.SNAPSHOT


def test_passive_connection_to_a_listener_from_before_the_window(
    strings: StringTable, listener_factory: Callable[..., Listener]
) -> None:
    before = listener_factory("127.0.0.1")
    with open_session("ebpf") as session:
        session.start(strings)
        with socket.create_connection(("127.0.0.1", before.port)):
            pass
        ev = read_until(
            session, lambda e: len(select(e, kind=Kind.TCP_ESTABLISHED, sport=before.port)) > 0
        )
    passive = select(ev, kind=Kind.TCP_ESTABLISHED, sport=before.port)
    assert len(passive) == 1 and passive[0]["pid"] == before.pid


def test_sockets_from_before_the_window(
    strings: StringTable, listener_factory: Callable[..., Listener]
) -> None:
    """A UDP socket and a TCP connection opened before the window: the UDP send is
    still seen, and the connection's close is attributed through the snapshot."""
    server = listener_factory("127.0.0.1")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.create_connection(("127.0.0.1", server.port))
    local_port = tcp.getsockname()[1]
    with open_session("ebpf") as session:
        session.start(strings)
        udp.sendto(b"x", ("127.0.0.1", 69))
        tcp.close()
        ev = read_until(
            session,
            lambda e: (
                len(select(e, kind=Kind.UDP_SEND, dport=69))
                and len(select(e, kind=Kind.TCP_CLOSE, sport=local_port))
            ),
        )
    udp.close()
    sends = select(ev, kind=Kind.UDP_SEND, dport=69)
    assert len(sends) == 1 and sends[0]["pid"] == os.getpid()
    snap = select(ev, kind=Kind.TCP_ESTABLISHED, sport=local_port)
    assert len(snap) == 1 and snap[0]["flags"] & Flag.SNAPSHOT and snap[0]["pid"] == os.getpid()
    closes = select(ev, kind=Kind.TCP_CLOSE, sport=local_port)
    assert len(closes) == 1 and closes[0]["pid"] == os.getpid()
    assert closes[0]["source"] == Source.EBPF


def test_udp_sends_to_snmp_port_with_pid(session: ProbeSession) -> None:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.sendto(b"\x30\x00", ("127.0.0.1", 161))
    b = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    b.sendmsg([b"tftp"], [], 0, ("::1", 69))
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.connect(("127.0.0.2", 162))
    for s in (a, b, c):
        s.close()

    def udp(ev: EventArray) -> EventArray:
        return select(ev, kind=Kind.UDP_SEND, pid=os.getpid())

    ev = read_until(session, lambda e: len(udp(e)) >= 3)
    got = {(format_address(int(e["family"]), e["daddr"]), int(e["dport"])) for e in udp(ev)}
    assert got == {("127.0.0.1", 161), ("::1", 69), ("127.0.0.2", 162)}
    # TCP connects are not UDP sends.
    assert not len(select(ev, kind=Kind.UDP_SEND, dport=0))


def test_tcp_sockets_on_a_udp_sockets_fd_and_fast_open_send_no_udp(
    session: ProbeSession, listener_factory: Callable[..., Listener]
) -> None:
    """TCP sockets are not marked (the common case stays cheap): a new socket on the fd
    of a closed UDP socket clears its mark, and a TCP Fast Open sendto with an address
    is a connect, not a datagram."""
    server = listener_factory()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fd = udp.fileno()
    udp.close()
    reused = socket.socket()
    assert reused.fileno() == fd  # the lowest free fd
    reused.connect(("127.0.0.1", server.port))
    reused.close()
    fast = socket.socket()
    fast.sendto(b"GET / HTTP/1.0\r\n\r\n", socket.MSG_FASTOPEN, ("127.0.0.1", server.port))
    fast.close()

    def connects(ev: EventArray) -> EventArray:
        return select(ev, kind=Kind.TCP_CONNECT, dport=server.port, pid=os.getpid())

    ev = read_until(session, lambda e: len(connects(e)) >= 2)
    assert len(connects(ev)) == 2
    assert not len(select(ev, kind=Kind.UDP_SEND, dport=server.port))


def test_connect_to_ipv6_loopback(
    session: ProbeSession, listener_factory: Callable[..., Listener]
) -> None:
    server = listener_factory("::1")
    with socket.create_connection(("::1", server.port)):
        pass
    ev = read_until(
        session, lambda e: len(select(e, kind=Kind.TCP_ESTABLISHED, sport=server.port)) > 0
    )
    connect = select(ev, kind=Kind.TCP_CONNECT, dport=server.port)
    assert len(connect) == 1 and connect[0]["pid"] == os.getpid()
    assert connect[0]["family"] == Family.INET6
    assert format_address(Family.INET6, connect[0]["daddr"]) == "::1"
    passive = select(ev, kind=Kind.TCP_ESTABLISHED, sport=server.port)
    assert passive[0]["pid"] == server.pid


def test_v4_mapped_connect_is_reported_as_ipv4(
    session: ProbeSession, listener_factory: Callable[..., Listener]
) -> None:
    server = listener_factory("127.0.0.1")
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s6.connect(("::ffff:127.0.0.1", server.port))
    s6.close()
    ev = read_until(session, lambda e: len(select(e, kind=Kind.TCP_CONNECT, dport=server.port)))
    connect = select(ev, kind=Kind.TCP_CONNECT, dport=server.port)[0]
    assert connect["family"] == Family.INET
    assert format_address(Family.INET, connect["daddr"]) == "127.0.0.1"


CLIENT = r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
print("connected", flush=True)
time.sleep(10)  # killed by the test: alive while its events are read
"""


@pytest.mark.netns
def test_connect_inside_a_namespace_carries_that_namespace(
    session: ProbeSession, listener_factory: Callable[..., Listener]
) -> None:
    """Loopback listeners on the same port in the host and in a test namespace: each
    connection is attributed to the namespace it happened in."""
    from tests.support.netns import peer_namespace

    host_ns = os.stat("/proc/self/ns/net").st_ino
    with peer_namespace() as ns:
        inum = os.stat(f"/run/netns/{ns.name}").st_ino
        assert inum != host_ns
        server = listener_factory("127.0.0.1", prefix=["ip", "netns", "exec", ns.name])
        host_server = listener_factory("127.0.0.1", port=server.port)
        client = ns.spawn(
            [sys.executable, "-c", CLIENT, "127.0.0.1", str(server.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None and client.stdout.readline() == "connected\n"
        with socket.create_connection(("127.0.0.1", server.port)):
            pass
        ev = read_until(
            session,
            lambda e: (
                len(select(e, kind=Kind.TCP_ESTABLISHED, flags=Flag.PASSIVE, sport=server.port))
                >= 2
            ),
        )
    connects = select(ev, kind=Kind.TCP_CONNECT, dport=server.port)
    assert sorted(connects["netns"].tolist()) == sorted([inum, host_ns])
    inside = select(connects, netns=inum)[0]
    assert inside["pid"] == client.pid  # ip netns exec execs: same pid
    assert select(connects, netns=host_ns)[0]["pid"] == os.getpid()
    listens = select(ev, kind=Kind.TCP_LISTEN, sport=server.port)
    assert {(int(e["netns"]), int(e["pid"])) for e in listens} == {
        (inum, server.pid),
        (host_ns, host_server.pid),
    }
    passive = select(ev, kind=Kind.TCP_ESTABLISHED, flags=Flag.PASSIVE, sport=server.port)
    assert {(int(e["netns"]), int(e["pid"])) for e in passive} == {
        (inum, server.pid),
        (host_ns, host_server.pid),
    }


CONNECT_ONCE = r"""
import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
print("connected", flush=True)
"""


@pytest.mark.netns
def test_wildcard_listeners_on_one_port_in_two_namespaces_over_veth(
    session: ProbeSession, listener_factory: Callable[..., Listener]
) -> None:
    """0.0.0.0:P in the host and in a namespace; connections across the veth pair land
    on the listener of the namespace that owns the destination address."""
    from tests.support.netns import peer_namespace

    host_ns = os.stat("/proc/self/ns/net").st_ino
    with peer_namespace() as ns:
        inum = os.stat(f"/run/netns/{ns.name}").st_ino
        inside = listener_factory("0.0.0.0", prefix=["ip", "netns", "exec", ns.name])
        outside = listener_factory("0.0.0.0", port=inside.port)
        with socket.create_connection((ns.peer_ip, inside.port), timeout=5):
            pass
        back = ns.run(
            [sys.executable, "-c", CLIENT.replace("10", "0"), ns.host_ip, str(inside.port)]
        )
        assert "connected" in back.stdout, back.stderr
        ev = read_until(
            session,
            lambda e: (
                len(select(e, kind=Kind.TCP_ESTABLISHED, flags=Flag.PASSIVE, sport=inside.port))
                >= 2
            ),
        )
    passive = select(ev, kind=Kind.TCP_ESTABLISHED, flags=Flag.PASSIVE, sport=inside.port)
    placed = {
        format_address(int(e["family"]), e["saddr"]): (int(e["netns"]), int(e["pid"]))
        for e in passive
    }
    assert placed == {ns.peer_ip: (inum, inside.pid), ns.host_ip: (host_ns, outside.pid)}


def test_ring_buffer_overflow_is_counted_exactly(strings: StringTable) -> None:
    """A one-page ring buffer that nobody drains: every event is delivered or lost."""
    source = EbpfSource(ringbuf_pages=1, wait_for_seed=True)  # reader waits: nothing drains
    source.start(strings)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(512)
    port = server.getsockname()[1]
    # Every state change below happens before the call that causes it returns, so the
    # count is exact even when the machine defers softirq work to ksoftirqd: accept()
    # returns only established children, and an abortive close (linger 0) moves its
    # socket to CLOSE at once and the peer's, by RST, unless the peer is already closed.
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
    children = [server.accept()[0] for _ in clients]
    server.close()
    for sock in children + clients:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    assert source.stats().lost > 0  # counted in the kernel while nothing was read
    source.seed(empty())
    source.stop()
    ev = source.read(0.0)
    stats = source.stats()
    # One page holds a few dozen events. Ours alone were 200 x (connect, active and
    # passive establishment, two closes) + listen + listener close = 1002.
    assert len(select(ev, kind=Kind.TCP_CONNECT, dport=port)) < 200
    assert stats.events == len(ev) < 1002
    assert stats.events + stats.lost >= 1002
    counts = source.kernel_counts()
    assert counts.attempted == counts.delivered + counts.reserve_failed
    assert counts.delivered <= stats.events  # and labels made from first payloads
    assert stats.lost == counts.reserve_failed + counts.skipped
