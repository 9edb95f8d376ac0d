"""The eBPF program's life across windows and at exit, for real.

Programs stay attached between windows behind a gate map and are detached in the
background (probes/ebpf.py, ``_Program``): a window must see exactly its own events, a
reused program nothing from between windows, and a process that exits must leave no
program attached behind it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probes.common import concat
from probes.ebpf import EbpfSource
from probes.events import EventArray, Kind, StringTable, empty
from tests.probes.conftest import select

pytestmark = pytest.mark.ebpf

REPO = Path(__file__).resolve().parents[2]


def _connect_and_accept(server: socket.socket, times: int) -> None:
    port = server.getsockname()[1]
    for _ in range(times):
        client = socket.create_connection(("127.0.0.1", port))
        server.accept()[0].close()
        client.close()


def _window(server: socket.socket, connects: int) -> tuple[EbpfSource, EventArray]:
    source = EbpfSource()
    source.start(StringTable())
    source.seed(empty())
    _connect_and_accept(server, connects)
    source.stop()
    batches = []
    while len(batch := source.read(0.0)):
        batches.append(batch)
    return source, concat(batches)


def test_consecutive_windows_see_their_own_connects_and_none_between() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    try:
        first, ev1 = _window(server, 2)
        _connect_and_accept(server, 3)  # between the windows: the gate is closed
        second, ev2 = _window(server, 1)  # reuses the program of the first
    finally:
        server.close()
    mine = {"kind": Kind.TCP_CONNECT, "dport": port, "pid": os.getpid()}
    assert len(select(ev1, **mine)) == 2
    assert len(select(ev2, **mine)) == 1
    for source, events in ((first, ev1), (second, ev2)):
        counts = source.kernel_counts()
        assert counts.attempted == counts.delivered + counts.reserve_failed
        assert counts.delivered <= len(events)


CHILD = r"""
import os, sys
from probes.common import concat
from probes.ebpf import EbpfSource
from probes.events import StringTable, empty
source = EbpfSource()
source.start(StringTable())
source.seed(empty())
source.stop()
ids = []
for fd in os.listdir("/proc/self/fdinfo"):
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            ids += [int(l.split()[1]) for l in f if l.startswith("prog_id:")]
    except OSError:
        pass
print(" ".join(map(str, ids)), flush=True)
"""


def test_an_exiting_process_leaves_no_program_attached() -> None:
    """The tracepoints still attached at exit go to a helper process that detaches
    them by exiting; within seconds no program of ours exists any more."""
    from bcc import lib

    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=REPO, capture_output=True, text=True, check=True
    )
    ids = [int(x) for x in done.stdout.split()]
    assert len(ids) >= 13  # every tracepoint program of the source (13 without content)
    deadline = time.monotonic() + 20
    alive = ids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = []
        for prog_id in ids:
            fd = lib.bpf_prog_get_fd_by_id(prog_id)
            if fd >= 0:
                os.close(fd)
                alive.append(prog_id)
    assert alive == [], f"programs still loaded after the process exited: {alive}"


def test_a_failed_connects_fd_reused_by_a_file_captures_nothing(tmp_path: Path) -> None:
    """connect() follows a connection from its enter on; when it fails, its exit drops
    the entry, so bytes later written to a file on the same fd are never read as the
    connection's first payload."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: connect() is refused
    source = EbpfSource()
    strings = StringTable()
    source.start(strings)
    source.seed(empty())
    client = socket.socket()
    fd = client.fileno()
    with pytest.raises(ConnectionRefusedError):
        client.connect(("127.0.0.1", port))
    client.close()
    reused = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert reused == fd  # the lowest free fd
        os.write(reused, b"GET / HTTP/1.0\r\nHost: example\r\n\r\n")
    finally:
        os.close(reused)
    time.sleep(0.2)
    source.stop()
    batches = []
    while len(batch := source.read(0.0)):
        batches.append(batch)
    events = concat(batches)
    assert len(select(events, kind=Kind.TCP_CONNECT, dport=port, pid=os.getpid())) == 1
    assert not len(select(events, kind=Kind.PROTO_LABEL, dport=port))


def test_a_failed_unfollowed_connect_leaves_the_followed_connection_captured(
    tmp_path: Path,
) -> None:
    """telnet connects, then its resolver's AF_UNIX connect() to nscd fails: that exit must
    not drop the TCP connection the thread connected before (the per-CPU slot of the last
    followed connect), so the request written afterwards is still labelled."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    source = EbpfSource()
    strings = StringTable()
    source.start(strings)
    source.seed(empty())
    try:
        client = socket.create_connection(("127.0.0.1", port))
        peer = server.accept()[0]
        with socket.socket(socket.AF_UNIX) as local, pytest.raises(FileNotFoundError):
            local.connect(str(tmp_path / "no-such-socket"))
        client.sendall(b"GET / HTTP/1.0\r\nHost: example\r\n\r\n")
        peer.recv(4096)
        peer.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
        client.recv(4096)
        peer.close()
        client.close()
        time.sleep(0.2)
    finally:
        server.close()
        source.stop()
    batches = []
    while len(batch := source.read(0.0)):
        batches.append(batch)
    events = concat(batches)
    labels = select(events, kind=Kind.PROTO_LABEL, dport=port, pid=os.getpid())
    assert [strings.get(int(e["str_a"])) for e in labels] == ["http"]
