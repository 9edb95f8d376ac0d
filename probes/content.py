"""First-payload records from the kernel -> PROTO_LABEL events.

The eBPF programs (``probes/ebpf_program.c``, "content" section) send the first bytes of
each monitored connection as :data:`PAYLOAD_DTYPE` records on their own ring buffer. The
:class:`ContentTracker` gathers them per connection, asks :func:`probes.classify.classify`
for a label, and emits one ``Kind.PROTO_LABEL`` event per labelled connection. Payload
bytes live only in the tracker's pending entries until the verdict, then are dropped:
no event, trace, log or report ever holds them.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from probes.classify import MAX_CLIENT_PAYLOADS, classify
from probes.events import ADDR_LEN, COMM_LEN, Flag, Kind, Source, StringTable, empty

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

    head: np.void  # the first record: who, where, when
    client: dict[int, bytes] = field(default_factory=dict)
    server: bytes = b""

    def payloads(self) -> list[bytes]:
        return [self.client[i] for i in sorted(self.client)]


class ContentTracker:
    """Turns payload records into PROTO_LABEL events; keeps no bytes past a verdict."""

    def __init__(self, strings: StringTable) -> None:
        self._strings = strings
        self._pending: dict[tuple[int, int], _Pending] = {}
        self._done: collections.OrderedDict[tuple[int, int, int], None] = collections.OrderedDict()
        self.records = 0
        self.labelled = 0

    def feed(self, records: list[bytes]) -> tuple[list[bytes], list[tuple[int, int]]]:
        """(PROTO_LABEL event records, settled connections as (kernel key
        ``pid << 32 | fd``, connection id))."""
        events: list[bytes] = []
        settled: list[tuple[int, int]] = []
        for raw in records:
            if len(raw) < PAYLOAD_SIZE:
                continue
            rec = np.frombuffer(raw[:PAYLOAD_SIZE], dtype=PAYLOAD_DTYPE)[0]
            self.records += 1
            key = (int(rec["pid"]), int(rec["fd"]))
            if int(rec["proto"]) == PROTO_UDP:
                events += self._emit(rec, classify([_data(rec)], b"", "udp").label)
                continue
            conn = int(rec["conn"])
            if (*key, conn) in self._done:
                continue
            pending = self._pending.get(key)
            if pending is not None and int(pending.head["conn"]) != conn:
                events += self._settle(key, pending, final_only=False)  # fd reused
                pending = None
            if pending is None:
                pending = self._pending[key] = _Pending(rec)
            if int(rec["dir"]) == DIR_CLIENT:
                pending.client[int(rec["seq"])] = _data(rec)
            elif not pending.server:
                pending.server = _data(rec)
            labelled = self._settle(key, pending, final_only=True)
            if key not in self._pending:
                events += labelled
                settled.append((key[0] << 32 | key[1], conn))
        return events, settled

    def flush(self) -> list[bytes]:
        """Labels of every connection still pending (the window is closing)."""
        events: list[bytes] = []
        for key, pending in list(self._pending.items()):
            events += self._settle(key, pending, final_only=False)
        return events

    def _settle(self, key: tuple[int, int], pending: _Pending, *, final_only: bool) -> list[bytes]:
        client = pending.payloads()[:MAX_CLIENT_PAYLOADS]
        verdict = classify(client, pending.server, "tcp")
        if final_only and not verdict.final:
            return []
        del self._pending[key]
        self._done[(*key, int(pending.head["conn"]))] = None
        if len(self._done) > _DONE_MAX:
            self._done.popitem(last=False)
        return self._emit(pending.head, verdict.label)

    def _emit(self, head: np.void, label: str) -> list[bytes]:
        if not label:
            return []
        self.labelled += 1
        ev = empty(1)
        ev["kind"] = Kind.PROTO_LABEL
        ev["source"] = Source.EBPF
        for name in ("ts_mono", "pid", "uid", "family", "dport", "daddr", "comm"):
            ev[name] = head[name]
        ev["flags"] = Flag.ACTIVE if int(head["role"]) == ROLE_ACTIVE else Flag.PASSIVE
        ev["aux"] = int(head["proto"])
        ev["str_a"] = self._strings.intern(label)
        return [ev.tobytes()]


def _data(rec: np.void) -> bytes:
    return bytes(rec["data"][: int(rec["len"])])
