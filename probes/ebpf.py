"""The eBPF source: tracepoint programs (``probes/ebpf_program.c``) loaded through bcc.

The kernel side writes :data:`probes.events.EVENT_DTYPE` records into a BPF ring buffer
and counts failed reserves per CPU. This side

- stamps wall time (``ts_wall = ts_mono + offset``) and normalises v4-mapped addresses;
- resolves each process-context event's network namespace through /proc/<pid>/ns/net;
- reads /proc/<pid>/cmdline and status for exec events at receipt (cmdline, euid);
- attributes softirq-context TCP transitions, which carry another task's pid: by socket
  id to the process that connected or listened, and passive establishments by local port
  (and address, and namespace) to the listener's owner.

bcc compiles the program once per process and sessions reuse it, because compiling costs
a noticeable fraction of a second. Its programs stay attached while a session runs and
a gate map opens and closes the window at once; detaching, which waits on the kernel
for each tracepoint, happens in the background after the window (``_Program``). What the
C program contains, and which of its programs emit events, is declared in
:mod:`probes.ebpf_program`.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from probes import ebpf_program as layout
from probes.common import BatchQueue, GapCounter, RecentMap, wall_offset_ns
from probes.content import ContentTracker
from probes.events import (
    ADDR_LEN,
    EVENT_SIZE,
    EventArray,
    Family,
    Flag,
    Kind,
    StringTable,
    comm_text,
    empty,
    is_loopback,
)
from probes.interface import (
    Capabilities,
    EventSource,
    ProbeError,
    ProbeUnavailableError,
    SourceStats,
)
from probes.procfs import (
    NetnsCache,
    ProcfsError,
    ProcStatus,
    local_addresses,
    read_cmdline_text,
    read_status,
)

PROGRAM_PATH = layout.SOURCE_PATH
TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
DEFAULT_RINGBUF_PAGES = layout.DEFAULT_RINGBUF_PAGES

EBPF_CAPABILITIES = Capabilities(
    sees_every_connection=True,
    sees_short_processes=True,
    sees_udp=True,
    sees_logins=False,
    counts_losses=True,
)

GAP_EXEC_GONE = "exec'd process gone before /proc was read (empty cmdline, euid = uid)"
GAP_EXEC_AGAIN = "exec'd process exec'd again before /proc was read (empty cmdline)"
GAP_UNKNOWN_SOCKET = "tcp event on a socket opened before the window (owner unknown)"
GAP_NO_LISTENER = "passive connection whose listener is unknown (owner unknown)"
GAP_AMBIGUOUS_LISTENER = (
    "passive connection matching listeners in several namespaces (owner unknown)"
)

_V4_MAPPED = np.array([0] * 10 + [0xFF, 0xFF], dtype=np.uint8)
_RECENT_MAX = 65536  # entries kept by each of the attributor's recent-connection maps
_ANY = bytes(ADDR_LEN)


def tracefs_path() -> str | None:
    """Where tracefs is mounted (None when it is not)."""
    for path in TRACEFS_CANDIDATES:
        if os.path.isdir(os.path.join(path, "events", "sched")):
            return path
    return None


def ebpf_unavailable_reason() -> str | None:
    """Why the eBPF source cannot run here, in a few words; None when it should."""
    if os.geteuid() != 0:
        return "not root"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "bcc (python3-bpfcc) is not importable"
    if tracefs_path() is None:
        return "tracefs is not mounted at /sys/kernel/tracing (run scripts/install-runtime.sh)"
    release = os.uname().release
    if not (os.environ.get("BCC_KERNEL_SOURCE") or Path(f"/lib/modules/{release}/build").exists()):
        return f"no kernel headers at /lib/modules/{release}/build (run scripts/install-runtime.sh)"
    if _kernel_version() < (5, 8):
        return f"kernel {release} has no BPF ring buffer (needs 5.8+)"
    return None


def _kernel_version() -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


# ---- the compiled program, shared within a process ---------------------------------------


class _Program:
    """A compiled and loaded BPF program with its ring buffers.

    bcc attaches every program on load, and they stay attached: a gate map keeps them
    idle outside a window. Detaching costs an RCU grace period per tracepoint (about
    50 ms each), so it happens in the background once a window is over, and a program
    reused before that is done keeps what is still attached."""

    def __init__(self, ringbuf_pages: int, content: bool = True) -> None:
        import bcc

        self.content = content
        self.tracepoints = layout.tracepoints(content)
        preloaded = layout.take_preloaded(ringbuf_pages, content)
        try:
            self.bpf = (
                preloaded
                if preloaded is not None
                else bcc.BPF(
                    text=layout.SOURCE_PATH.read_bytes(),
                    cflags=layout.cflags(ringbuf_pages, content),
                )
            )
        except Exception as e:  # bcc raises bare Exception on compile/load failure
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ProbeUnavailableError(f"BPF program failed to load: {first}") from e
        # Before bcc's own exit handler (atexit runs the last registered first).
        atexit.register(self._hand_over_at_exit)
        _return_freed_memory()
        loaded = {name.decode() for name in self.bpf.funcs}
        if loaded != {tp.function for tp in self.tracepoints}:
            raise ProbeUnavailableError("BPF program does not match probes/ebpf_program.py")
        self._detacher: _Detacher | None = None
        self.records: list[bytes] = []
        self.received = 0  # records taken from the event ring buffer, ever
        self.bpf[b"events"].open_ring_buffer(self._on_record)
        self.payloads: list[bytes] = []
        if content:
            self.bpf[b"payloads"].open_ring_buffer(self._on_payload)
        self.in_use = False

    def _on_record(self, _ctx: Any, data: Any, size: int) -> int:
        self.records.append(ctypes.string_at(data, size))
        return 0

    def _on_payload(self, _ctx: Any, data: Any, size: int) -> int:
        self.payloads.append(ctypes.string_at(data, size))
        return 0

    def take_payloads(self) -> list[bytes]:
        """First-payload records received so far (probes/content.py)."""
        payloads, self.payloads = self.payloads, []
        return payloads

    def forget_connections(self, settled: list[tuple[int, int]]) -> None:
        """Stop capturing payloads of connections user space has labelled, given as
        (kernel key, connection id): a key whose fd now holds a newer connection stays."""
        if not settled:
            return
        table = self.bpf[b"conns"]
        for key, conn in settled:
            with contextlib.suppress(KeyError):
                k = table.Key(key)
                if table[k].id == conn:
                    del table[k]

    def payloads_lost(self) -> int:
        if not self.content:
            return 0
        return int(sum(self.bpf[b"payloads_lost"][0]))

    def reset_state(self) -> None:
        """Forget per-socket and per-process state from an earlier window, so a reused
        program starts as a fresh one would: an fd or pid reused while the program was
        idle must not inherit what its predecessor was (a stale 'not UDP' mark hid
        sends from sockets made in the gap)."""
        for table in layout.window_state_maps(self.content):
            self.bpf[table.key].clear()

    def attach(self) -> None:
        """Attach whatever a background detach has not detached yet."""
        if self._detacher is not None:
            self._detacher.cancel()
            self._detacher = None
        for tp in self.tracepoints:
            if tp.name.encode() not in self.bpf.tracepoint_fds:
                self.bpf.attach_tracepoint(tp=tp.name.encode(), fn_name=tp.function.encode())

    def detach_later(self) -> None:
        """Detach every tracepoint in a background thread (the gate is closed, so the
        programs do nothing meanwhile)."""
        if self._detacher is None:
            self._detacher = _Detacher(self.bpf.tracepoint_fds)

    def wait_detached(self) -> None:
        """Return once a background detach has finished."""
        if self._detacher is not None:
            self._detacher.join()

    def set_window(self, open_: bool) -> None:
        """Open or close the gate of every program (map ``window``)."""
        table = self.bpf[b"window"]
        table[table.Key(0)] = table.Leaf(int(open_))

    def poll(self, timeout_ms: int) -> list[bytes]:
        """Records that arrived within ``timeout_ms`` (or at once for an exec, whose
        submit wakes us; other records are submitted without a wakeup)."""
        self.bpf.ring_buffer_poll(timeout_ms)
        self.bpf.ring_buffer_consume()
        return self.take()

    def drain(self) -> list[bytes]:
        """Every record still in the ring buffer, without waiting."""
        self.bpf.ring_buffer_consume()
        return self.take()

    def settle(self, timeout: float = 1.0) -> tuple[list[bytes], int, int]:
        """Once the gate is closed: (the records still to come, attempted reserves,
        failed reserves), read when every attempted reserve was delivered or failed,
        so that the counters are final. Runs already past the gate when it closed
        finish within microseconds."""
        records: list[bytes] = []
        deadline = time.monotonic() + timeout
        while True:
            attempted, failed = self.attempts_total(), self.lost_total()
            records += self.drain()
            if self.received + failed == attempted or time.monotonic() > deadline:
                return records, attempted, failed
            time.sleep(0.001)

    def take(self) -> list[bytes]:
        records, self.records = self.records, []
        self.received += len(records)
        return records

    def lost_total(self) -> int:
        return int(sum(self.bpf[b"lost"][0]))

    def attempts_total(self) -> int:
        return int(sum(self.bpf[b"attempts"][0]))

    def skipped_runs(self) -> tuple[int, int]:
        """Runs the kernel skipped (``recursion_misses``: a tracepoint fired while a BPF
        program was already running on that CPU, e.g. a softirq interrupting one), as
        (programs that emit events, helper programs that only keep state)."""
        emitting = helpers = 0
        for name, fn in self.bpf.funcs.items():
            misses = _recursion_misses(fn.fd)
            if layout.BY_FUNCTION[name.decode()].emits_events:
                emitting += misses
            else:
                helpers += misses
        return emitting, helpers

    def counters(self) -> KernelCounters:
        emitting, helpers = self.skipped_runs()
        attempted, failed = self.attempts_total(), self.lost_total()
        return KernelCounters(attempted, failed, emitting, helpers, self.received)

    def dispose(self) -> None:
        """Release everything; detaching goes on in the background."""
        if self._detacher is not None:
            self._detacher.cancel()
        fds = dict(self.bpf.tracepoint_fds)
        self.bpf.tracepoint_fds.clear()  # bcc's cleanup must not close them too
        self._detacher = _Detacher(fds)
        self.bpf.cleanup()

    def _hand_over_at_exit(self) -> None:
        """At interpreter exit: whatever is still attached is detached by a helper
        process, so that this one exits at once (the kernel would otherwise close the
        perf events one grace period at a time on our way out)."""
        fds = dict(self.bpf.tracepoint_fds)
        if self._detacher is not None:
            self._detacher.cancel()
            fds.update(self._detacher.fds)
            self._detacher.fds.clear()
        self.bpf.tracepoint_fds.clear()
        _detach_elsewhere(list(fds.values()))


class _Detacher:
    """Closes the perf events of attached tracepoints one by one in a thread, until
    cancelled: each close waits for an RCU grace period (kernel/trace/trace_event_perf.c,
    under one mutex, so closing in parallel hardly helps). What is left stays in
    ``fds`` (for a reused program, bcc's own table), still attached."""

    def __init__(self, fds: dict[bytes, int]) -> None:
        self.fds = fds
        self._lock = threading.Lock()
        self._cancelled = False
        # A daemon thread: at exit, what is left goes to a helper process instead.
        self._thread = threading.Thread(target=self._run, name="rba-ebpf-detach", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from bcc import lib

        while True:
            with self._lock:
                if self._cancelled or not self.fds:
                    return
                name = next(iter(self.fds))
                fd = self.fds.pop(name)
            lib.bpf_close_perf_event_fd(fd)

    def join(self) -> None:
        """Return once every tracepoint is detached."""
        self._thread.join()

    def cancel(self) -> None:
        """Stop after the close in progress; return once it is done."""
        with self._lock:
            self._cancelled = True
        self._thread.join()


def _detach_elsewhere(fds: list[int]) -> None:
    """Detach the perf events ``fds`` without waiting: a helper process that holds
    copies exits once ours are closed, and the kernel detaches them on its way out."""
    if not fds:
        return
    try:
        helper = subprocess.Popen(
            ["/bin/sh", "-c", "read _"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=fds,
            start_new_session=True,
        )
    except OSError:
        helper = None  # then this process waits for the kernel
    for fd in fds:
        os.close(fd)
    if helper is not None and helper.stdin is not None:
        helper.stdin.close()


def _return_freed_memory() -> None:
    """Give the heap that compiling freed back to the system (glibc keeps it
    otherwise: about 27 MB of the daemon's resident memory)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def _recursion_misses(prog_fd: int) -> int:
    try:
        with open(f"/proc/self/fdinfo/{prog_fd}") as f:
            for line in f:
                if line.startswith("recursion_misses:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class KernelCounters(NamedTuple):
    """Counters kept in the kernel, over a window.

    ``attempted`` reserves either succeed (and are ``delivered``: records taken from the
    ring buffer) or fail (``reserve_failed``), so ``delivered + reserve_failed ==
    attempted`` exactly once the window is closed. ``skipped`` runs of event-emitting
    programs never got to attempt: each is an event (at most one) lost. Labels made in
    user space from first payloads are events, but no kernel records.
    """

    attempted: int
    reserve_failed: int
    skipped: int
    skipped_helpers: int
    delivered: int = 0

    def __sub__(self, other: object) -> KernelCounters:
        assert isinstance(other, KernelCounters)
        return KernelCounters(*(a - b for a, b in zip(self, other)))

    @property
    def lost(self) -> int:
        """Events lost: failed reserves plus skipped runs that may have carried one."""
        return self.reserve_failed + self.skipped


GAP_SKIPPED_HELPERS = (
    "helper tracepoint runs skipped by the kernel (UDP or exit details may be missing)"
)

GAP_PAYLOADS_LOST = (
    "first payloads lost (payload ring buffer full): protocol identified by port or program"
)

_program_lock = threading.Lock()
_idle_programs: list[_Program] = []


def _acquire_program(ringbuf_pages: int, content: bool = True) -> _Program:
    with _program_lock:
        for program in _idle_programs:
            if ringbuf_pages == DEFAULT_RINGBUF_PAGES and program.content == content:
                _idle_programs.remove(program)
                program.reset_state()
                program.in_use = True
                return program
    program = _Program(ringbuf_pages, content)
    program.in_use = True
    return program


def wait_detached() -> None:
    """Wait until idle programs are fully detached (for benchmarks that compare with no
    probes at all)."""
    with _program_lock:
        idle = list(_idle_programs)
    for program in idle:
        program.wait_detached()


def _release_program(program: _Program, ringbuf_pages: int) -> None:
    """Keep a default-sized program for the next window (detaching meanwhile), or
    dispose of it."""
    program.in_use = False
    if ringbuf_pages == DEFAULT_RINGBUF_PAGES:
        program.detach_later()
        with _program_lock:
            _idle_programs.append(program)
    else:
        program.dispose()


# ---- attribution ----------------------------------------------------------------------


class Owner(NamedTuple):
    """The process a socket belongs to."""

    pid: int
    uid: int
    netns: int
    comm: bytes


class Listener(NamedTuple):
    """A listening socket and its owner."""

    sock: int
    family: int
    addr: bytes
    port: int
    owner: Owner

    def accepts(self, family: int, addr: bytes) -> bool:
        """Could a connection to (family, addr) on our port have arrived here?"""
        if self.addr == _ANY:  # wildcard; a v6 wildcard is dual-stack
            return self.family in (Family.INET6, family)
        return self.family == family and self.addr == addr


class _Columns:
    """A batch's columns as Python lists: cheap to read and write per event, written
    back to the batch in one go."""

    NAMES = (
        *("kind", "pid", "ppid", "uid", "euid", "netns", "sock", "flags", "family"),
        *("sport", "dport", "str_a", "str_b", "comm"),
    )
    WRITTEN = ("pid", "ppid", "uid", "euid", "netns", "str_a", "str_b", "comm")

    def __init__(self, batch: EventArray) -> None:
        self.batch = batch
        for name in self.NAMES:
            setattr(self, name, batch[name].tolist())
        self.saddr = batch["saddr"].tobytes()
        self.daddr = batch["daddr"].tobytes()

    def addresses(self, i: int) -> tuple[bytes, bytes]:
        return self.saddr[i * 16 : i * 16 + 16], self.daddr[i * 16 : i * 16 + 16]

    def owner(self, i: int, netns: int) -> Owner:
        return Owner(self.pid[i], self.uid[i], netns, self.comm[i])

    def set_owner(self, i: int, owner: Owner) -> None:
        self.pid[i], self.uid[i], self.netns[i], self.comm[i] = owner

    def write_back(self) -> None:
        for name in self.WRITTEN:
            self.batch[name] = getattr(self, name)

    kind: list[int]
    pid: list[int]
    ppid: list[int]
    uid: list[int]
    euid: list[int]
    netns: list[int]
    sock: list[int]
    flags: list[int]
    family: list[int]
    sport: list[int]
    dport: list[int]
    str_a: list[int]
    str_b: list[int]
    comm: list[bytes]


_ACTIVE = int(Flag.ACTIVE)
_UDP = 17  # aux of a listener event for a bound UDP socket
_LISTENER = int(Flag.LISTENER)


class Attributor:
    """Turns raw kernel records into complete events: strings, netns and owners."""

    def __init__(self, strings: StringTable, netns: NetnsCache, gaps: GapCounter) -> None:
        self.strings = strings
        self.netns = netns
        self.gaps = gaps
        self.wall_offset = wall_offset_ns()
        self.sockets: dict[int, Owner] = {}
        self.listeners: dict[int, list[Listener]] = collections.defaultdict(list)
        # (saddr, sport, daddr, dport) of our active connections -> the client's netns.
        self.recent_active: RecentMap[tuple[bytes, int, bytes, int], int] = RecentMap(_RECENT_MAX)
        # (pid, family, daddr, dport) of connects and sends -> netns: a content label can
        # be settled after its process exited, when /proc no longer tells its netns.
        self.recent_outbound: RecentMap[tuple[int, int, bytes, int], int] = RecentMap(_RECENT_MAX)
        # netns -> (when read, local addresses), to place ambiguous passive connections.
        self.netns_addresses: dict[int, tuple[float, set[tuple[int, bytes]]]] = {}
        # Connections established before the window, by (saddr, sport, daddr, dport).
        self.snapshot_conns: dict[tuple[bytes, int, bytes, int], Owner] = {}

    def seed(self, batch: EventArray) -> None:
        """Learn the window-start snapshot: listeners (so passive connections to them
        are attributed) and established connections (so their closes are)."""
        for row in batch[(batch["flags"] & Flag.SNAPSHOT) != 0]:
            kind = int(row["kind"])
            if kind not in (Kind.TCP_LISTEN, Kind.TCP_ESTABLISHED) or row["aux"] == _UDP:
                continue  # (a bound UDP socket has no TCP connections to attribute)
            owner = Owner(int(row["pid"]), int(row["uid"]), int(row["netns"]), bytes(row["comm"]))
            saddr, sport = bytes(row["saddr"]), int(row["sport"])
            if kind == Kind.TCP_LISTEN:
                self._add_listener(
                    Listener(int(row["sock"]), int(row["family"]), saddr, sport, owner)
                )
            elif owner.pid:
                self.snapshot_conns[(saddr, sport, bytes(row["daddr"]), int(row["dport"]))] = owner

    def decode(self, records: list[bytes]) -> EventArray:
        """One batch from ring-buffer records (exec records carry a filename after)."""
        if not records:
            return empty()
        joined = b"".join(r if len(r) == EVENT_SIZE else r[:EVENT_SIZE] for r in records)
        batch = np.frombuffer(joined, dtype=empty().dtype).copy()
        batch["ts_wall"] = batch["ts_mono"] + np.uint64(self.wall_offset)
        _unmap_v4(batch)
        cols = _Columns(batch)
        self._attribute(cols, records)
        cols.write_back()
        return batch

    def _attribute(self, cols: _Columns, records: list[bytes]) -> None:
        for i, kind in enumerate(cols.kind):
            if kind == Kind.TCP_ESTABLISHED:
                self._established(cols, i)
            elif kind == Kind.TCP_CLOSE:
                self._close(cols, i)
            elif kind in (Kind.TCP_CONNECT, Kind.UDP_SEND):
                owner = cols.owner(i, self._resolve(cols.pid[i]))
                cols.netns[i] = owner.netns
                self.recent_outbound.put(self._outbound_key(cols, i), owner.netns)
                if kind == Kind.TCP_CONNECT:
                    self.sockets[cols.sock[i]] = owner
            elif kind == Kind.PROTO_LABEL:
                known = self.recent_outbound.get(self._outbound_key(cols, i))
                cols.netns[i] = known if known is not None else self._resolve(cols.pid[i])
            elif kind == Kind.TCP_LISTEN:
                owner = cols.owner(i, self._resolve(cols.pid[i]))
                cols.netns[i] = owner.netns
                if cols.batch["aux"][i] == _UDP:
                    continue  # a bound UDP socket (bind): no TCP connections to attribute
                self.sockets[cols.sock[i]] = owner
                laddr = cols.addresses(i)[0]
                self._add_listener(
                    Listener(cols.sock[i], cols.family[i], laddr, cols.sport[i], owner)
                )
            elif kind == Kind.EXEC:
                self._exec(cols, i, records[i][EVENT_SIZE:])
            elif kind == Kind.FORK:
                self.netns.forget(cols.pid[i])  # a recycled pid: whatever we knew is stale
                self.netns.inherit(cols.pid[i], cols.ppid[i])
                cols.netns[i] = self._resolve(cols.pid[i])
            elif kind == Kind.EXIT:
                cols.netns[i] = self.netns.forget(cols.pid[i]) or 0

    def _resolve(self, pid: int) -> int:
        return self.netns.resolve(pid)

    @staticmethod
    def _outbound_key(cols: _Columns, i: int) -> tuple[int, int, bytes, int]:
        return cols.pid[i], cols.family[i], cols.addresses(i)[1], cols.dport[i]

    def _exec(self, cols: _Columns, i: int, tail: bytes) -> None:
        pid = cols.pid[i]
        filename = tail.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        self.netns.forget(pid)
        ids: ProcStatus | None = None
        cmdline: str | None = None
        try:
            ids = read_status(pid)
            cmdline = read_cmdline_text(pid)
        except ProcfsError:
            pass
        if ids is not None and ids.name != comm_text(cols.comm[i]):
            ids = cmdline = None  # it has exec'd again since: what /proc says is not ours
            self.gaps.add(GAP_EXEC_AGAIN)
        elif ids is None or cmdline is None:
            self.gaps.add(GAP_EXEC_GONE)
        if ids is not None:
            cols.netns[i] = self._resolve(pid)
            cols.ppid[i] = cols.ppid[i] or ids.ppid
            cols.euid[i] = ids.euid
        else:
            cols.euid[i] = cols.uid[i]
        cols.str_a[i] = self.strings.intern(filename)
        cols.str_b[i] = self.strings.intern(cmdline or "")

    def _established(self, cols: _Columns, i: int) -> None:
        saddr, daddr = cols.addresses(i)
        sock = cols.sock[i]
        if cols.flags[i] & _ACTIVE:
            owner = self.sockets.get(sock)
            if owner is None:
                self.gaps.add(GAP_UNKNOWN_SOCKET)
                return
            if self._port_shared(cols.dport[i]):
                # Only then does the passive side need the client's namespace: keeping
                # every connection here cost ~20 MB once the map was full.
                key = (saddr, cols.sport[i], daddr, cols.dport[i])
                self.recent_active.put(key, owner.netns)
        else:
            owner = self._listener_owner(
                cols.family[i], (saddr, cols.sport[i]), (daddr, cols.dport[i])
            )
            if owner is None:
                return
            self.sockets[sock] = owner
        cols.set_owner(i, owner)

    def _close(self, cols: _Columns, i: int) -> None:
        sock = cols.sock[i]
        owner = self.sockets.pop(sock, None)
        if owner is None and self.snapshot_conns:
            saddr, daddr = cols.addresses(i)
            owner = self.snapshot_conns.pop((saddr, cols.sport[i], daddr, cols.dport[i]), None)
        if cols.flags[i] & _LISTENER:
            saddr = cols.addresses(i)[0]
            family = cols.family[i]
            self.listeners[cols.sport[i]] = [
                lst
                for lst in self.listeners.get(cols.sport[i], [])
                if lst.sock != sock
                and not (owner is None and lst.addr == saddr and lst.family == family)
            ]
        if owner is None:
            self.gaps.add(GAP_UNKNOWN_SOCKET)
            return
        cols.set_owner(i, owner)

    def _port_shared(self, port: int) -> bool:
        """Do listeners on ``port`` live in more than one network namespace?"""
        listeners = self.listeners.get(port, [])
        return len({lst.owner.netns for lst in listeners}) > 1

    def _add_listener(self, listener: Listener) -> None:
        entries = [lst for lst in self.listeners[listener.port] if lst.sock != listener.sock]
        entries.append(listener)
        self.listeners[listener.port] = entries

    def _netns_has(self, owner: Owner, family: int, addr: bytes) -> bool:
        """Is ``addr`` local to ``owner``'s network namespace? Read through the owner's
        /proc/<pid>/net, cached per namespace and re-read at most once a second."""
        entry = self.netns_addresses.get(owner.netns)
        now = time.monotonic()
        if entry is None or ((family, addr) not in entry[1] and now - entry[0] > 1.0):
            addresses = local_addresses(owner.pid)
            if addresses is not None:
                entry = self.netns_addresses[owner.netns] = (now, addresses)
        return entry is not None and (family, addr) in entry[1]

    def _listener_owner(
        self, family: int, local: tuple[bytes, int], remote: tuple[bytes, int]
    ) -> Owner | None:
        laddr, port = local
        candidates = [lst for lst in self.listeners.get(port, []) if lst.accepts(family, laddr)]
        exact = [lst for lst in candidates if lst.addr == laddr]
        pool = exact or candidates
        if len({lst.owner.netns for lst in pool}) > 1:
            client_ns = self.recent_active.pop((*remote, *local))
            if is_loopback(family, laddr) and client_ns is not None:
                # Loopback never leaves a namespace: the connecting side tells which one.
                pool = [lst for lst in pool if lst.owner.netns == client_ns]
            else:
                # Otherwise: the namespace that owns the local address.
                pool = [lst for lst in pool if self._netns_has(lst.owner, family, laddr)]
                if len({lst.owner.netns for lst in pool}) != 1:
                    self.gaps.add(GAP_AMBIGUOUS_LISTENER)
                    return None
        if not pool:
            self.gaps.add(GAP_NO_LISTENER)
            return None
        return pool[-1].owner


def _unmap_v4(batch: EventArray) -> None:
    """Rewrite IPv4-mapped IPv6 addresses as IPv4 (family INET), in place."""
    v6 = batch["family"] == Family.INET6
    if not v6.any():
        return
    s_mapped = (batch["saddr"][:, :12] == _V4_MAPPED).all(axis=1)
    d_mapped = (batch["daddr"][:, :12] == _V4_MAPPED).all(axis=1)
    rows = v6 & (s_mapped | d_mapped)
    if not rows.any():
        return
    for field, mapped in (("saddr", s_mapped), ("daddr", d_mapped)):
        sel = rows & mapped
        column = batch[field]
        column[sel, :4] = column[sel, 12:16]
        column[sel, 4:] = 0
    batch["family"][rows] = Family.INET


# ---- the source -----------------------------------------------------------------------


class EbpfSource(EventSource):
    """Tracepoint programs through bcc; a reader thread drains the ring buffer."""

    name = "ebpf"
    capabilities = EBPF_CAPABILITIES

    def __init__(
        self,
        *,
        netns: NetnsCache | None = None,
        wait_for_seed: bool = False,
        ringbuf_pages: int = DEFAULT_RINGBUF_PAGES,
        poll_ms: int = 20,
        content: bool = True,
    ) -> None:
        """``content=False`` loads the programs without first-payload capture (for the
        overhead bench; protocols are then known by port and program only)."""
        reason = ebpf_unavailable_reason()
        if reason:
            raise ProbeUnavailableError(reason)
        self._gaps = GapCounter()
        self._netns = netns or NetnsCache(self._gaps)
        self._pages = ringbuf_pages
        self._poll_ms = poll_ms
        self._program: _Program | None = _acquire_program(ringbuf_pages, content)
        self._queue = BatchQueue()
        self._stop = threading.Event()
        self._seeded = threading.Event()
        if not wait_for_seed:
            self._seeded.set()
        self._thread: threading.Thread | None = None
        self._attributor: Attributor | None = None
        self._content: ContentTracker | None = None
        self._payloads_lost_base = self._payloads_lost = 0
        self._events = 0
        self._base = KernelCounters(0, 0, 0, 0)  # at start
        self._final: KernelCounters | None = None
        self._error: BaseException | None = None

    def start(self, strings: StringTable) -> None:
        program = self._live_program()
        self._attributor = Attributor(strings, self._netns, self._gaps)
        self._content = ContentTracker(strings)
        try:
            program.attach()
        except Exception as e:
            raise ProbeError(f"cannot attach tracepoints: {e}") from e
        program.drain()  # leftovers from a previous session using this program
        self._payloads_lost_base = program.payloads_lost()
        self._base = program.counters()
        program.set_window(True)
        self._thread = threading.Thread(target=self._loop, name="rba-ebpf", daemon=True)
        self._thread.start()

    def seed(self, snapshot: EventArray) -> None:
        """The window-start snapshot: listeners and connections already open, so that
        later events on them are attributed. The reader starts decoding after this."""
        if self._attributor is not None:
            self._attributor.seed(snapshot)
        self._seeded.set()

    def read(self, timeout: float) -> EventArray:
        if self._error is not None:
            raise ProbeError(f"eBPF reader failed: {self._error}") from self._error
        return self._queue.take(timeout)

    def stop(self) -> None:
        program = self._program
        if program is None:
            return
        program.set_window(False)
        skipped = program.skipped_runs()
        self._stop.set()
        self._seeded.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        records, attempted, failed = program.settle()
        self._deliver(records)
        if self._content is not None:
            self._deliver([], self._content.flush())
        self._payloads_lost = program.payloads_lost() - self._payloads_lost_base
        self._final = KernelCounters(attempted, failed, *skipped, program.received) - self._base
        _release_program(program, self._pages)
        self._program = None

    def stats(self) -> SourceStats:
        counters = self.kernel_counts()
        gaps = self._gaps.statements()
        if counters.skipped_helpers:
            gaps = (*gaps, f"{counters.skipped_helpers} x {GAP_SKIPPED_HELPERS}")
        if self._payloads_lost:
            gaps = (*gaps, f"{self._payloads_lost} x {GAP_PAYLOADS_LOST}")
        return SourceStats(events=self._events, lost=counters.lost, gaps=gaps)

    def kernel_counts(self) -> KernelCounters:
        """The kernel's counters since start (final once stopped), so that
        ``delivered + reserve_failed == attempted`` can be checked."""
        if self._final is not None:
            return self._final
        if self._program is None:
            return KernelCounters(0, 0, 0, 0)
        return self._program.counters() - self._base

    def _live_program(self) -> _Program:
        if self._program is None:
            raise ProbeError("eBPF source already stopped")
        return self._program

    def _loop(self) -> None:
        program = self._live_program()
        self._seeded.wait()
        try:
            while not self._stop.is_set():
                self._deliver(program.poll(self._poll_ms))
        except Exception as e:  # surfaced by read(); the thread must not die silently
            self._error = e

    def _deliver(self, records: list[bytes], labels: list[bytes] | None = None) -> None:
        program = self._program
        if labels is None and program is not None and self._content is not None:
            labels, settled = self._content.feed(program.take_payloads())
            program.forget_connections(settled)
        records = records + labels if labels else records
        if not records or self._attributor is None:
            return
        batch = self._attributor.decode(records)
        self._events += len(batch)
        self._queue.put(batch)
