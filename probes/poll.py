"""The psutil polling source: what a snapshot every N seconds can see.

It emits the same kinds as the eBPF source, marked ``Source.POLL``: processes appearing
(PROC_SNAPSHOT) and disappearing (EXIT), listeners and inet connections, connected UDP
sockets, and login sessions. It cannot see anything that starts and ends between two
polls, which its :class:`Capabilities` state.

Processes and sockets that vanish or deny access mid-poll are counted as gaps, never
raised. When the eBPF source runs alongside (``complement=True``), polling emits only
what eBPF cannot see (the window-start snapshot, uids/exe of new processes, logins), so
the merged stream holds no duplicates.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Any

import psutil

from probes import procfs
from probes.common import BatchQueue, EventRows, GapCounter, clock_pair
from probes.events import EventArray, Flag, Kind, Source, StringTable, pack_address
from probes.interface import Capabilities, EventSource, ProbeError, SourceStats
from probes.procfs import NetnsCache

POLL_CAPABILITIES = Capabilities(
    sees_every_connection=False,
    sees_short_processes=False,
    sees_udp=False,
    sees_logins=True,
    counts_losses=False,
)

IPPROTO_UDP = 17  # aux of a listener event for a bound UDP socket
WTMP = "/var/log/wtmp"
# struct utmp (x86-64 glibc, 384 bytes): type, pid, line, id, user, host, exit, session,
# tv_sec, tv_usec, addr_v6, unused.
_UTMP = struct.Struct("<h2xi32s4s32s256s4siii16s20s")
_USER_PROCESS, _DEAD_PROCESS = 7, 8
MAX_WTMP_READ = 1 << 20  # bytes of new wtmp records read per poll
GAP_VANISHED = "process vanished during a poll"
GAP_DENIED = "process details denied during a poll"
GAP_CONNECTIONS_DENIED = "inet connection table denied (owners unknown)"

_PROC_ATTRS = ["ppid", "uids", "exe", "cmdline", "name", "create_time"]

ProcKey = tuple[int, float]
ConnKey = tuple[int, int, str, int, str, int]
LoginKey = tuple[str, str, str, float, int]


@dataclass(frozen=True)
class _Conn:
    pid: int
    kind: int  # socket.SOCK_STREAM or SOCK_DGRAM
    status: str


def surrogate_sock(key: tuple[object, ...]) -> int:
    """A stable 63-bit socket id for a polled socket (kernel addresses have the top bit)."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class PollSource(EventSource):
    """psutil polling every ``interval`` seconds in a background thread."""

    name = "poll"
    capabilities = POLL_CAPABILITIES

    def __init__(
        self, interval: float = 1.0, *, complement: bool = False, netns: NetnsCache | None = None
    ) -> None:
        if interval <= 0:
            raise ValueError("poll interval must be positive")
        self.interval = interval
        self.complement = complement
        self._gaps = GapCounter()
        self._netns = netns or NetnsCache(self._gaps)
        self._queue = BatchQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._strings = StringTable()
        self._events = 0
        self._events_lock = threading.Lock()
        self._procs: dict[int, ProcKey] = {}
        self._conns: dict[ConnKey, _Conn] = {}
        self._foreign: dict[tuple[int, ConnKey], _Conn] = {}  # other network namespaces
        self._logins: set[LoginKey] = set()
        self._uids: dict[int, int] = {}  # real uid of each process seen: sockets' owners
        self.wtmp = WTMP
        self._wtmp_offset: int | None = None  # records before the window are not ours
        self._wtmp_open: dict[tuple[str, int], LoginKey] = {}  # (tty, pid) -> session
        self.polls = 0
        self.snapshot: EventArray | None = None
        self._error: BaseException | None = None

    # ---- EventSource ---------------------------------------------------------------

    def start(self, strings: StringTable) -> None:
        """Take the window-start snapshot (queued first), then poll in the background."""
        self._strings = strings
        try:
            self.snapshot = self._poll(initial=True)
        except psutil.Error as e:
            raise ProbeError(f"polling failed at window start: {e}") from e
        self._deliver(self.snapshot)
        self._thread = threading.Thread(target=self._loop, name="rba-poll", daemon=True)
        self._thread.start()

    def read(self, timeout: float) -> EventArray:
        if self._error is not None:
            raise ProbeError(f"polling failed: {self._error!r}") from self._error
        return self._queue.take(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def stats(self) -> SourceStats:
        return SourceStats(events=self._events, lost=0, gaps=self._gaps.statements())

    # ---- polling -------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._deliver(self._poll(initial=False))
            except (psutil.Error, OSError) as e:  # a whole poll failed; the next may not
                self._gaps.add(f"poll failed ({type(e).__name__})")
            except Exception as e:  # a bug: surfaced by read(), never a silent dead thread
                self._error = e
                return

    def _deliver(self, batch: EventArray) -> None:
        with self._events_lock:
            self._events += len(batch)
        self._queue.put(batch)

    def _poll(self, *, initial: bool) -> EventArray:
        mono, wall = clock_pair()
        rows = EventRows()
        flags = Flag.SNAPSHOT if initial else Flag.NONE
        self._poll_processes(rows, flags, initial)
        self._poll_connections(rows, flags, initial)
        self._poll_logins(rows, flags)
        self.polls += 1
        batch = rows.to_array()
        batch["ts_mono"] = mono
        batch["ts_wall"] = wall
        batch["source"] = Source.POLL
        return batch

    def _poll_processes(self, rows: EventRows, flags: Flag, initial: bool) -> None:
        seen: dict[int, ProcKey] = {}
        for proc in psutil.process_iter():
            try:
                key = (proc.pid, proc.create_time())
            except psutil.NoSuchProcess:
                self._gaps.add(GAP_VANISHED)
                continue
            except psutil.AccessDenied:
                self._gaps.add(GAP_DENIED)
                continue
            seen[proc.pid] = key
            if self._procs.get(proc.pid) != key:
                self._add_process(rows, proc, flags)
        if not (initial or self.complement):
            for pid in self._procs.keys() - seen.keys():
                rows.add(kind=Kind.EXIT, pid=pid, netns=self._netns.forget(pid) or 0)
        self._procs = seen

    def _add_process(self, rows: EventRows, proc: psutil.Process, flags: Flag) -> None:
        try:
            info = proc.as_dict(_PROC_ATTRS, ad_value=None)
        except psutil.NoSuchProcess:
            self._gaps.add(GAP_VANISHED)
            return
        if info["uids"] is None or info["exe"] is None:
            self._gaps.add(GAP_DENIED)
        uids = info["uids"]
        if uids:
            self._uids[proc.pid] = uids.real
        rows.add(
            kind=Kind.PROC_SNAPSHOT,
            flags=flags,
            pid=proc.pid,
            ppid=info["ppid"] or 0,
            uid=uids.real if uids else 0,
            euid=uids.effective if uids else 0,
            comm=info["name"] or "",
            str_a=self._strings.intern(info["exe"] or ""),
            str_b=self._strings.intern(" ".join(info["cmdline"] or ())),
            aux=int((info["create_time"] or 0) * 1e9),
            netns=self._netns.resolve(proc.pid),
        )

    def _poll_connections(self, rows: EventRows, flags: Flag, initial: bool) -> None:
        if self.complement and not initial:
            return
        try:
            conns = psutil.net_connections(kind="inet")
        except psutil.AccessDenied:
            self._gaps.add(GAP_CONNECTIONS_DENIED)
            return
        current: dict[ConnKey, _Conn] = {}
        for c in conns:
            key = _conn_key(c)
            if key is not None:
                current[key] = _Conn(pid=c.pid or 0, kind=int(c.type), status=c.status)
        listening_ports = {k[3] for k, v in current.items() if v.status == psutil.CONN_LISTEN}
        own_ns = self._netns.own
        for key, conn in current.items():
            if key not in self._conns:
                self._add_conn(
                    rows, key, conn, flags, listening_ports=listening_ports, netns=own_ns
                )
        if not initial:
            for key, conn in self._conns.items():
                if key not in current and (conn.kind == socket.SOCK_STREAM or not key[4]):
                    self._add_close(rows, key, conn, own_ns)
        self._conns = current
        self._poll_foreign(rows, flags, initial)

    def _poll_foreign(self, rows: EventRows, flags: Flag, initial: bool) -> None:
        """TCP sockets of containers and other network namespaces, which psutil's table
        (this namespace's) does not hold, from /proc/PID/net/tcp of a process in each."""
        current = self._foreign_sockets()
        listening = {(ns, k[3]) for (ns, k), v in current.items() if v.status == psutil.CONN_LISTEN}
        for (ns, key), conn in current.items():
            if (ns, key) not in self._foreign:
                ports = {port for n, port in listening if n == ns}
                self._add_conn(rows, key, conn, flags, listening_ports=ports, netns=ns)
        if not initial:
            for (ns, key), conn in self._foreign.items():
                if (ns, key) not in current:
                    self._add_close(rows, key, conn, ns)
        self._foreign = current

    def _foreign_sockets(self) -> dict[tuple[int, ConnKey], _Conn]:
        by_netns: dict[int, list[int]] = {}
        for pid in sorted(self._procs):
            netns = self._netns.resolve(pid)
            if netns and netns != self._netns.own:
                by_netns.setdefault(netns, []).append(pid)
        found: dict[tuple[int, ConnKey], _Conn] = {}
        for netns, pids in by_netns.items():
            owners: dict[int, int] = {}
            for pid in pids:
                with contextlib.suppress(procfs.ProcfsError):
                    for inode in procfs.socket_inodes(pid):
                        owners.setdefault(inode, pid)
            try:
                sockets = procfs.read_tcp_sockets(pids[0])
            except procfs.ProcfsError:
                self._gaps.add(GAP_VANISHED)
                continue
            for s in sockets:
                status = _TCP_STATES.get(s.state)
                if status is None:
                    continue
                listen = status == psutil.CONN_LISTEN
                key = (
                    s.family,
                    int(socket.SOCK_STREAM),
                    s.local,
                    s.lport,
                    "" if listen else s.remote,
                    0 if listen else s.rport,
                )
                found[netns, key] = _Conn(owners.get(s.inode, 0), socket.SOCK_STREAM, status)
        return found

    def _add_conn(
        self,
        rows: EventRows,
        key: ConnKey,
        conn: _Conn,
        flags: Flag,
        *,
        listening_ports: set[int],
        netns: int,
    ) -> None:
        family, _, laddr, lport, raddr, rport = key
        common: dict[str, Any] = {
            "pid": conn.pid,
            "uid": self._uids.get(conn.pid, 0),
            "family": family,
            "sock": _sock(key, netns, self._netns.own),
            "netns": netns,
        }
        if conn.kind == socket.SOCK_DGRAM:
            if not raddr and lport:  # bound, unconnected: a UDP service (docs/assess.md)
                rows.add(
                    kind=Kind.TCP_LISTEN,
                    saddr=_raw(laddr),
                    sport=lport,
                    aux=IPPROTO_UDP,
                    flags=flags,
                    **common,
                )
            elif raddr and not self.complement:  # connected: a remote to report
                rows.add(kind=Kind.UDP_SEND, daddr=_raw(raddr), dport=rport, flags=flags, **common)
            return
        if conn.status == psutil.CONN_LISTEN:
            rows.add(kind=Kind.TCP_LISTEN, saddr=_raw(laddr), sport=lport, flags=flags, **common)
            return
        leftover = conn.status in _LEFTOVER_STATES
        if not raddr or (conn.status != psutil.CONN_ESTABLISHED and not leftover):
            return
        if leftover:
            if flags & Flag.SNAPSHOT or lport not in listening_ports:
                return  # closed before the window, or a client's connection
            flags |= Flag.LEFTOVER  # accepted and closed between two polls
        direction = Flag.PASSIVE if lport in listening_ports else Flag.ACTIVE
        rows.add(
            kind=Kind.TCP_ESTABLISHED,
            saddr=_raw(laddr),
            sport=lport,
            daddr=_raw(raddr),
            dport=rport,
            flags=flags | direction,
            **common,
        )

    def _add_close(self, rows: EventRows, key: ConnKey, conn: _Conn, netns: int) -> None:
        family, kind, laddr, lport, raddr, rport = key
        udp = kind == socket.SOCK_DGRAM
        listener = conn.status == psutil.CONN_LISTEN or udp
        rows.add(
            kind=Kind.TCP_CLOSE,
            pid=conn.pid,
            family=family,
            sock=_sock(key, netns, self._netns.own),
            netns=netns,
            saddr=_raw(laddr),
            sport=lport,
            daddr=_raw(raddr) if raddr else bytes(16),
            dport=rport,
            flags=Flag.LISTENER if listener else Flag.NONE,
            aux=IPPROTO_UDP if udp else 0,
        )

    def _poll_wtmp(self, rows: EventRows, flags: Flag) -> None:
        """Sessions logged to wtmp since the window opened: where there is no utmp file
        (Debian 12 without systemd), psutil.users() is empty but login still logs to
        wtmp, with the user, tty, remote host and the session leader's pid."""
        try:
            with open(self.wtmp, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if self._wtmp_offset is None or size < self._wtmp_offset:
                    self._wtmp_offset = size  # the start, or a rotated file
                    return
                f.seek(self._wtmp_offset)
                data = f.read(min(size - self._wtmp_offset, MAX_WTMP_READ))
        except OSError:
            return
        whole = len(data) - len(data) % _UTMP.size
        self._wtmp_offset += whole
        for rec in _UTMP.iter_unpack(data[:whole]):
            kind, pid, line, _id, user, host = rec[:6]
            tty = line.split(b"\0", 1)[0].decode(errors="replace")
            name = user.split(b"\0", 1)[0].decode(errors="replace")
            if kind == _USER_PROCESS and not name.startswith("."):  # ".telnet": no login yet
                remote = host.split(b"\0", 1)[0].decode(errors="replace")
                key = (name, tty, remote, float(rec[8]), pid)
                self._wtmp_open[tty, pid] = key
                rows.add(kind=Kind.LOGIN, flags=flags, **self._login_fields(key))
            elif kind == _DEAD_PROCESS:
                ended = self._wtmp_open.pop((tty, pid), None)
                if ended is not None:
                    rows.add(kind=Kind.LOGIN, flags=Flag.ENDED, **self._login_fields(ended))

    def _poll_logins(self, rows: EventRows, flags: Flag) -> None:
        self._poll_wtmp(rows, flags)
        current: set[LoginKey] = set()
        for user in psutil.users():
            current.add(
                (user.name, user.terminal or "", user.host or "", user.started, user.pid or 0)
            )
        for key in sorted(current - self._logins):
            rows.add(kind=Kind.LOGIN, flags=flags, **self._login_fields(key))
        for key in sorted(self._logins - current):
            rows.add(kind=Kind.LOGIN, flags=Flag.ENDED, **self._login_fields(key))
        self._logins = current

    def _login_fields(self, key: LoginKey) -> dict[str, int]:
        name, tty, host, started, pid = key
        return {
            "str_a": self._strings.intern(name),
            "str_b": self._strings.intern(tty),
            "str_c": self._strings.intern(host),
            "aux": int(started),
            "pid": pid,
        }


# What the kernel still shows of a connection that closed: it was established.
_LEFTOVER_STATES = frozenset(
    {
        psutil.CONN_TIME_WAIT,
        psutil.CONN_FIN_WAIT1,
        psutil.CONN_FIN_WAIT2,
        psutil.CONN_CLOSE_WAIT,
        psutil.CONN_LAST_ACK,
        psutil.CONN_CLOSING,
    }
)

_TCP_STATES = {
    procfs.TCP_LISTEN: psutil.CONN_LISTEN,
    procfs.TCP_ESTABLISHED: psutil.CONN_ESTABLISHED,
}


def _sock(key: ConnKey, netns: int, own: int) -> int:
    """The surrogate socket id: the same address in another namespace is another socket."""
    return surrogate_sock(key if netns in (0, own) else (*key, netns))


def _conn_key(conn: Any) -> ConnKey | None:
    if not conn.laddr:
        return None
    family, _ = pack_address(conn.laddr.ip)
    raddr = conn.raddr.ip if conn.raddr else ""
    rport = conn.raddr.port if conn.raddr else 0
    return (int(family), int(conn.type), conn.laddr.ip, conn.laddr.port, raddr, rport)


def _raw(address: str) -> bytes:
    return pack_address(address)[1]
