"""The aggregator: folds a window's event stream into :class:`Observations`, with numpy.

Memory is bounded by the number of distinct keys (connections, listeners, processes),
never by the number of events: high-volume kinds (connects, sends, accepts) are grouped
per batch with a sort over a 64-bit key fingerprint and merged into counters indexed by
key; the rarer kinds (exec, fork, exit, listen, logins) go through a short Python loop in
event order, because their order matters (a listener closing, then listening again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from behavior.interface import (
    Connection,
    Listener,
    LoginAccepted,
    LoginSession,
    Observations,
    Process,
)
from behavior.rules.protocols import program_names
from probes.classify import DATAGRAM_LABEL
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
from probes.lanes import PROCESS_LANES, Lane, LaneArray, classify, grouping

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
MAX_LOGIN_ANCESTRY = 4  # session leader -> login -> telnetd child -> telnetd
MAX_SERVED = 1024  # programs started by listener owners kept past their exit, per window

_TCP, _UDP = 0, 1
_IPPROTO_UDP = 17
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


def _fingerprint(
    events: EventArray, idx: npt.NDArray[np.intp], addr_field: str, port_field: str, extra: U64
) -> U64:
    """A 64-bit fingerprint of (extra, netns, family, address, port, source) of the rows
    ``idx`` of ``events``.

    Collisions are astronomically unlikely (about 1e-8 with a million distinct keys);
    one would merge two counters, never lose an event."""
    addr = np.ascontiguousarray(events[addr_field][idx]).view("<u8").reshape(-1, 2)
    meta = (
        extra
        | (events[port_field][idx].astype(np.uint64) << np.uint64(32))
        | (events["family"][idx].astype(np.uint64) << np.uint64(48))
        | (events["source"][idx].astype(np.uint64) << np.uint64(56))
    )
    h = _mix(_mix(_mix(meta) ^ addr[:, 0]) ^ addr[:, 1])
    return _mix(h ^ events["netns"][idx].astype(np.uint64))


# The aggregator's groups of lanes (see behavior.window.lanes).
_IGNORED, _OUTBOUND, _ACCEPTED, _RARE, _LABEL = 0, 1, 2, 3, 4
_GROUPS = grouping(
    {
        Lane.TCP_CONNECT: _OUTBOUND,
        Lane.UDP_SEND: _OUTBOUND,
        Lane.TCP_OUT_ESTABLISHED: _OUTBOUND,
        Lane.TCP_ACCEPTED: _ACCEPTED,
        Lane.PROTO_LABEL: _LABEL,
        **dict.fromkeys((*PROCESS_LANES, Lane.TCP_LISTEN, Lane.LOGIN, Lane.LISTENER_CLOSE), _RARE),
    },
    _IGNORED,
)


class _Ev(NamedTuple):
    """One event of the rare kinds as plain Python values (cheaper than numpy scalars)."""

    kind: int
    pid: int
    ppid: int
    uid: int
    euid: int
    netns: int
    family: int
    sport: int
    str_a: int
    str_b: int
    str_c: int
    aux: int
    flags: int
    source: int
    ts_wall: int
    comm: bytes
    saddr: bytes


# The process kinds as plain ints: comparing with an enum member costs an attribute
# lookup on its class per event.
_EXEC, _FORK, _EXIT = int(Kind.EXEC), int(Kind.FORK), int(Kind.EXIT)
_PROC_SNAPSHOT = int(Kind.PROC_SNAPSHOT)
MAX_CACHED = 4096  # distinct comms and images whose derived values are memoised


class _KeyTable:
    """Event counters per distinct key: count, first and last wall time, and the first
    event of the key as its representative (which carries every field of the key).

    Keys are found with a binary search over a sorted fingerprint array, so a batch is
    merged without a Python-level loop over its keys."""

    def __init__(self) -> None:
        self.size = 0
        self._sorted_fp = np.zeros(0, dtype=np.uint64)
        self._sorted_slot = np.zeros(0, dtype=np.int64)
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

    def _slots_of(self, keys: U64) -> npt.NDArray[np.int64]:
        """Slots of ``keys`` (sorted, unique), -1 where a key is new."""
        if not len(self._sorted_fp):
            return np.full(len(keys), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._sorted_fp, keys), len(self._sorted_fp) - 1)
        hit = self._sorted_fp[pos] == keys
        return np.where(hit, self._sorted_slot[pos], -1)

    def fold(self, events: EventArray, idx: npt.NDArray[np.intp], fp: U64) -> None:
        """Count the rows ``idx`` of ``events`` under their fingerprints ``fp``."""
        if len(idx) == 0:
            return
        order = np.argsort(fp, kind="stable")
        sorted_fp = fp[order]
        is_start = np.empty(len(sorted_fp), dtype=bool)
        is_start[0] = True
        np.not_equal(sorted_fp[1:], sorted_fp[:-1], out=is_start[1:])
        starts = np.flatnonzero(is_start)
        counts = np.diff(np.append(starts, len(sorted_fp))).astype(np.uint64)
        ts = events["ts_wall"][idx[order]]
        first = np.minimum.reduceat(ts, starts)
        last = np.maximum.reduceat(ts, starts)
        keys = sorted_fp[starts]
        slots = self._slots_of(keys)
        new = np.flatnonzero(slots < 0)
        if len(new):
            self._grow(self.size + len(new))
            fresh = np.arange(self.size, self.size + len(new), dtype=np.int64)
            slots[new] = fresh
            self.reps[fresh] = events[idx[order[starts[new]]]]
            self.first[fresh] = np.iinfo(np.uint64).max
            self.size += len(new)
            # Both parts are sorted and disjoint: insert the new keys where they belong
            # (a copy of the index per batch, where sorting it again cost a sort).
            at = np.searchsorted(self._sorted_fp, keys[new])
            self._sorted_fp = np.insert(self._sorted_fp, at, keys[new])
            self._sorted_slot = np.insert(self._sorted_slot, at, fresh)
        self.count[slots] += counts
        self.first[slots] = np.minimum(self.first[slots], first)
        self.last[slots] = np.maximum(self.last[slots], last)


@dataclass
class _ListenerState:
    netns: int
    family: int
    addr: bytes
    port: int
    transport: str
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
    # one per process seen, so no __dict__ (dataclass(slots=True) needs Python 3.10)
    __slots__ = ("cmdline", "comm", "euid", "exe", "first_ns", "last_ns", "pid", "ppid", "uid")

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
        self._leftovers = _KeyTable()  # polled accepts seen only closing (TIME_WAIT...)
        self._listener_owners: set[int] = set()  # of TCP listeners
        self._served: set[int] = set()  # programs they started (see _keep_served)
        self._listeners: dict[tuple[int, int, bytes, int, str], _ListenerState] = {}
        self._procs: dict[int, _ProcState] = {}
        self._comms: dict[bytes, str] = {}  # memo of comm_text, at most MAX_CACHED
        self._protocols: dict[tuple[str, int, int], str | None] = {}  # of _login_protocol
        self._logins: dict[tuple[int, int, int, int], LoginSession] = {}
        self._login_accepts: list[LoginAccepted] = []
        # Pids that evidence names (connections, listeners, logins): their process entry
        # outlives their exit. Others are dropped at exit, so the table stays as small as
        # the set of live processes plus the referenced ones, however long the window.
        self._referenced: set[int] = set()
        # Content labels: of outbound connections by their connection key, and of
        # accepted connections by (owning pid, netns).
        self._labels: dict[tuple[int, int, int, bytes, int, str], set[str]] = {}
        self._server_labels: dict[tuple[int, int], set[str]] = {}
        # Of datagrams received from peers that wrote first (UDP services), and the count
        # of server replies, by (serving pid, netns).
        self._udp_server_labels: dict[tuple[int, int], set[str]] = {}
        self._udp_replies: dict[tuple[int, int], int] = {}
        self._udp_peers: dict[tuple[int, int], int] = {}  # non-loopback ones

    def fold(self, events: EventArray, lanes: LaneArray | None = None) -> None:
        """Fold one batch of events (``lanes``: their :func:`classify`, if known)."""
        if len(events) == 0:
            return
        self.events += len(events)
        lane = _GROUPS[classify(events) if lanes is None else lanes]
        outbound = self._without_replies(events, np.flatnonzero(lane == _OUTBOUND))
        if len(outbound):
            kind = events["kind"][outbound]
            transport = (kind == Kind.UDP_SEND).astype(np.uint64)
            # Connect and active-established events of one connection are counted apart
            # and merged later with max(), so a connection seen twice counts once.
            variant = (kind == Kind.TCP_ESTABLISHED).astype(np.uint64)
            extra = (
                events["pid"][outbound].astype(np.uint64)
                | (transport << np.uint64(52))
                | (variant << np.uint64(53))
            )
            fp = _fingerprint(events, outbound, "daddr", "dport", extra)
            self._connections.fold(events, outbound, fp)
            self._referenced.update(np.unique(events["pid"][outbound]).tolist())
        accepted = np.flatnonzero(lane == _ACCEPTED)
        if len(accepted):
            zero = np.zeros(len(accepted), dtype=np.uint64)
            fp = _fingerprint(events, accepted, "saddr", "sport", zero)
            self._accepts.fold(events, accepted, fp)
            leftover = (events["flags"][accepted] & Flag.LEFTOVER) != 0
            if leftover.any():
                self._leftovers.fold(events, accepted[leftover], fp[leftover])
        rare = np.flatnonzero(lane == _RARE)
        if len(rare):
            self._fold_rare(events[rare])
        labels = np.flatnonzero(lane == _LABEL)
        if len(labels):
            self._fold_labels(events[labels])

    def _without_replies(
        self, events: EventArray, outbound: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.intp]:
        """``outbound`` less the server replies: datagrams (flag PASSIVE) sent to a peer
        whose datagram was received first, never a client's send (docs/assess.md)."""
        if not len(outbound):
            return outbound
        flags = events["flags"][outbound]
        reply = (events["kind"][outbound] == Kind.UDP_SEND) & (flags & Flag.PASSIVE != 0)
        if not reply.any():
            return outbound
        for pid, netns in zip(
            events["pid"][outbound[reply]].tolist(), events["netns"][outbound[reply]].tolist()
        ):
            self._udp_replies[pid, netns] = self._udp_replies.get((pid, netns), 0) + 1
        kept: npt.NDArray[np.intp] = outbound[~reply]
        return kept

    def _fold_labels(self, rows: EventArray) -> None:
        names = ("pid", "netns", "family", "dport", "aux", "flags", "str_a")
        columns = [rows[name].tolist() for name in names]
        columns.append(np.ascontiguousarray(rows["daddr"]).view("V16").ravel().tolist())
        for pid, netns, family, dport, aux, flags, str_a, daddr in zip(*columns):
            label = self._strings.get(str_a)
            self._referenced.add(pid)
            if flags & Flag.PASSIVE and aux == _IPPROTO_UDP:
                self._on_served_datagram(pid, netns, family, daddr, label)
            elif flags & Flag.PASSIVE:
                self._server_labels.setdefault((pid, netns), set()).add(label)
            else:
                transport = "udp" if aux == _IPPROTO_UDP else "tcp"
                key = (pid, netns, family, daddr, dport, transport)
                self._labels.setdefault(key, set()).add(label)

    def _on_served_datagram(
        self, pid: int, netns: int, family: int, peer: bytes, label: str
    ) -> None:
        """The first datagram of a peer that wrote first, received by ``pid``."""
        if label != DATAGRAM_LABEL:
            self._udp_server_labels.setdefault((pid, netns), set()).add(label)
        if not is_loopback(family, peer):
            self._udp_peers[pid, netns] = self._udp_peers.get((pid, netns), 0) + 1

    # --- processes, listeners and logins, in event order ------------------------------

    def _fold_rare(self, rows: EventArray) -> None:
        columns = [rows[name].tolist() for name in _Ev._fields[:-1]]
        columns.append(np.ascontiguousarray(rows["saddr"]).view("V16").ravel().tolist())
        make = tuple.__new__  # _Ev._make without its Python-level frame, once per event
        for values in zip(*columns):
            ev: _Ev = make(_Ev, values)
            kind = ev.kind
            if kind == _EXIT:
                self._on_exit(ev)
            elif kind in (_EXEC, _PROC_SNAPSHOT):
                self._on_image(ev)
            elif kind == _FORK:
                self._on_fork(ev)
            elif kind == Kind.TCP_LISTEN:
                self._on_listen(ev)
            elif kind == Kind.TCP_CLOSE:
                self._on_listener_close(ev)
            else:
                self._on_login(ev)

    def _on_image(self, ev: _Ev) -> None:
        pid, ts = ev.pid, ev.ts_wall
        old = self._procs.get(pid)
        # Polling reports a process that started during the window as a plain snapshot.
        is_new_exec = ev.kind == Kind.EXEC or (old is None and not ev.flags & Flag.SNAPSHOT)
        proc = _ProcState(
            pid=pid,
            ppid=ev.ppid,
            comm=self._comm(ev.comm),
            exe=ev.str_a,
            cmdline=ev.str_b,
            uid=ev.uid,
            euid=ev.euid,
            first_ns=ts,
            last_ns=ts,
        )
        if old is not None and ev.kind == Kind.PROC_SNAPSHOT and old.exe in (0, proc.exe):
            # A later snapshot of an image we know: refresh what polling can tell.
            old.last_ns = ts
            old.euid = min(old.euid, proc.euid)
            old.exe = old.exe or proc.exe
            old.cmdline = old.cmdline or proc.cmdline
            return
        self._procs[pid] = proc
        if is_new_exec:
            self._check_login_program(proc)
            self._keep_served(proc)

    def _keep_served(self, proc: _ProcState) -> None:
        """Keep a program a listener's owner started (inetd's in.telnetd, a socket
        activated service): it serves that owner's accepted connections."""
        if proc.ppid not in self._listener_owners or len(self._served) >= MAX_SERVED:
            return
        parent = self._procs.get(proc.ppid)
        if parent is not None and parent.exe != proc.exe:
            self._served.add(proc.pid)
            self._referenced.add(proc.pid)

    def _on_exit(self, ev: _Ev) -> None:
        if ev.pid not in self._referenced:
            self._procs.pop(ev.pid, None)
            return
        proc = self._procs.get(ev.pid)
        if proc is not None:
            proc.last_ns = ev.ts_wall

    def _on_fork(self, ev: _Ev) -> None:
        pid, ppid, ts = ev.pid, ev.ppid, ev.ts_wall
        parent = self._procs.get(ppid)
        if parent is None:
            self._procs[pid] = _ProcState(pid, ppid, self._comm(ev.comm), 0, 0, 0, 0, ts, ts)
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

    def _comm(self, raw: bytes) -> str:
        """:func:`comm_text` of ``raw``, memoised: a window's processes share few comms."""
        text = self._comms.get(raw)
        if text is None:
            if len(self._comms) >= MAX_CACHED:
                self._comms.clear()
            text = self._comms[raw] = comm_text(raw)
        return text

    def _names(self, proc: _ProcState) -> list[str]:
        exe = self._strings.get(proc.exe) if proc.exe else ""
        return program_names(proc.comm, exe, self._strings.get(proc.cmdline))

    def _login_protocol(self, proc: _ProcState) -> str | None:
        """The cleartext login protocol ``proc`` serves, if it is a login server (asked of
        every exec's parent: memoised per image, as many processes share one)."""
        image = (proc.comm, proc.exe, proc.cmdline)
        if image in self._protocols:
            return self._protocols[image]
        if len(self._protocols) >= MAX_CACHED:
            self._protocols.clear()
        names = self._names(proc)
        protocol = next((LOGIN_SERVERS[n] for n in names if n in LOGIN_SERVERS), None)
        self._protocols[image] = protocol
        return protocol

    def _check_login_program(self, proc: _ProcState) -> None:
        parent = self._procs.get(proc.ppid)
        if parent is None:
            return
        protocol = self._login_protocol(parent)
        if protocol is None or self._login_protocol(proc) is not None:
            return  # not a login server's child, or the server re-executing itself
        names = self._names(proc)
        if protocol in ("telnet", "rlogin") and not LOGIN_PROGRAMS.intersection(names):
            return
        self._referenced.update((proc.pid, parent.pid))
        self._login_accepts.append(self._login_accepted(protocol, parent, proc, proc.first_ns))

    def _login_accepted(
        self, protocol: str, server: _ProcState, proc: _ProcState, ts_ns: int
    ) -> LoginAccepted:
        """The login that ``server`` (speaking ``protocol``) accepted, run as ``proc``."""
        return LoginAccepted(
            protocol=protocol,
            server_pid=server.pid,
            server=server.comm,
            pid=proc.pid,
            program=self._strings.get(proc.exe) if proc.exe else proc.comm,
            uid=proc.uid,
            ts_ns=ts_ns,
        )

    def _on_listen(self, ev: _Ev) -> None:
        self._referenced.add(ev.pid)
        ts = ev.ts_wall
        key = (ev.netns, ev.family, ev.saddr, ev.sport, _transport(ev.aux))
        if key[4] == "tcp":
            self._listener_owners.add(ev.pid)
        source = Source(ev.source).label
        state = self._listeners.get(key)
        snapshot = bool(ev.flags & Flag.SNAPSHOT)
        if state is None:
            state = _ListenerState(
                netns=key[0],
                family=key[1],
                addr=key[2],
                port=key[3],
                transport=key[4],
                pid=ev.pid,
                uid=ev.uid,
                comm=comm_text(ev.comm),
                sources={source},
                open_since=ts,
                before_window=snapshot,
                first_ns=ts,
            )
            self._listeners[key] = state
            return
        state.sources.add(source)
        if state.pid == 0 and ev.pid:
            state.pid, state.uid = ev.pid, ev.uid
            state.comm = comm_text(ev.comm)
        # Another source re-reporting an open listener, or a report older than its close.
        if state.open_since is not None or ts <= state.last_close_ns:
            state.before_window |= snapshot
            return
        state.open_since = ts

    def _on_listener_close(self, ev: _Ev) -> None:
        key = (ev.netns, ev.family, ev.saddr, ev.sport, _transport(ev.aux))
        state = self._listeners.get(key)
        ts = ev.ts_wall
        if state is None or state.open_since is None:
            return
        state.intervals.append((state.open_since, ts))
        state.open_since = None
        state.last_close_ns = ts

    def _on_login(self, ev: _Ev) -> None:
        self._referenced.add(ev.pid)
        key = (ev.str_a, ev.str_b, ev.str_c, ev.aux)
        get = self._strings.get
        old = self._logins.get(key)
        self._logins[key] = LoginSession(
            user=get(key[0]),
            tty=get(key[1]),
            host=get(key[2]),
            pid=ev.pid,
            start_s=key[3],
            first_ns=old.first_ns if old else ev.ts_wall,
            ended=bool(ev.flags & Flag.ENDED) or bool(old and old.ended),
        )

    # --- the result --------------------------------------------------------------------

    @property
    def connection_keys(self) -> int:
        """Distinct connection keys held so far: what the fold's memory grows with."""
        return self._connections.size

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
            login_accepts=tuple(self._login_accepts + self._utmp_login_accepts()),
        )

    def _utmp_login_accepts(self) -> list[LoginAccepted]:
        """Sessions (utmp) whose leader descends from a cleartext login server, when the
        login program itself was not seen starting (polling, or a window opened late)."""
        known = {a.pid for a in self._login_accepts}
        found = []
        for session in sorted(self._logins.values(), key=lambda s: (s.first_ns, s.tty)):
            if not session.pid or session.pid in known:
                continue
            proc = self._procs.get(session.pid)
            ancestor = self._procs.get(proc.ppid) if proc else None
            for _ in range(MAX_LOGIN_ANCESTRY):
                if proc is None or ancestor is None:
                    break
                protocol = self._login_protocol(ancestor)
                if protocol is not None:
                    found.append(self._login_accepted(protocol, ancestor, proc, session.first_ns))
                    known.add(session.pid)
                    break
                ancestor = self._procs.get(ancestor.ppid)
        return found

    def _connection_list(self) -> tuple[Connection, ...]:
        table = self._connections
        n = table.size
        if not n:
            return ()
        reps = table.reps[:n]
        # One connection per (pid, netns, family, remote, port, transport): the table's
        # rows of one key (its connect and established variants, its sources) merge with
        # the max of their counts, the min of their firsts and the max of their lasts.
        # Grouped with an exact sort, as a dict would, but without a Python loop per row.
        udp = (reps["kind"] == Kind.UDP_SEND).astype(np.uint64)
        addr = np.ascontiguousarray(reps["daddr"]).view("<u8").reshape(-1, 2)
        meta = (
            reps["family"].astype(np.uint64)
            | (reps["dport"].astype(np.uint64) << np.uint64(8))
            | (udp << np.uint64(24))
            | (reps["netns"].astype(np.uint64) << np.uint64(32))
        )
        pid = reps["pid"].astype(np.uint64)
        # lexsort is stable: a key's rows stay in slot order, the first is its head.
        order = np.lexsort((addr[:, 1], addr[:, 0], meta, pid))
        columns = (pid[order], meta[order], addr[order, 0], addr[order, 1])
        is_start = np.zeros(n, dtype=bool)
        is_start[0] = True
        for column in columns:
            is_start[1:] |= column[1:] != column[:-1]
        starts = np.flatnonzero(is_start)
        head = order[starts]  # in key order
        count = np.maximum.reduceat(table.count[:n][order], starts)
        first = np.minimum.reduceat(table.first[:n][order], starts)
        last = np.maximum.reduceat(table.last[:n][order], starts)
        bits = np.left_shift(np.uint64(1), reps["source"][order].astype(np.uint64))
        source_bits = np.bitwise_or.reduceat(bits, starts)
        remote, loopback, remote_rank = _remotes(reps["family"][head], addr[head])
        # The order of the list: (first, pid, remote, port, transport), ties in the order
        # the keys were first seen.
        ranked = np.lexsort(
            (head, udp[head], reps["dport"][head], remote_rank, reps["pid"][head], first)
        )
        picked = ranked.tolist()
        return tuple(
            self._connections_of(
                reps[head[ranked]],
                count=count[ranked],
                first=first[ranked],
                last=last[ranked],
                source_bits=source_bits[ranked],
                remote=[remote[i] for i in picked],
                loopback=[loopback[i] for i in picked],
            )
        )

    def _connections_of(
        self,
        heads: EventArray,
        *,
        count: U64,
        first: U64,
        last: U64,
        source_bits: U64,
        remote: list[str],
        loopback: list[bool],
    ) -> list[Connection]:
        """The Connection records of merged keys (``heads``: each key's first row)."""
        sources_of: dict[int, tuple[str, ...]] = {}
        for bits in set(source_bits.tolist()):
            sources_of[bits] = tuple(sorted(s.label for s in Source if bits >> int(s) & 1))
        comms: dict[bytes, str] = {}
        for raw in set(heads["comm"].tolist()):
            comms[raw] = comm_text(raw)
        transports = np.where(heads["kind"] == Kind.UDP_SEND, "udp", "tcp").tolist()
        labels: list[tuple[str, ...]]
        if self._labels:
            raws_list = np.ascontiguousarray(heads["daddr"]).view("V16").ravel().tolist()
            keys = zip(
                heads["pid"].tolist(),
                heads["netns"].tolist(),
                heads["family"].tolist(),
                raws_list,
                heads["dport"].tolist(),
                transports,
            )
            labels = [tuple(sorted(self._labels.get(key, ()))) for key in keys]
        else:
            labels = [()] * len(heads)
        return [
            Connection(
                pid=p,
                comm=comms[c],
                uid=u,
                netns=ns,
                family=fam,
                remote=r,
                remote_loopback=lb,
                port=port,
                transport=t,
                count=k,
                first_ns=f,
                last_ns=la,
                sources=sources_of[b],
                labels=lab,
            )
            for p, c, u, ns, fam, r, lb, port, t, k, f, la, b, lab in zip(
                heads["pid"].tolist(),
                heads["comm"].tolist(),
                heads["uid"].tolist(),
                heads["netns"].tolist(),
                heads["family"].tolist(),
                remote,
                loopback,
                heads["dport"].tolist(),
                transports,
                count.tolist(),
                first.tolist(),
                last.tolist(),
                source_bits.tolist(),
                labels,
            )
        ]

    def _accept_totals(
        self, table: _KeyTable | None = None
    ) -> dict[tuple[int, int, bytes, int], tuple[int, int, int]]:
        """Accepted connections per local endpoint: (count, first, last), max over sources
        (of ``table``, the accepts by default)."""
        table = self._accepts if table is None else table
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
        # Indexed by port: a listener only looks at accepts on its own port, so evaluation
        # stays linear when a window saw many distinct endpoints.
        accepts_by_port: dict[int, list[tuple[tuple[int, int, bytes, int], tuple[int, int, int]]]]
        accepts_by_port = {}
        for key, totals in self._accept_totals().items():
            accepts_by_port.setdefault(key[3], []).append((key, totals))
        leftovers = self._accept_totals(self._leftovers) if self._leftovers.size else {}
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
            count, first, last, left = 0, 0, 0, 0
            accepts = accepts_by_port.get(state.port, ()) if state.transport == "tcp" else ()
            for key, (n, f, la) in accepts:
                netns, family, addr, _port = key
                if not _same_netns(netns, state.netns):
                    continue
                if not _address_accepts(state.family, state.addr, family, addr):
                    continue
                left += leftovers.get(key, (0, 0, 0))[0]
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
                    labels=self._listener_labels(state),
                    transport=state.transport,
                    leftovers=left,
                    peers=self._udp_peers.get((state.pid, state.netns), 0)
                    if state.transport == "udp"
                    else 0,
                )
            )
        out.sort(key=lambda s: (s.port, s.transport, s.family, s.address, s.netns))
        return tuple(out)

    def _listener_labels(self, state: _ListenerState) -> tuple[str, ...]:
        table = self._udp_server_labels if state.transport == "udp" else self._server_labels
        return tuple(sorted(table.get((state.pid, state.netns), ())))


def _transport(aux: int) -> str:
    """A listener event's transport: aux 17 marks a bound UDP socket."""
    return "udp" if aux == _IPPROTO_UDP else "tcp"


def _remotes(
    family: npt.NDArray[np.uint8], addr: U64
) -> tuple[list[str], list[bool], npt.NDArray[np.intp]]:
    """Text, loopback-ness and sort rank (by text) of each row's remote address (``addr``:
    the 16 address bytes as two words). Each distinct address is formatted once."""
    fam = family.astype(np.uint64)
    order = np.lexsort((addr[:, 1], addr[:, 0], fam))
    is_start = np.zeros(len(order), dtype=bool)
    is_start[:1] = True
    for column in (fam[order], addr[order, 0], addr[order, 1]):
        is_start[1:] |= column[1:] != column[:-1]
    distinct = order[is_start]
    inverse = np.empty(len(order), dtype=np.intp)
    inverse[order] = np.cumsum(is_start) - 1
    texts, loops = [], []
    for f, lo, hi in zip(fam[distinct].tolist(), *addr[distinct].T.tolist()):
        raw = np.array([lo, hi], dtype="<u8").tobytes()
        texts.append(format_address(f, raw))
        loops.append(is_loopback(f, raw))
    rank_of = {text: i for i, text in enumerate(sorted(set(texts)))}
    ranks = np.array([rank_of[t] for t in texts], dtype=np.intp)
    rows = inverse.tolist()
    return [texts[i] for i in rows], [loops[i] for i in rows], ranks[inverse]


def _same_netns(a: int, b: int) -> bool:
    return a in (b, 0) or b == 0


def _address_accepts(listen_family: int, listen_addr: bytes, family: int, addr: bytes) -> bool:
    """Whether a listener bound to listen_addr receives connections to addr."""
    if not any(listen_addr):
        # 0.0.0.0 takes IPv4; [::] takes both (dual-stack, unless v6only: we cannot tell).
        return listen_family == Family.INET6 or family == Family.INET
    return listen_family == family and listen_addr == addr
