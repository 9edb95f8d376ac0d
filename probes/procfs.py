"""Reading facts about a live process from /proc, tolerating processes that vanish."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from probes.common import GapCounter
from probes.events import Family

GAP_NETNS_GONE = "process gone before its network namespace could be read (netns 0)"
GAP_NETNS_DENIED = "network namespace of a process not readable (netns 0)"


def read_cmdline(pid: int) -> str | None:
    """The space-joined command line, or None when the process is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(4096)
    except OSError:
        return None
    return raw.rstrip(b"\x00").replace(b"\x00", b" ").decode("utf-8", "replace")


@dataclass(frozen=True)
class ProcIds:
    """Identity lines of /proc/<pid>/status."""

    name: str  # the comm, at most 15 characters
    ppid: int
    uid: int
    euid: int


def read_ids(pid: int) -> ProcIds | None:
    """Name, ppid, real and effective uid from /proc/<pid>/status, or None when gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read(4096)
    except OSError:
        return None
    ppid = uid = euid = -1
    name = ""
    for line in text.split(b"\n"):
        if line.startswith(b"Name:"):
            name = line[5:].strip().decode("utf-8", "replace")
        elif line.startswith(b"PPid:"):
            ppid = int(line.split()[1])
        elif line.startswith(b"Uid:"):
            fields = line.split()
            uid, euid = int(fields[1]), int(fields[2])
            break
    if ppid < 0 or uid < 0:
        return None
    return ProcIds(name, ppid, uid, euid)


def netns_inode(pid: int | str) -> int | None:
    """The inode number of /proc/<pid>/ns/net; None when gone. PermissionError propagates."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except (FileNotFoundError, ProcessLookupError):
        return None


class NetnsCache:
    """Network namespace of each pid, read once from /proc/<pid>/ns/net and cached.

    The cache entry of a pid is dropped when it execs or exits (``forget``), because
    ``ip netns exec`` and container runtimes switch namespace right before exec. A pid
    that is already gone resolves to 0 and counts a gap."""

    def __init__(self, gaps: GapCounter) -> None:
        self._cache: dict[int, int | None] = {}  # 0 = gone, None = denied
        self._gaps = gaps
        own = netns_inode("self")
        self.own = own or 0

    def resolve(self, pid: int) -> int:
        """The netns inode of ``pid`` (0 when it cannot be known)."""
        if not pid:
            return 0
        if pid in self._cache:
            found = self._cache[pid]
        else:
            found = self._cache[pid] = self._read(pid)
        if not found:
            self._gaps.add(GAP_NETNS_DENIED if found is None else GAP_NETNS_GONE)
            return 0
        return found

    def _read(self, pid: int) -> int | None:
        """The inode, 0 when the process is gone, None when denied."""
        try:
            return netns_inode(pid) or 0
        except PermissionError:
            return None

    def inherit(self, child: int, parent: int) -> None:
        """A forked child starts in its parent's namespace (when the parent's is known)."""
        known = self._cache.get(parent)
        if known:
            self._cache[child] = known

    def forget(self, pid: int) -> int | None:
        """Drop ``pid``'s entry (exec, exit, or a fork reusing it) and return what it was."""
        return self._cache.pop(pid, None) or None


def local_addresses(pid: int) -> set[tuple[int, bytes]] | None:
    """The (family, 16-byte address) pairs local to ``pid``'s network namespace, from
    /proc/<pid>/net/fib_trie (IPv4 /32 LOCAL entries) and if_inet6; None when gone."""
    found: set[tuple[int, bytes]] = set()
    try:
        with open(f"/proc/{pid}/net/fib_trie") as f:
            last = ""
            for line in f:
                text = line.strip()
                if text.startswith("|-- "):
                    last = text[4:]
                elif text == "/32 host LOCAL" and last:
                    found.add((Family.INET, socket.inet_aton(last) + bytes(12)))
        with open(f"/proc/{pid}/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if fields and len(fields[0]) == 32:
                    found.add((Family.INET6, bytes.fromhex(fields[0])))
    except (OSError, ValueError):
        return None
    return found
