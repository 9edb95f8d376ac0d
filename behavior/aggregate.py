"""The aggregator: folds a window's event stream into :class:`Observations`, with numpy.

Memory is bounded by the number of distinct keys (connections, listeners, processes),
never by the number of events: high-volume kinds (connects, sends, accepts) are grouped
per batch with a sort over a 64-bit key fingerprint and merged into counters indexed by
key; the rarer kinds (exec, fork, exit, listen, logins) go through a short Python loop in
event order, because their order matters (a listener closing, then listening again).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from behavior.observations import (
    Connection,
    Listener,
    LoginAccepted,
    LoginSession,
    Observations,
    Process,
)
from probes.events import (
    EVENT_DTYPE,
    EventArray,
    Family,
    Flag,
    Kind,
    Source,
    StringTable,
    comm_text,
    format_address,
    is_loopback,
)

U64 = npt.NDArray[np.uint64]

# Servers of cleartext remote logins, by program name, and the protocol they speak.
LOGIN_SERVERS = {
    "telnetd": "telnet",
    "in.telnetd": "telnet",
    "rlogind": "rlogin",
    "in.rlogind": "rlogin",
    "rshd": "rsh",
    "in.rshd": "rsh",
    "rexecd": "rexec",
    "in.rexecd": "rexec",
}
LOGIN_PROGRAMS = frozenset({"login"})

_TCP, _UDP = 0, 1
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(x: U64) -> U64:
    """splitmix64's finalizer, vectorised (uint64 arithmetic wraps)."""
    x = x ^ (x >> _S30)
    x = x * _M1
    x = x ^ (x >> _S27)
    x = x * _M2
    return x ^ (x >> _S31)


def _fingerprint(rows: EventArray, addr_field: str, port_field: str, extra: U64) -> U64:
    """A 64-bit fingerprint of (pid-or-extra, netns, family, address, port, source).

    Collisions are astronomically unlikely (about 1e-8 with a million distinct keys);
    one would merge two counters, never lose an event."""
    addr = np.ascontiguousarray(rows[addr_field]).view("<u8").reshape(-1, 2)
    meta = (
        extra
        | (rows[port_field].astype(np.uint64) << np.uint64(32))
        | (rows["family"].astype(np.uint64) << np.uint64(48))
        | (rows["source"].astype(np.uint64) << np.uint64(56))
    )
    h = _mix(_mix(_mix(meta) ^ addr[:, 0]) ^ addr[:, 1])
    return _mix(h ^ rows["netns"].astype(np.uint64))


class _KeyTable:
    """Event counters per distinct key: count, first and last wall time, and the first
    event of the key as its representative (which carries every field of the key)."""

    def __init__(self) -> None:
        self._slots: dict[int, int] = {}
        self.size = 0
        self.reps = np.zeros(64, dtype=EVENT_DTYPE)
        self.count = np.zeros(64, dtype=np.uint64)
        self.first = np.zeros(64, dtype=np.uint64)
        self.last = np.zeros(64, dtype=np.uint64)

    def _grow(self, needed: int) -> None:
        capacity = len(self.count)
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        for name in ("reps", "count", "first", "last"):
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)

    def fold(self, rows: EventArray, fp: U64) -> None:
        """Count ``rows`` under their fingerprints ``fp``."""
        if len(rows) == 0:
            return
        order = np.argsort(fp, kind="stable")
        sorted_fp = fp[order]
        is_start = np.empty(len(sorted_fp), dtype=bool)
        is_start[0] = True
        np.not_equal(sorted_fp[1:], sorted_fp[:-1], out=is_start[1:])
        starts = np.flatnonzero(is_start)
        counts = np.diff(np.append(starts, len(sorted_fp))).astype(np.uint64)
        ts = rows["ts_wall"][order]
        first = np.minimum.reduceat(ts, starts)
        last = np.maximum.reduceat(ts, starts)
        keys = sorted_fp[starts].tolist()
        get = self._slots.get
        slots = np.fromiter((get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        new = np.flatnonzero(slots < 0)
        if len(new):
            self._grow(self.size + len(new))
            fresh = np.arange(self.size, self.size + len(new))
            slots[new] = fresh
            self._slots.update(zip([keys[i] for i in new.tolist()], fresh.tolist(), strict=True))
            self.reps[fresh] = rows[order[starts[new]]]
            self.first[fresh] = np.iinfo(np.uint64).max
            self.size += len(new)
        self.count[slots] += counts
        self.first[slots] = np.minimum(self.first[slots], first)
        self.last[slots] = np.maximum(self.last[slots], last)


@dataclass
class _ConnTotal:
    rep: np.void
    count: int
    first: int
    last: int
    sources: set[str]


@dataclass
class _ListenerState:
    netns: int
    family: int
    addr: bytes
    port: int
    pid: int
    uid: int
    comm: str
    sources: set[str]
    open_since: int | None  # wall ns, None while closed
    before_window: bool = False
    total_ns: int = 0
    first_ns: int = 0
    last_close_ns: int = 0
    intervals: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class _ProcState:
    pid: int
    ppid: int
    comm: str
    exe: int
    cmdline: int
    uid: int
    euid: int
    first_ns: int
    last_ns: int


class Aggregator:
    """Folds event batches (:meth:`fold`) into :class:`Observations` (:meth:`observations`)."""

    def __init__(self, strings: StringTable) -> None:
        self._strings = strings
        self.events = 0
        self._connections = _KeyTable()
        self._accepts = _KeyTable()
        self._listeners: dict[tuple[int, int, bytes, int], _ListenerState] = {}
        self._procs: dict[int, _ProcState] = {}
        self._logins: dict[tuple[int, int, int, int], LoginSession] = {}
        self._login_accepts: list[LoginAccepted] = []

    def fold(self, events: EventArray) -> None:
        """Fold one batch of events."""
        if len(events) == 0:
            return
        self.events += len(events)
        kind = events["kind"]
        flags = events["flags"]
        outbound = (
            (kind == Kind.TCP_CONNECT)
            | (kind == Kind.UDP_SEND)
            | ((kind == Kind.TCP_ESTABLISHED) & ((flags & Flag.ACTIVE) != 0))
        )
        if outbound.any():
            rows = events[outbound]
            transport = (rows["kind"] == Kind.UDP_SEND).astype(np.uint64)
            # Connect and active-established events of one connection are counted apart
            # and merged later with max(), so a connection seen twice counts once.
            variant = (rows["kind"] == Kind.TCP_ESTABLISHED).astype(np.uint64)
            extra = (
                rows["pid"].astype(np.uint64)
                | (transport << np.uint64(52))
                | (variant << np.uint64(53))
            )
            self._connections.fold(rows, _fingerprint(rows, "daddr", "dport", extra))
        accepted = (kind == Kind.TCP_ESTABLISHED) & ((flags & Flag.PASSIVE) != 0)
        if accepted.any():
            rows = events[accepted]
            zero = np.zeros(len(rows), dtype=np.uint64)
            self._accepts.fold(rows, _fingerprint(rows, "saddr", "sport", zero))
        rare = (
            (kind == Kind.EXEC)
            | (kind == Kind.FORK)
            | (kind == Kind.EXIT)
            | (kind == Kind.PROC_SNAPSHOT)
            | (kind == Kind.TCP_LISTEN)
            | (kind == Kind.LOGIN)
            | ((kind == Kind.TCP_CLOSE) & ((flags & Flag.LISTENER) != 0))
        )
        if rare.any():
            self._fold_rare(events[rare])

    # --- processes, listeners and logins, in event order ------------------------------

    def _fold_rare(self, rows: EventArray) -> None:
        for row in rows:
            kind = int(row["kind"])
            if kind in (Kind.EXEC, Kind.PROC_SNAPSHOT):
                self._on_image(row, kind)
            elif kind == Kind.FORK:
                self._on_fork(row)
            elif kind == Kind.EXIT:
                proc = self._procs.get(int(row["pid"]))
                if proc is not None:
                    proc.last_ns = int(row["ts_wall"])
            elif kind == Kind.TCP_LISTEN:
                self._on_listen(row)
            elif kind == Kind.TCP_CLOSE:
                self._on_listener_close(row)
            else:
                self._on_login(row)

    def _on_image(self, row: np.void, kind: int) -> None:
        pid, ts = int(row["pid"]), int(row["ts_wall"])
        old = self._procs.get(pid)
        # Polling reports a process that started during the window as a plain snapshot.
        is_new_exec = kind == Kind.EXEC or (old is None and not int(row["flags"]) & Flag.SNAPSHOT)
        proc = _ProcState(
            pid=pid,
            ppid=int(row["ppid"]),
            comm=comm_text(bytes(row["comm"])),
            exe=int(row["str_a"]),
            cmdline=int(row["str_b"]),
            uid=int(row["uid"]),
            euid=int(row["euid"]),
            first_ns=ts,
            last_ns=ts,
        )
        if old is not None and kind == Kind.PROC_SNAPSHOT and old.exe in (0, proc.exe):
            # A later snapshot of an image we know: refresh what polling can tell.
            old.last_ns = ts
            old.euid = min(old.euid, proc.euid)
            old.exe = old.exe or proc.exe
            old.cmdline = old.cmdline or proc.cmdline
            return
        self._procs[pid] = proc
        if is_new_exec:
            self._check_login_program(proc)

    def _on_fork(self, row: np.void) -> None:
        pid, ppid, ts = int(row["pid"]), int(row["ppid"]), int(row["ts_wall"])
        parent = self._procs.get(ppid)
        if parent is None:
            self._procs[pid] = _ProcState(
                pid, ppid, comm_text(bytes(row["comm"])), 0, 0, 0, 0, ts, ts
            )
        else:
            self._procs[pid] = _ProcState(
                pid,
                ppid,
                parent.comm,
                parent.exe,
                parent.cmdline,
                parent.uid,
                parent.euid,
                ts,
                ts,
            )

    def _program_name(self, proc: _ProcState) -> str:
        exe = self._strings.get(proc.exe) if proc.exe else ""
        return os.path.basename(exe) or proc.comm

    def _check_login_program(self, proc: _ProcState) -> None:
        parent = self._procs.get(proc.ppid)
        if parent is None:
            return
        protocol = LOGIN_SERVERS.get(parent.comm) or LOGIN_SERVERS.get(self._program_name(parent))
        if protocol is None:
            return
        program = self._program_name(proc)
        if program in LOGIN_SERVERS or proc.comm in LOGIN_SERVERS:
            return  # the server re-executing itself, not a login
        if protocol in ("telnet", "rlogin") and program not in LOGIN_PROGRAMS:
            return
        self._login_accepts.append(
            LoginAccepted(
                protocol=protocol,
                server_pid=parent.pid,
                server=parent.comm,
                pid=proc.pid,
                program=self._strings.get(proc.exe) if proc.exe else proc.comm,
                uid=proc.uid,
                ts_ns=proc.first_ns,
            )
        )

    def _on_listen(self, row: np.void) -> None:
        ts = int(row["ts_wall"])
        key = (int(row["netns"]), int(row["family"]), bytes(row["saddr"]), int(row["sport"]))
        source = Source(int(row["source"])).label
        state = self._listeners.get(key)
        snapshot = bool(int(row["flags"]) & Flag.SNAPSHOT)
        if state is None:
            state = _ListenerState(
                netns=key[0],
                family=key[1],
                addr=key[2],
                port=key[3],
                pid=int(row["pid"]),
                uid=int(row["uid"]),
                comm=comm_text(bytes(row["comm"])),
                sources={source},
                open_since=ts,
                before_window=snapshot,
                first_ns=ts,
            )
            self._listeners[key] = state
            return
        state.sources.add(source)
        if state.pid == 0 and int(row["pid"]):
            state.pid, state.uid = int(row["pid"]), int(row["uid"])
            state.comm = comm_text(bytes(row["comm"]))
        # Another source re-reporting an open listener, or a report older than its close.
        if state.open_since is not None or ts <= state.last_close_ns:
            state.before_window |= snapshot
            return
        state.open_since = ts

    def _on_listener_close(self, row: np.void) -> None:
        key = (int(row["netns"]), int(row["family"]), bytes(row["saddr"]), int(row["sport"]))
        state = self._listeners.get(key)
        ts = int(row["ts_wall"])
        if state is None or state.open_since is None:
            return
        state.intervals.append((state.open_since, ts))
        state.open_since = None
        state.last_close_ns = ts

    def _on_login(self, row: np.void) -> None:
        key = (int(row["str_a"]), int(row["str_b"]), int(row["str_c"]), int(row["aux"]))
        get = self._strings.get
        old = self._logins.get(key)
        self._logins[key] = LoginSession(
            user=get(key[0]),
            tty=get(key[1]),
            host=get(key[2]),
            pid=int(row["pid"]),
            start_s=key[3],
            first_ns=old.first_ns if old else int(row["ts_wall"]),
            ended=bool(int(row["flags"]) & Flag.ENDED) or bool(old and old.ended),
        )

    # --- the result --------------------------------------------------------------------

    def candidate_count(self, tcp_ports: frozenset[int], udp_ports: frozenset[int]) -> int:
        """Distinct non-loopback outbound endpoints on the given ports (cheap progress)."""
        table = self._connections
        reps = table.reps[: table.size]
        if not len(reps):
            return 0
        udp = reps["kind"] == Kind.UDP_SEND
        mask = np.where(
            udp,
            np.isin(reps["dport"], list(udp_ports)),
            np.isin(reps["dport"], list(tcp_ports)),
        )
        v4_loop = (reps["family"] == Family.INET) & (reps["daddr"][:, 0] == 127)
        v6_loop = (
            (reps["family"] == Family.INET6)
            & (reps["daddr"][:, 15] == 1)
            & ~reps["daddr"][:, :15].any(axis=1)
        )
        return int(np.count_nonzero(mask & ~v4_loop & ~v6_loop))

    def observations(self, *, started_ns: int, ended_ns: int) -> Observations:
        """The observations of the window [started_ns, ended_ns] (wall ns)."""
        procs = {
            pid: Process(
                pid=p.pid,
                ppid=p.ppid,
                comm=p.comm,
                exe=self._strings.get(p.exe),
                cmdline=self._strings.get(p.cmdline),
                uid=p.uid,
                euid=p.euid,
                first_ns=p.first_ns,
                last_ns=p.last_ns,
            )
            for pid, p in self._procs.items()
        }
        return Observations(
            window_start_ns=started_ns,
            window_end_ns=ended_ns,
            events=self.events,
            connections=self._connection_list(),
            listeners=self._listener_list(started_ns, ended_ns, procs),
            processes=procs,
            logins=tuple(sorted(self._logins.values(), key=lambda s: (s.first_ns, s.tty))),
            login_accepts=tuple(self._login_accepts),
        )

    def _connection_list(self) -> tuple[Connection, ...]:
        table = self._connections
        merged: dict[tuple[int, int, int, bytes, int, str], _ConnTotal] = {}
        for i in range(table.size):
            rep = table.reps[i]
            family, raw = int(rep["family"]), bytes(rep["daddr"])
            transport = "udp" if int(rep["kind"]) == Kind.UDP_SEND else "tcp"
            key = (int(rep["pid"]), int(rep["netns"]), family, raw, int(rep["dport"]), transport)
            count, first, last = int(table.count[i]), int(table.first[i]), int(table.last[i])
            source = Source(int(rep["source"])).label
            total = merged.get(key)
            if total is None:
                merged[key] = _ConnTotal(rep, count, first, last, {source})
            else:
                total.count = max(total.count, count)
                total.first = min(total.first, first)
                total.last = max(total.last, last)
                total.sources.add(source)
        out = [
            Connection(
                pid=pid,
                comm=comm_text(bytes(t.rep["comm"])),
                uid=int(t.rep["uid"]),
                netns=netns,
                family=family,
                remote=format_address(family, raw),
                remote_loopback=is_loopback(family, raw),
                port=port,
                transport=transport,
                count=t.count,
                first_ns=t.first,
                last_ns=t.last,
                sources=tuple(sorted(t.sources)),
            )
            for (pid, netns, family, raw, port, transport), t in merged.items()
        ]
        out.sort(key=lambda c: (c.first_ns, c.pid, c.remote, c.port, c.transport))
        return tuple(out)

    def _accept_totals(self) -> dict[tuple[int, int, bytes, int], tuple[int, int, int]]:
        """Accepted connections per local endpoint: (count, first, last), max over sources."""
        table = self._accepts
        totals: dict[tuple[int, int, bytes, int], tuple[int, int, int]] = {}
        for i in range(table.size):
            rep = table.reps[i]
            key = (int(rep["netns"]), int(rep["family"]), bytes(rep["saddr"]), int(rep["sport"]))
            count, first, last = int(table.count[i]), int(table.first[i]), int(table.last[i])
            old = totals.get(key)
            if old is not None:
                count, first, last = max(old[0], count), min(old[1], first), max(old[2], last)
            totals[key] = (count, first, last)
        return totals

    def _listener_list(
        self, started_ns: int, ended_ns: int, procs: dict[int, Process]
    ) -> tuple[Listener, ...]:
        accepts = self._accept_totals()
        out = []
        for state in self._listeners.values():
            intervals = list(state.intervals)
            if state.open_since is not None:
                intervals.append((state.open_since, ended_ns))
            begin = started_ns if state.before_window else None
            total = 0
            for start, end in intervals:
                lo = started_ns if state.before_window and start <= started_ns else start
                lo, hi = max(lo, started_ns), min(end, ended_ns)
                total += max(0, hi - lo)
                begin = lo if begin is None else min(begin, lo)
            count, first, last = 0, 0, 0
            for (netns, family, addr, port), (n, f, la) in accepts.items():
                if port != state.port or not _same_netns(netns, state.netns):
                    continue
                if not _address_accepts(state.family, state.addr, family, addr):
                    continue
                count += n
                first = f if not first else min(first, f)
                last = max(last, la)
            proc = procs.get(state.pid)
            out.append(
                Listener(
                    netns=state.netns,
                    family=state.family,
                    address=format_address(state.family, state.addr),
                    port=state.port,
                    loopback_only=is_loopback(state.family, state.addr),
                    pid=state.pid,
                    uid=state.uid,
                    comm=state.comm,
                    exe=proc.exe if proc else "",
                    started_ns=begin if begin is not None else started_ns,
                    listening_ns=total,
                    before_window=state.before_window,
                    accepted=count,
                    first_accept_ns=first,
                    last_accept_ns=last,
                    sources=tuple(sorted(state.sources)),
                )
            )
        out.sort(key=lambda s: (s.port, s.family, s.address, s.netns))
        return tuple(out)


def _same_netns(a: int, b: int) -> bool:
    return a in (b, 0) or b == 0


def _address_accepts(listen_family: int, listen_addr: bytes, family: int, addr: bytes) -> bool:
    """Whether a listener bound to listen_addr receives connections to addr."""
    if not any(listen_addr):
        # 0.0.0.0 takes IPv4; [::] takes both (dual-stack, unless v6only: we cannot tell).
        return listen_family == Family.INET6 or family == Family.INET
    return listen_family == family and listen_addr == addr
