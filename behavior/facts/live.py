"""The live fact source: gathers process and file facts from this host while the window
runs, because short-lived processes must not escape.

On every exec (and every process snapshot) a reader thread reads ``/proc/<pid>`` at
once, then again shortly after (the dynamic loader maps libraries a few milliseconds
after exec) and again on a slow periodic rescan (``dlopen`` later in life). A second
thread examines each new module file once: owner, group and mode of the file and of each
directory on its path, the owning package, and binanalysis's verdicts (through its
stat-keyed cache). Every fact goes into the window's :class:`FactSet` and to the sink.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import pwd
import queue
import socket
import threading
import time
from dataclasses import dataclass

import numpy as np

from behavior.facts import hostid
from behavior.facts.interface import (
    GAP_FILE_UNREADABLE,
    GAP_FILES_GONE,
    GAP_GATHER_ERROR,
    GAP_MAPS_DENIED,
    GAP_MAPS_GONE,
    CoverageFact,
    DirFact,
    Fact,
    FactSet,
    FactSink,
    FactSource,
    FileFact,
    GapFact,
    HostFact,
    PathStat,
    ProcessFact,
    UserFact,
)
from behavior.facts.packages import PackageIndex
from behavior.facts.scripts import resolve_script, script_argument
from binanalysis import BinaryFacts, BinaryParseError, FactsCache
from probes.common import RecentMap
from probes.containers import ContainerCatalog, ContainerIdentity
from probes.events import EventArray, Flag, Kind, StringTable, comm_text
from probes.lanes import PROCESS_LANES, classify
from probes.procfs import (
    AccessDeniedError,
    IdRange,
    Namespaces,
    ProcessGoneError,
    ProcfsError,
    open_in_root,
    process_root,
    read_argv,
    read_exe,
    read_id_map,
    read_maps,
    read_namespaces,
    read_status,
)

# After an exec: read at once, then once the loader has mapped the libraries, then later.
REREAD_DELAYS_S = (0.0, 0.03, 0.3, 3.0)
RESCAN_INTERVAL_S = 15.0
MAX_RECENT_EXITS = 65536  # exits remembered to recognise late poll snapshots
NOT_ROOT_REASON = "not root: process memory maps unreadable"


def current_host() -> HostFact:
    """This host's identity, read now."""
    try:
        netns = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        netns = 0
    os_name, os_version = hostid.os_release()
    return HostFact(
        hostname=socket.gethostname(),
        kernel=os.uname().release,
        netns=netns,
        machine_id=hostid.machine_id(),
        os_name=os_name,
        os_version=os_version,
        ips=hostid.host_ips(),
        instance_id=hostid.ec2_instance_id(),
    )


def _layer_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _own_namespaces() -> Namespaces:
    try:
        return read_namespaces("self")
    except ProcfsError:
        return Namespaces(0, 0, 0, 0)


def _id_map(pid: int | str, kind: str) -> tuple[IdRange, ...]:
    try:
        return read_id_map(pid, kind)
    except ProcfsError:
        return ()


def current_coverage() -> CoverageFact:
    """Whether process memory maps and binary analysis are available here."""
    # Root reads every process's map (the root rule needs exactly those); a user only its own.
    maps = os.geteuid() == 0
    return CoverageFact(
        maps_readable=maps, binary_analysis=True, reason="" if maps else NOT_ROOT_REASON
    )


@dataclass(frozen=True)
class _World:
    """A process's namespaces and container, normalised against the gatherer's own:
    0 (and ()) where they are the same, so a host process's facts hold no inode."""

    mnt_ns: int = 0
    net_ns: int = 0
    pid_ns: int = 0
    uid_map: tuple[IdRange, ...] = ()
    gid_map: tuple[IdRange, ...] = ()
    container: ContainerIdentity | None = None


@dataclass(frozen=True)
class _Want:
    """A file to examine: its path in mount namespace ``mnt_ns``, reached through the
    root of process ``pid`` (any process in that namespace)."""

    mnt_ns: int
    path: str
    pid: int


@dataclass
class _Image:
    """A process image being followed: its key, the event's view, what was read so far."""

    key: str
    pid: int
    ppid: int
    uid: int
    euid: int
    exe_hint: str  # the exec's filename (or snapshot exe) from the event
    cmdline_hint: str
    comm: str
    seen_ns: int
    polled: bool = False  # first met by polling (a PROC_SNAPSHOT), not at its exec
    exe: str | None = None  # real path read from /proc (identity check for re-reads)
    modules: frozenset[str] = frozenset()
    reads: int = 0
    done: bool = False


def _polled_after(image: _Image, exec_ns: int, filename: str, cmdline: str) -> bool:
    """Whether ``image``, met by polling, is the one this exec started (the two sources'
    batches arrive in either order). A poll stamps its start, so an exec during the poll
    is recognised by its program and command line instead of by time."""
    if not image.polled:
        return False
    if exec_ns <= image.seen_ns:
        return True
    same_exe = os.path.isabs(filename) and os.path.realpath(filename) == image.exe_hint
    return same_exe and bool(cmdline) and cmdline == image.cmdline_hint


class LiveFactSource(FactSource):
    """Gathers facts from ``/proc`` and the file system for the processes of a window."""

    def __init__(
        self,
        *,
        host: HostFact | None = None,
        sink: FactSink | None = None,
        cache: FactsCache | None = None,
        packages: PackageIndex | None = None,
        coverage: CoverageFact | None = None,
    ) -> None:
        self._sink = sink
        self._set = FactSet()
        self._lock = threading.Lock()
        self._images: dict[int, _Image] = {}  # pid -> current image
        self._forks: set[int] = set()  # forked children that have not exec'd yet
        # pid -> when it exited, for recent exits: a poll taken before an exit can be
        # delivered after it, and must not start a second image of the process.
        self._exits: RecentMap[int, int] = RecentMap(MAX_RECENT_EXITS)
        self._tasks: list[tuple[float, int, _Image]] = []
        self._task_seq = 0
        self._wake = threading.Condition()
        self._files: queue.Queue[_Want | None] = queue.Queue()
        self._seen_paths: set[tuple[int, str]] = set()
        self._own_ns = _own_namespaces()
        self._own_maps = (_id_map("self", "uid_map"), _id_map("self", "gid_map"))
        self._catalog = ContainerCatalog()
        self._root_packages: dict[int, PackageIndex] = {}  # mnt_ns -> its dpkg index
        # Verdicts of files in other mount namespaces by (inode, size, mtime, ctime): each
        # container's overlay has its own st_dev, but a file of a shared image layer keeps
        # its inode and times, so the layer is inspected once, not once per container.
        self._layer_files: dict[tuple[int, int, int, int], BinaryFacts] = {}
        self._seen_uids: set[int] = set()
        self._packages = packages
        self._cache = cache if cache is not None else FactsCache()  # an empty one is falsy
        self._closed = threading.Event()
        self._busy = 0  # tasks taken but not finished (both threads)
        self._frozen = False
        self.sink_error: str | None = None  # the first error the sink raised, if any
        self._emit(host or current_host())
        self._coverage = coverage or current_coverage()
        self._emit(self._coverage)
        self._threads = [
            threading.Thread(target=self._process_loop, name="rba-proc-facts", daemon=True),
            threading.Thread(target=self._file_loop, name="rba-file-facts", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # --- FactSource -----------------------------------------------------------------

    def observe(self, events: EventArray, strings: StringTable) -> None:
        self._note_users(events)
        wanted = np.isin(classify(events), PROCESS_LANES)
        if not wanted.any():
            return
        rows = events[wanted]
        now = time.monotonic()
        with self._wake:
            for row in rows:
                self._note_row(row, strings, now)
            self._wake.notify()

    def facts(self, *, timeout: float = 30.0) -> FactSet:
        deadline = time.monotonic() + timeout
        with self._wake:
            # The window is over: do every pending read now rather than at its due time.
            self._tasks = [(0.0, seq, image) for _, seq, image in self._tasks]
            heapq.heapify(self._tasks)
            self._wake.notify()
        while time.monotonic() < deadline:
            with self._wake:
                idle = not self._tasks and self._busy == 0 and self._files.unfinished_tasks == 0
            if idle:
                break
            time.sleep(0.01)
        with self._lock:
            self._frozen = True  # nothing changes the set from now on: no copy needed
            return self._set

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with self._wake:
            self._wake.notify_all()
        self._files.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    # --- bookkeeping on the feeding thread ------------------------------------------------

    def _emit(self, fact: Fact) -> None:
        with self._lock:
            if self._frozen:
                return  # facts() was answered: a later fact would differ from the report
            self._set.add(fact)
        if self._sink is not None:
            try:
                self._sink(fact)
            except Exception as e:  # a failing recorder must not stop the gathering
                self.sink_error = self.sink_error or f"{type(e).__name__}: {e}"

    def _note_users(self, events: EventArray) -> None:
        uids = np.unique(np.concatenate((events["uid"], events["euid"])))
        for uid in uids.tolist():
            if uid in self._seen_uids:
                continue
            self._seen_uids.add(uid)
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                continue
            self._emit(UserFact(uid, name))

    def _note_row(self, row: np.void, strings: StringTable, now: float) -> None:
        pid = int(row["pid"])
        kind = int(row["kind"])
        if kind == Kind.EXIT:
            self._forks.discard(pid)
            image = self._images.pop(pid, None)
            if image is not None:
                image.done = image.reads > 0
                self._exits.put(pid, int(row["ts_wall"]))
            return
        if kind == Kind.FORK:
            self._exits.pop(pid)  # a new process with a recycled pid
            self._forks.add(pid)  # the parent's image, until the child execs
            return
        exe_hint = strings.get(int(row["str_a"]))
        cmdline_hint = strings.get(int(row["str_b"]))
        old = self._images.get(pid)
        if kind == Kind.PROC_SNAPSHOT:
            if old is not None or pid in self._forks or not exe_hint:
                return  # already followed, a fork child, or a kernel thread
            exited_at = self._exits.get(pid)
            if exited_at is not None and int(row["ts_wall"]) <= exited_at:
                return  # a poll from before the pid's exit, delivered after it
            parent = self._images.get(int(row["ppid"]))
            if parent and (parent.exe_hint, parent.cmdline_hint) == (exe_hint, cmdline_hint):
                self._forks.add(pid)  # polling met a fork child before its exec
                return
            key = f"{pid}@{int(row['aux'])}"
        else:
            if old is not None and _polled_after(old, int(row["ts_wall"]), exe_hint, cmdline_hint):
                return  # polling met this image before the exec's event arrived
            key = f"{pid}@{int(row['ts_wall'])}"
        image = _Image(
            key=key,
            pid=pid,
            ppid=int(row["ppid"]),
            uid=int(row["uid"]),
            euid=int(row["euid"]),
            exe_hint=exe_hint,
            cmdline_hint=cmdline_hint,
            comm=comm_text(bytes(row["comm"])),
            seen_ns=int(row["ts_wall"]),
            polled=kind == Kind.PROC_SNAPSHOT,
        )
        if old is not None:
            old.done = True  # the pid exec'd: the old image is gone
        self._images[pid] = image
        self._forks.discard(pid)
        self._exits.pop(pid)
        delays = (
            REREAD_DELAYS_S
            if kind == Kind.EXEC or not int(row["flags"]) & Flag.SNAPSHOT
            else (0.0,)
        )
        for delay in delays:
            self._schedule(image, now + delay)

    def _schedule(self, image: _Image, due: float) -> None:
        self._task_seq += 1
        heapq.heappush(self._tasks, (due, self._task_seq, image))

    # --- the process reader thread -------------------------------------------------------

    def _process_loop(self) -> None:
        next_rescan = time.monotonic() + RESCAN_INTERVAL_S
        while not self._closed.is_set():
            with self._wake:
                now = time.monotonic()
                if now >= next_rescan:
                    for image in self._images.values():
                        self._schedule(image, now)
                    next_rescan = now + RESCAN_INTERVAL_S
                if not self._tasks or self._tasks[0][0] > now:
                    wait = self._tasks[0][0] - now if self._tasks else RESCAN_INTERVAL_S
                    self._wake.wait(timeout=min(wait, next_rescan - now))
                    continue
                _, _, image = heapq.heappop(self._tasks)
                self._busy += 1
            try:
                self._read_image(image)
            except Exception as e:  # a fact gatherer must never take the window down
                self._emit(GapFact(GAP_GATHER_ERROR, f"pid {image.pid}: {type(e).__name__}: {e}"))
            finally:
                with self._wake:
                    self._busy -= 1

    def _read_image(self, image: _Image) -> None:
        if image.done and image.reads:
            return
        pid = image.pid
        if self._images.get(pid) is not image and not image.reads:
            # The pid exec'd again before its first read: /proc shows the newer image.
            self._read_failed(image, gap=None)
            return
        try:
            exe = read_exe(pid)
            if image.exe is not None and exe != image.exe:
                image.done = True  # exec'd into something else; its own EXEC follows
                return
            maps = read_maps(pid) if self._coverage.maps_readable else None
            argv = read_argv(pid)
            status = read_status(pid)
        except AccessDeniedError:
            self._read_failed(image, GAP_MAPS_DENIED)
            return
        except ProcfsError:
            self._read_failed(image, GAP_MAPS_GONE)
            return
        image.exe = exe
        modules = frozenset((exe, *(maps.modules if maps else ())))
        first = image.reads == 0
        image.reads += 1
        if not first and modules <= image.modules:
            return
        image.modules = image.modules | modules
        word = script_argument(exe, argv)
        world = self._world(pid)
        root = process_root(pid) if world.mnt_ns else "/"  # "/" outlives the process
        script = resolve_script(pid, word, root) if word else None
        self._emit(
            ProcessFact(
                key=image.key,
                pid=pid,
                ppid=status.ppid,
                uid=status.uid,
                euid=min(status.euid, image.euid),
                exe=exe,
                cmdline=argv,
                script=script,
                modules=tuple(sorted(image.modules)),
                exec_stack=maps.exec_stack if maps else None,
                seen_ns=image.seen_ns,
                mnt_ns=world.mnt_ns,
                net_ns=world.net_ns,
                pid_ns=world.pid_ns,
                uid_map=world.uid_map,
                gid_map=world.gid_map,
                container=world.container,
            )
        )
        self._want_files([*image.modules, *([script] if script else [])], world.mnt_ns, pid)

    def _world(self, pid: int) -> _World:
        """The namespaces, id maps and container of ``pid`` (the gatherer's own where
        they cannot be read: a process gone in between keeps the facts read so far)."""
        try:
            ns = read_namespaces(pid)
            maps = (read_id_map(pid, "uid_map"), read_id_map(pid, "gid_map"))
            container = self._catalog.identify(pid)
        except ProcfsError:
            return _World()
        own = self._own_ns

        def local(value: int, mine: int) -> int:
            return 0 if value in (0, mine) else value

        return _World(
            mnt_ns=local(ns.mnt, own.mnt),
            net_ns=local(ns.net, own.net),
            pid_ns=local(ns.pid, own.pid),
            uid_map=() if maps[0] == self._own_maps[0] else maps[0],
            gid_map=() if maps[1] == self._own_maps[1] else maps[1],
            container=container,
        )

    def _read_failed(self, image: _Image, gap: str | None) -> None:
        """The process could not be read: keep what the event said about it."""
        image.done = True
        if image.reads:
            return
        image.reads += 1
        exe = os.path.realpath(image.exe_hint) if image.exe_hint else ""
        if gap is not None:
            self._emit(GapFact(gap, f"pid {image.pid} ({image.comm})"))
        if not exe:
            return
        self._emit(
            ProcessFact(
                key=image.key,
                pid=image.pid,
                ppid=image.ppid,
                uid=image.uid,
                euid=image.euid,
                exe=exe,
                cmdline=(),
                script=None,
                modules=(exe,),
                exec_stack=None,
                seen_ns=image.seen_ns,
            )
        )
        self._want_files([exe], 0, 0)

    def _want_files(self, paths: list[str], mnt_ns: int, pid: int) -> None:
        for path in paths:
            if path.endswith(" (deleted)") or path.startswith("/memfd:"):
                continue  # no file left to examine (a replaced binary, or memfd code)
            if (mnt_ns, path) not in self._seen_paths:
                self._seen_paths.add((mnt_ns, path))
                self._files.put(_Want(mnt_ns, path, pid))

    # --- the file examiner thread -------------------------------------------------------

    def _file_loop(self) -> None:
        while True:
            want = self._files.get()
            try:
                if want is None:
                    return
                self._examine(want)
            except Exception as e:  # never take the window down; state the gap
                subject = f"{want.path if want else ''}: {type(e).__name__}: {e}"
                self._emit(GapFact(GAP_FILE_UNREADABLE, subject))
            finally:
                self._files.task_done()

    def _examine(self, want: _Want) -> None:
        """Stat and inspect one file, and stat each directory on its path, all inside
        the root of the namespace the process saw them in."""
        path, ns = want.path, want.mnt_ns
        root = process_root(want.pid) if ns else "/"
        try:
            fd = open_in_root(root, path)
        except ProcessGoneError:
            gone = "process gone before its files could be read"
            self._emit(FileFact(path, None, None, None, error=gone, mnt_ns=ns))
            self._emit(GapFact(GAP_FILES_GONE, f"pid {want.pid}: {path}"))
            return
        except (OSError, ProcfsError) as e:
            why = (e.strerror if isinstance(e, OSError) else None) or str(e)
            self._emit(FileFact(path, None, None, None, error=why, mnt_ns=ns))
            self._emit(GapFact(GAP_FILE_UNREADABLE, path))
            return
        try:
            st = os.fstat(fd)
            self._note_owner(st.st_uid)
            binary, error = self._inspect(f"/proc/self/fd/{fd}", path, st if ns else None)
        finally:
            os.close(fd)
        self._emit(
            FileFact(
                path=path,
                stat=PathStat(st.st_uid, st.st_gid, st.st_mode),
                package=self._package_index(ns, root).owner(path),
                binary=binary,
                error=error,
                mnt_ns=ns,
            )
        )
        self._examine_dirs(path, ns, root)

    def _examine_dirs(self, path: str, ns: int, root: str) -> None:
        directory = os.path.dirname(path)
        while directory and (ns, directory) not in self._seen_paths:
            self._seen_paths.add((ns, directory))
            try:
                fd = open_in_root(root, directory)
                try:
                    dst = os.fstat(fd)
                finally:
                    os.close(fd)
                self._note_owner(dst.st_uid)
                mode = PathStat(dst.st_uid, dst.st_gid, dst.st_mode)
                self._emit(DirFact(directory, mode, mnt_ns=ns))
            except (OSError, ProcfsError):
                self._emit(DirFact(directory, None, mnt_ns=ns))
            parent = os.path.dirname(directory)
            directory = "" if parent == directory else parent

    def _package_index(self, ns: int, root: str) -> PackageIndex:
        """The host's package index, or the dpkg database inside another root."""
        if not ns:
            if self._packages is None:
                self._packages = PackageIndex.load()
            return self._packages
        index = self._root_packages.get(ns)
        if index is None:
            index = self._root_packages[ns] = PackageIndex.load_in_root(root)
        return index

    def _inspect(
        self, opened: str, path: str, layer: os.stat_result | None
    ) -> tuple[BinaryFacts | None, str | None]:
        """binanalysis's verdicts of the file open at ``opened`` (through its stat-keyed
        cache, and for a container's file, ``layer`` given, the layer map), named ``path``."""
        key = None if layer is None else _layer_key(layer)
        known = self._layer_files.get(key) if key else None
        if known is not None:
            return known.with_path(path), None
        try:
            found = self._cache.get_or_inspect(opened)
        except BinaryParseError as e:
            return None, str(e)
        if key:
            self._layer_files[key] = found
        return found.with_path(path), None

    def _note_owner(self, uid: int) -> None:
        if uid in self._seen_uids:
            return
        self._seen_uids.add(uid)
        with contextlib.suppress(KeyError):
            self._emit(UserFact(uid, pwd.getpwuid(uid).pw_name))
