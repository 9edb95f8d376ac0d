"""The one event model shared by every source, the trace format and the aggregator.

An event is a fixed-size record. The same byte layout is used by

- the eBPF programs (``struct rba_event`` in ``probes/ebpf_program.c``),
- the in-memory batches (numpy structured arrays of :data:`EVENT_DTYPE`),
- the trace file's event chunks,

so an event travels from kernel to trace to aggregator without conversion. Strings
(paths, command lines, user names) are interned in a :class:`StringTable` and referred to
by id; ``comm`` is the kernel's 16-byte task name and is stored inline.

Field meanings per kind are documented on :class:`Kind`.
"""

from __future__ import annotations

import enum
import ipaddress
import threading
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

COMM_LEN = 16
ADDR_LEN = 16

# Keep in sync with struct rba_event in probes/ebpf_program.c; tests compare the two.
EVENT_DTYPE = np.dtype(
    [
        ("ts_mono", "<u8"),  # CLOCK_MONOTONIC ns (bpf_ktime_get_ns)
        ("ts_wall", "<u8"),  # CLOCK_REALTIME ns since the epoch
        ("sock", "<u8"),  # socket identity (kernel sk address, or a polling surrogate)
        ("aux", "<u8"),  # kind-specific number, see Kind
        ("pid", "<u4"),  # tgid of the process the event belongs to
        ("ppid", "<u4"),  # parent tgid (exec, fork, snapshot)
        ("uid", "<u4"),  # real uid
        ("euid", "<u4"),  # effective uid
        ("netns", "<u4"),  # network namespace inode (0 = unknown)
        ("str_a", "<u4"),  # interned string ids, see Kind
        ("str_b", "<u4"),
        ("str_c", "<u4"),
        ("sport", "<u2"),  # host byte order
        ("dport", "<u2"),
        ("kind", "u1"),  # Kind
        ("source", "u1"),  # Source
        ("family", "u1"),  # Family
        ("flags", "u1"),  # Flag bits
        ("saddr", "u1", (ADDR_LEN,)),  # IPv4 in the first 4 bytes, or IPv6
        ("daddr", "u1", (ADDR_LEN,)),
        ("comm", f"S{COMM_LEN}"),
    ]
)
EVENT_SIZE = EVENT_DTYPE.itemsize  # 120 bytes, no padding

EventArray = npt.NDArray[np.void]


class Kind(enum.IntEnum):
    """Event kinds. Unused fields are zero.

    EXEC: pid, ppid, uid, euid, comm; str_a = filename; str_b = cmdline (space-joined,
        read from /proc at receipt, may be empty if the process was already gone).
    FORK: pid = child, ppid = parent, comm.
    EXIT: pid, comm; aux = exit code.
    TCP_CONNECT: a socket entered SYN_SENT. pid, uid, comm, family, saddr/sport,
        daddr/dport, sock, netns. From eBPF, sport is 0 unless the socket was bound: the
        kernel picks the local port just after SYN_SENT (the ACTIVE TCP_ESTABLISHED of the
        same sock has it).
    TCP_ESTABLISHED: flags ACTIVE or PASSIVE; sock, addresses and ports. pid is the
        attributed owner (the connecting process, or the listener's owner), 0 if unknown.
        For PASSIVE, saddr/sport is the local (listening) side.
    TCP_LISTEN: pid, uid, comm, family, saddr = bind address, sport = port, sock, netns.
        aux 17: a UDP socket bound to a local port (a UDP service), not a TCP listener.
        flags SNAPSHOT when it was already listening at window start.
    TCP_CLOSE: sock, addresses and ports; pid attributed as for TCP_ESTABLISHED.
        A listener closing has flags LISTENER.
    UDP_SEND: pid, uid, comm, family, daddr/dport (sendto/sendmsg/connect with a remote).
        flags PASSIVE: a server's reply, to a peer whose datagram was received first.
    LOGIN: a login session. str_a = user, str_b = tty, str_c = remote host; aux = start
        time (epoch seconds); pid = session leader if known. flags ENDED when it ended.
    PROC_SNAPSHOT: pid, ppid, uid, euid, comm; str_a = exe, str_b = cmdline;
        aux = start time (epoch ns). flags SNAPSHOT when taken at window start.
    PROTO_LABEL: the protocol a connection's first payloads carried (probes/classify.py;
        never the bytes). pid, uid, comm, netns, family, daddr/dport = the remote end;
        flags ACTIVE (we connected or sent the datagram) or PASSIVE (accepted);
        aux = IP protocol (6 TCP, 17 UDP); str_a = label ("http", "tls", "snmp-v2c", ...).
    """

    EXEC = 1
    FORK = 2
    EXIT = 3
    TCP_CONNECT = 4
    TCP_ESTABLISHED = 5
    TCP_LISTEN = 6
    TCP_CLOSE = 7
    UDP_SEND = 8
    LOGIN = 9
    PROC_SNAPSHOT = 10
    PROTO_LABEL = 11


class Source(enum.IntEnum):
    """Which observation source produced an event."""

    EBPF = 1
    POLL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class Family(enum.IntEnum):
    """Address family of the addresses in an event (0 when none)."""

    NONE = 0
    INET = 4
    INET6 = 6


class Flag(enum.IntFlag):
    """Bits of the ``flags`` field."""

    NONE = 0
    ACTIVE = 1  # we initiated the connection
    PASSIVE = 2  # a listener accepted it
    SNAPSHOT = 4  # state that already existed when the window started
    LISTENER = 8  # TCP_CLOSE of a listening socket
    ENDED = 16  # LOGIN session ended
    LEFTOVER = 32  # polled PASSIVE TCP_ESTABLISHED seen only closing (TIME_WAIT, ...)


def empty(n: int = 0) -> EventArray:
    """A zeroed batch of ``n`` events."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def from_bytes(buf: bytes | bytearray | memoryview) -> EventArray:
    """A read-only batch viewing ``buf``, whose length must be a multiple of EVENT_SIZE."""
    if len(buf) % EVENT_SIZE:
        raise ValueError(f"{len(buf)} bytes is not a whole number of {EVENT_SIZE}-byte events")
    return np.frombuffer(buf, dtype=EVENT_DTYPE)


def pack_address(text: str) -> tuple[Family, bytes]:
    """Parse an IP address into (family, 16 bytes), unwrapping v4-mapped IPv6 to IPv4."""
    addr = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if isinstance(addr, ipaddress.IPv4Address):
        return Family.INET, addr.packed + bytes(12)
    return Family.INET6, addr.packed


def normalize_address(family: int, raw: bytes) -> tuple[Family, bytes]:
    """Canonical (family, 16 bytes) for a raw address, unwrapping v4-mapped IPv6."""
    if family == Family.INET6 and raw[:12] == b"\x00" * 10 + b"\xff\xff":
        return Family.INET, raw[12:16] + bytes(12)
    if family == Family.INET:
        return Family.INET, bytes(raw[:4]) + bytes(12)
    return Family(family), bytes(raw[:16])


def format_address(family: int, raw: bytes | npt.NDArray[np.uint8]) -> str:
    """Text form of an address stored in an event ('' when the family is NONE)."""
    data = bytes(raw)
    if family == Family.INET:
        return str(ipaddress.IPv4Address(data[:4]))
    if family == Family.INET6:
        return str(ipaddress.IPv6Address(data[:16]))
    return ""


def is_loopback(family: int, raw: bytes | npt.NDArray[np.uint8]) -> bool:
    """True for 127.0.0.0/8 and ::1 (and the unspecified address, which never leaves)."""
    data = bytes(raw)
    if family == Family.INET:
        return data[0] == 127
    if family == Family.INET6:
        return data[:16] == bytes(15) + b"\x01"
    return False


class StringTable:
    """Append-only interning of strings to small integer ids. Id 0 is the empty string.

    Thread-safe for interning, because the polling thread and the eBPF reader both add
    strings. Ids are stable for the life of the table, so a trace can store the table
    incrementally: strings ``[n_written:]`` are the new ones.
    """

    def __init__(self, strings: Iterable[str] = ()) -> None:
        self._strings: list[str] = [""]
        self._ids: dict[str, int] = {"": 0}
        self._lock = threading.Lock()
        for s in strings:
            self.intern(s)

    def intern(self, text: str) -> int:
        """Return the id of ``text``, adding it if new."""
        found = self._ids.get(text)
        if found is not None:
            return found
        with self._lock:
            found = self._ids.get(text)
            if found is None:
                found = len(self._strings)
                self._strings.append(text)
                self._ids[text] = found
            return found

    def get(self, string_id: int) -> str:
        """The string for ``string_id``; raises IndexError for an unknown id."""
        return self._strings[string_id]

    def __len__(self) -> int:
        return len(self._strings)

    def since(self, start: int) -> list[str]:
        """Strings with ids ``start`` and above, in id order."""
        return self._strings[start:]


def comm_text(raw: bytes) -> str:
    """Decode an inline comm field."""
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace")
