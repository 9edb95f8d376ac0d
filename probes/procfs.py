"""The one reader of ``/proc``: every other module reads a process through this one.

In psutil's style, the errors of a read are translated once, here, into two types: the
process is gone (:class:`ProcessGoneError`: it exited, or is a zombie without an executable)
or access is denied (:class:`AccessDeniedError`). Results are typed records. Paths a process
names (its executable, modules, script) are in its own mount namespace: :func:`open_in_root`
opens them through ``/proc/PID/root`` so symlinks resolve inside that root, never on the
host (``openat2`` with ``RESOLVE_IN_ROOT`` where the kernel has it, otherwise a
component-by-component walk).

Only standard modules are imported at load time: ``rba scan`` starts fast.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ctypes

    from probes.common import GapCounter

PROC = "/proc"
GAP_NETNS_GONE = "process gone before its network namespace could be read (netns 0)"
GAP_NETNS_DENIED = "network namespace of a process not readable (netns 0)"
_GONE_ERRNOS = frozenset({errno.ENOENT, errno.ESRCH, errno.ENOTDIR})
_DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


class ProcfsError(Exception):
    """A read of ``/proc/PID`` failed; ``pid`` names the process."""

    def __init__(self, pid: int | str, what: str, reason: str) -> None:
        super().__init__(f"pid {pid}: {what}: {reason}")
        self.pid = pid
        self.what = what


class ProcessGoneError(ProcfsError):
    """The process exited (or has no such entry any more, as a zombie's executable)."""


class AccessDeniedError(ProcfsError):
    """The process exists but this reader may not read the entry."""


@contextlib.contextmanager
def _translated(pid: int | str, what: str) -> Iterator[None]:
    """Turn the OSError of reading ``what`` of ``pid`` into the procfs error types."""
    try:
        yield
    except OSError as e:
        reason = e.strerror or str(e)
        if e.errno in _DENIED_ERRNOS:
            raise AccessDeniedError(pid, what, reason) from e
        if e.errno in _GONE_ERRNOS:
            raise ProcessGoneError(pid, what, reason) from e
        raise ProcfsError(pid, what, reason) from e


def _read(pid: int | str, name: str, limit: int = -1) -> bytes:
    with _translated(pid, name), open(f"{PROC}/{pid}/{name}", "rb") as f:
        return f.read(limit)


# --- the process list and identity lines ------------------------------------------------


def pids() -> list[int]:
    """Every pid in /proc now, sorted."""
    return sorted(int(name) for name in os.listdir(PROC) if name.isdigit())


@dataclass(frozen=True)
class ProcStatus:
    """Identity lines of /proc/PID/status (uids and gids as the reader's user namespace
    sees them: the host's view)."""

    name: str  # the comm, at most 15 characters
    ppid: int
    uid: int
    euid: int
    gid: int
    egid: int


def read_status(pid: int | str) -> ProcStatus:
    """Name, ppid, real and effective uid and gid. Raises ProcfsError."""
    name = ""
    ppid = -1
    uids = gids = (-1, -1)
    for line in _read(pid, "status", 8192).split(b"\n"):
        if line.startswith(b"Name:"):
            name = line[5:].strip().decode("utf-8", "replace")
        elif line.startswith(b"PPid:"):
            ppid = int(line.split()[1])
        elif line.startswith(b"Uid:"):
            fields = line.split()
            uids = (int(fields[1]), int(fields[2]))
        elif line.startswith(b"Gid:"):
            fields = line.split()
            gids = (int(fields[1]), int(fields[2]))
            break
    if ppid < 0 or uids[0] < 0:
        raise ProcessGoneError(pid, "status", "incomplete")
    return ProcStatus(name, ppid, uids[0], uids[1], gids[0], gids[1])


def read_exe(pid: int | str) -> str:
    """The executable's path in the process's mount namespace. Raises ProcfsError
    (ProcessGoneError for a kernel thread, which has none)."""
    with _translated(pid, "exe"):
        return os.readlink(f"{PROC}/{pid}/exe")


def read_cwd(pid: int | str) -> str:
    """The working directory's path in the process's mount namespace. Raises ProcfsError."""
    with _translated(pid, "cwd"):
        return os.readlink(f"{PROC}/{pid}/cwd")


def read_argv(pid: int | str) -> tuple[str, ...]:
    """argv of the process ('' words dropped). Raises ProcfsError."""
    raw = _read(pid, "cmdline")
    return tuple(w.decode("utf-8", "replace") for w in raw.split(b"\0") if w)


def read_cmdline_text(pid: int | str, limit: int = 4096) -> str:
    """The space-joined command line (at most ``limit`` bytes read). Raises ProcfsError."""
    raw = _read(pid, "cmdline", limit)
    return raw.rstrip(b"\x00").replace(b"\x00", b" ").decode("utf-8", "replace")


def read_cgroup(pid: int | str) -> tuple[str, ...]:
    """The lines of /proc/PID/cgroup (``hierarchy:controllers:path``). Raises ProcfsError."""
    text = _read(pid, "cgroup", 65536).decode("utf-8", "replace")
    return tuple(line for line in text.splitlines() if line)


# --- memory maps ------------------------------------------------------------------------


@dataclass(frozen=True)
class MapsInfo:
    """What a memory map says: executable file-backed mappings (paths in the process's
    mount namespace) and whether the ``[stack]`` mapping is executable."""

    modules: tuple[str, ...]
    exec_stack: bool


def parse_maps(text: str) -> MapsInfo:
    """Executable file-backed mappings and whether [stack] is executable."""
    modules: dict[str, None] = {}
    exec_stack = False
    for line in text.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 6:
            continue
        perms, name = fields[1], fields[5]
        if name == "[stack]":
            exec_stack = exec_stack or "x" in perms
        elif "x" in perms and name.startswith("/") and not name.endswith(" (deleted)"):
            modules[sys.intern(name)] = None
    return MapsInfo(tuple(modules), exec_stack)


def read_maps(pid: int | str) -> MapsInfo:
    """The process's memory map. Raises ProcfsError (AccessDeniedError when not allowed)."""
    return parse_maps(_read(pid, "maps").decode("utf-8", "surrogateescape"))


def read_mapped_files(pid: int | str) -> dict[str, str]:
    """Every file-backed mapping (executable or not): path -> its ``map_files`` link,
    which reaches the mapped file even when the path was replaced. Raises ProcfsError."""
    files: dict[str, str] = {}
    for line in _read(pid, "maps").splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith(b"/"):
            link = f"{PROC}/{pid}/map_files/{fields[0].decode()}"
            files.setdefault(os.fsdecode(fields[5]), link)
    return files


# --- namespaces and id maps -------------------------------------------------------------


def namespace_inode(pid: int | str, kind: str) -> int:
    """The inode of /proc/PID/ns/KIND (``mnt``, ``net``, ``pid``, ``user``...), which
    names the namespace. Raises ProcfsError."""
    with _translated(pid, f"ns/{kind}"):
        return os.stat(f"{PROC}/{pid}/ns/{kind}").st_ino


@dataclass(frozen=True)
class Namespaces:
    """The mount, network, pid and user namespace inodes of a process (0 = unreadable)."""

    mnt: int
    net: int
    pid: int
    user: int


def read_namespaces(pid: int | str) -> Namespaces:
    """The four namespace inodes. Raises ProcessGoneError when the process is gone; an entry
    that is denied reads as 0."""
    found = []
    for kind in ("mnt", "net", "pid", "user"):
        try:
            found.append(namespace_inode(pid, kind))
        except AccessDeniedError:
            found.append(0)
    return Namespaces(*found)


@dataclass(frozen=True)
class IdRange:
    """One line of a uid_map or gid_map: ``count`` ids from ``inner`` inside the user
    namespace are ``outer`` ... on the host (the reader's namespace)."""

    inner: int
    outer: int
    count: int


IDENTITY_MAP = (IdRange(0, 0, 4294967295),)


def read_id_map(pid: int | str, kind: str) -> tuple[IdRange, ...]:
    """The process's ``uid_map`` or ``gid_map``. Raises ProcfsError."""
    out = []
    for line in _read(pid, kind, 65536).splitlines():
        fields = line.split()
        if len(fields) == 3:
            out.append(IdRange(int(fields[0]), int(fields[1]), int(fields[2])))
    return tuple(out)


def netns_inode(pid: int | str) -> int | None:
    """The inode of /proc/PID/ns/net; None when gone. AccessDeniedError propagates."""
    try:
        return namespace_inode(pid, "net")
    except AccessDeniedError:
        raise
    except ProcfsError:
        return None


class NetnsCache:
    """Network namespace of each pid, read once from /proc/PID/ns/net and cached.

    The cache entry of a pid is dropped when it execs or exits (``forget``), because
    ``ip netns exec`` and container runtimes switch namespace right before exec. A pid
    that is already gone resolves to 0 and counts a gap."""

    def __init__(self, gaps: GapCounter) -> None:
        self._cache: dict[int, int | None] = {}  # 0 = gone, None = denied
        self._gaps = gaps
        try:
            self.own = netns_inode("self") or 0
        except AccessDeniedError:
            self.own = 0

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
        except AccessDeniedError:
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
    /proc/PID/net/fib_trie (IPv4 /32 LOCAL entries) and if_inet6; None when gone."""
    from probes.events import Family

    found: set[tuple[int, bytes]] = set()
    try:
        with open(f"{PROC}/{pid}/net/fib_trie") as f:
            last = ""
            for line in f:
                text = line.strip()
                if text.startswith("|-- "):
                    last = text[4:]
                elif text == "/32 host LOCAL" and last:
                    found.add((Family.INET, socket.inet_aton(last) + bytes(12)))
        with open(f"{PROC}/{pid}/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if fields and len(fields[0]) == 32:
                    found.add((Family.INET6, bytes.fromhex(fields[0])))
    except (OSError, ValueError):
        return None
    return found


TCP_LISTEN = 0x0A
TCP_ESTABLISHED = 0x01


@dataclass(frozen=True)
class InetSocket:
    """One row of /proc/PID/net/tcp or tcp6: a TCP socket of that process's network
    namespace (``family`` 4 or 6, addresses as text, ``state`` the kernel's TCP state)."""

    family: int
    local: str
    lport: int
    remote: str
    rport: int
    state: int
    inode: int


def _hex_address(text: str) -> tuple[str, int]:
    address, port = text.split(":")
    raw = bytes.fromhex(address)
    # The kernel prints each 32-bit word in host (little-endian) order.
    ordered = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(ordered) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, ordered), int(port, 16)


def read_tcp_sockets(pid: int | str) -> list[InetSocket]:
    """The TCP sockets of ``pid``'s network namespace. Raises ProcfsError."""
    found = []
    for name, family in (("net/tcp", 4), ("net/tcp6", 6)):
        try:
            text = _read(pid, name).decode("ascii", "replace")
        except ProcessGoneError:
            if name == "net/tcp":
                raise
            continue  # no IPv6 in this kernel
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10:
                continue
            local, lport = _hex_address(fields[1])
            remote, rport = _hex_address(fields[2])
            found.append(
                InetSocket(family, local, lport, remote, rport, int(fields[3], 16), int(fields[9]))
            )
    return found


def socket_inodes(pid: int | str) -> set[int]:
    """The inodes of the sockets ``pid`` holds open (from its fd links). Raises
    ProcfsError."""
    with _translated(pid, "fd"):
        names = os.listdir(f"{PROC}/{pid}/fd")
    found = set()
    for name in names:
        try:
            target = os.readlink(f"{PROC}/{pid}/fd/{name}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


# --- paths inside the process's root ------------------------------------------------------

_SYS_OPENAT2 = 437
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_MAX_LINKS = 40


_openat2_state: list[bool] = []  # [] = not tried yet; [True] / [False] once known
_libc_handle: list[tuple[ctypes.CDLL, type[ctypes.Structure]]] = []


def _libc() -> tuple[ctypes.CDLL, type[ctypes.Structure]]:
    """libc and struct open_how, made on first use: ctypes costs a warm ``rba scan``
    (which imports this module) a tenth of its time, and only openat2 needs it."""
    if not _libc_handle:
        import ctypes

        class OpenHow(ctypes.Structure):
            _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                        ("resolve", ctypes.c_uint64)]  # fmt: skip

        _libc_handle.append((ctypes.CDLL(None, use_errno=True), OpenHow))
    return _libc_handle[0]


def _openat2(root_fd: int, path: str, flags: int) -> int | None:
    """openat2(root_fd, path, RESOLVE_IN_ROOT); None when the kernel lacks it."""
    if _openat2_state == [False]:
        return None
    import ctypes

    libc, open_how = _libc()
    how = open_how(flags | os.O_CLOEXEC, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    fd = int(
        libc.syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(root_fd),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
    )
    if fd >= 0:
        _openat2_state[:] = [True]
        return fd
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM) and not _openat2_state:
        _openat2_state[:] = [False]  # no openat2 here (or a seccomp filter denies it)
        return None
    raise OSError(err, os.strerror(err), path)


def walk_in_root(root_fd: int, path: str, flags: int = os.O_PATH) -> tuple[int, str]:
    """Open ``path`` below ``root_fd`` one component at a time, resolving symlinks and
    ``..`` against that root (as a chroot would): the fallback for kernels without
    openat2, and the way to learn a path's real name inside the root. Returns a new fd
    and that real name. Raises OSError (ELOOP after 40 links)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    stack = [os.dup(root_fd)]  # stack[-1] is the directory we are in; stack[0] the root
    names: list[str] = []  # names[i] is the name of stack[i + 1]
    links = 0
    try:
        while parts:
            part = parts.pop(0)
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                    names.pop()
                continue
            fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                os.close(fd)
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(part, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                    names.clear()
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            if not parts and flags != os.O_PATH:
                os.close(fd)
                fd = os.open(part, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
            stack.append(fd)
            names.append(part)
        real = "/" + "/".join(names)
        if len(stack) == 1 and flags != os.O_PATH:
            return os.open(".", flags | os.O_CLOEXEC, dir_fd=stack[0]), real
        return os.dup(stack[-1]), real
    finally:
        for fd in stack:
            os.close(fd)


def _root_fd(root: str) -> int:
    pid = root.split("/")[2] if root.startswith(f"{PROC}/") else "self"
    with _translated(pid, "root"):
        return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def open_in_root(root: str, path: str, flags: int = os.O_PATH) -> int:
    """Open ``path`` as a process whose root directory is ``root`` would (``root`` is
    ``/proc/PID/root``, or ``/`` for the reader's own). Symlinks, absolute or relative,
    resolve inside ``root``. Returns an fd the caller closes. Raises OSError; a ``root``
    that cannot be opened raises ProcfsError."""
    root_fd = _root_fd(root)
    try:
        fd = _openat2(root_fd, path, flags)
        return fd if fd is not None else walk_in_root(root_fd, path, flags)[0]
    finally:
        os.close(root_fd)


def realpath_in_root(root: str, path: str) -> str:
    """The real name of ``path`` inside ``root``: symlinks and ``..`` resolved there.
    Raises OSError (ProcfsError when ``root`` cannot be opened)."""
    root_fd = _root_fd(root)
    try:
        fd, real = walk_in_root(root_fd, path)
        os.close(fd)
        return real
    finally:
        os.close(root_fd)


def stat_in_root(root: str, path: str) -> os.stat_result:
    """os.stat of ``path`` resolved inside ``root`` (see :func:`open_in_root`)."""
    fd = open_in_root(root, path)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def process_root(pid: int | str) -> str:
    """The path through which ``pid``'s root directory is reached."""
    return f"{PROC}/{pid}/root"
