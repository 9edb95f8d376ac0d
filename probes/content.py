"""First-payload records from the kernel -> PROTO_LABEL events.

The eBPF programs (``probes/ebpf_program.c``, "content" section) send the first bytes of
each monitored connection as :data:`PAYLOAD_DTYPE` records on their own ring buffer. The
:class:`ContentTracker` gathers them per connection, asks :func:`probes.classify.classify`
for a label, and emits one ``Kind.PROTO_LABEL`` event per labelled connection. Payload
bytes live only in the tracker's pending entries until the verdict, then are dropped:
no event, trace, log or report ever holds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from probes.classify import DATAGRAM_LABEL, MAX_CLIENT_PAYLOADS, classify
from probes.common import RecentMap
from probes.events import ADDR_LEN, COMM_LEN, EVENT_SIZE, Flag, Kind, Source, StringTable, empty

PAYLOAD_LEN = 64
ROLE_ACTIVE, ROLE_PASSIVE = 1, 2
DIR_CLIENT, DIR_SERVER = 0, 1
PROTO_TCP, PROTO_UDP = 6, 17

# Keep in sync with struct rba_payload in probes/ebpf_program.c; tests compare the two.
PAYLOAD_DTYPE = np.dtype(
    [
        ("ts_mono", "<u8"),
        ("conn", "<u8"),  # connection id (ktime at connect/accept; 0 for a datagram)
        ("pid", "<u4"),
        ("uid", "<u4"),
        ("fd", "<u4"),
        ("dport", "<u2"),  # the remote endpoint, host byte order
        ("family", "u1"),
        ("role", "u1"),  # ROLE_ACTIVE (we connected) or ROLE_PASSIVE (accepted)
        ("dir", "u1"),  # DIR_CLIENT or DIR_SERVER: who wrote these bytes
        ("len", "u1"),
        ("proto", "u1"),
        ("seq", "u1"),
        ("daddr", "u1", (ADDR_LEN,)),
        ("comm", f"S{COMM_LEN}"),
        ("data", "u1", (PAYLOAD_LEN,)),
        ("reserved", "<u4"),
    ]
)
PAYLOAD_SIZE = PAYLOAD_DTYPE.itemsize
_DONE_MAX = 65536  # connections remembered as labelled, to ignore their late records


@dataclass
class _Pending:
    """One connection's payloads so far."""

    head: bytes  # its first record: who, where, when
    conn: int
    client: dict[int, bytes] = field(default_factory=dict)
    server: bytes = b""

    def payloads(self) -> list[bytes]:
        return [self.client[i] for i in sorted(self.client)]


class ContentTracker:
    """Turns payload records into PROTO_LABEL events; keeps no bytes past a verdict."""

    def __init__(self, strings: StringTable) -> None:
        self._strings = strings
        self._pending: dict[tuple[int, int], _Pending] = {}
        self._done: RecentMap[tuple[int, int, int], None] = RecentMap(_DONE_MAX)
        self._hits: list[tuple[bytes, str]] = []  # (first record, label)
        self.records = 0
        self.labelled = 0

    def feed(self, records: list[bytes]) -> tuple[list[bytes], list[tuple[int, int]]]:
        """(PROTO_LABEL event records, settled connections as (kernel key
        ``pid << 32 | fd``, connection id))."""
        raws = [r[:PAYLOAD_SIZE] for r in records if len(r) >= PAYLOAD_SIZE]
        if not raws:
            return [], []
        recs = np.frombuffer(b"".join(raws), dtype=PAYLOAD_DTYPE)
        self.records += len(recs)
        data = recs["data"].tobytes()
        columns = [recs[name].tolist() for name in ("pid", "fd", "proto", "conn", "dir", "seq")]
        lengths = np.minimum(recs["len"], PAYLOAD_LEN).tolist()
        settled: list[tuple[int, int]] = []
        for i, (pid, fd, proto, conn, direction, seq) in enumerate(zip(*columns)):
            payload = data[i * PAYLOAD_LEN : i * PAYLOAD_LEN + lengths[i]]
            if proto == PROTO_UDP:
                label = classify([payload], b"", "udp").label
                served = recs["role"][i] == ROLE_PASSIVE  # a peer's first datagram to us
                self._hit(raws[i], label or (DATAGRAM_LABEL if served else ""))
                continue
            key = (pid, fd)
            if (pid, fd, conn) in self._done:
                continue
            pending = self._pending.get(key)
            if pending is not None and pending.conn != conn:
                self._settle(key, pending, final_only=False)  # the fd was reused
                pending = None
            if pending is None:
                pending = self._pending[key] = _Pending(raws[i], conn)
            if direction == DIR_CLIENT:
                pending.client[seq] = payload
            elif not pending.server:
                pending.server = payload
            if self._settle(key, pending, final_only=True):
                settled.append((pid << 32 | fd, conn))
        return self._take_events(), settled

    def flush(self) -> list[bytes]:
        """Labels of every connection still pending (the window is closing)."""
        for key, pending in list(self._pending.items()):
            self._settle(key, pending, final_only=False)
        return self._take_events()

    def _settle(self, key: tuple[int, int], pending: _Pending, *, final_only: bool) -> bool:
        """Label the connection if its verdict is final (or if not ``final_only``)."""
        client = pending.payloads()[:MAX_CLIENT_PAYLOADS]
        verdict = classify(client, pending.server, "tcp")
        if final_only and not verdict.final:
            return False
        del self._pending[key]
        self._done.put((*key, pending.conn), None)
        self._hit(pending.head, verdict.label)
        return True

    def _hit(self, head: bytes, label: str) -> None:
        if label:
            self._hits.append((head, label))

    def _take_events(self) -> list[bytes]:
        """The PROTO_LABEL events of the labels found since the last call."""
        hits, self._hits = self._hits, []
        if not hits:
            return []
        heads = np.frombuffer(b"".join(head for head, _ in hits), dtype=PAYLOAD_DTYPE)
        ev = empty(len(hits))
        ev["kind"] = Kind.PROTO_LABEL
        ev["source"] = Source.EBPF
        for name in ("ts_mono", "pid", "uid", "family", "dport", "daddr", "comm"):
            ev[name] = heads[name]
        ev["flags"] = np.where(heads["role"] == ROLE_ACTIVE, Flag.ACTIVE, Flag.PASSIVE)
        ev["aux"] = heads["proto"]
        ev["str_a"] = [self._strings.intern(label) for _, label in hits]
        self.labelled += len(hits)
        raw = ev.tobytes()
        return [raw[i * EVENT_SIZE : (i + 1) * EVENT_SIZE] for i in range(len(hits))]
