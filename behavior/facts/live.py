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
from probes.events import EventArray, Flag, Kind, StringTable, comm_text
from probes.lanes import PROCESS_LANES, classify
from probes.procfs import (
    AccessDeniedError,
    ProcfsError,
    read_argv,
    read_exe,
    read_maps,
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
    )


def current_coverage() -> CoverageFact:
    """Whether process memory maps and binary analysis are available here."""
    # Root reads every process's map (the root rule needs exactly those); a user only its own.
    maps = os.geteuid() == 0
    return CoverageFact(
        maps_readable=maps, binary_analysis=True, reason="" if maps else NOT_ROOT_REASON
    )


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
        self._files: queue.Queue[str | None] = queue.Queue()
        self._seen_paths: set[str] = set()
        self._seen_uids: set[int] = set()
        self._packages = packages
        self._cache = cache or FactsCache()
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
        script = resolve_script(pid, word) if word else None
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
            )
        )
        self._want_files([*image.modules, *([script] if script else [])])

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
        self._want_files([exe])

    def _want_files(self, paths: list[str]) -> None:
        for path in paths:
            if path.endswith(" (deleted)") or path.startswith("/memfd:"):
                continue  # no file left to examine (a replaced binary, or memfd code)
            if path not in self._seen_paths:
                self._seen_paths.add(path)
                self._files.put(path)

    # --- the file examiner thread -------------------------------------------------------

    def _file_loop(self) -> None:
        while True:
            path = self._files.get()
            try:
                if path is None:
                    return
                self._examine(path)
            except Exception as e:  # never take the window down; state the gap
                self._emit(GapFact(GAP_FILE_UNREADABLE, f"{path}: {type(e).__name__}: {e}"))
            finally:
                self._files.task_done()

    def _examine(self, path: str) -> None:
        if self._packages is None:
            self._packages = PackageIndex.load()
        try:
            st = os.stat(path)
        except OSError as e:
            self._emit(FileFact(path, None, None, None, error=e.strerror or str(e)))
            self._emit(GapFact(GAP_FILE_UNREADABLE, path))
            return
        self._note_owner(st.st_uid)
        binary, error = self._inspect(path)
        self._emit(
            FileFact(
                path=path,
                stat=PathStat(st.st_uid, st.st_gid, st.st_mode),
                package=self._packages.owner(path),
                binary=binary,
                error=error,
            )
        )
        directory = os.path.dirname(path)
        while directory and directory not in self._seen_paths:
            self._seen_paths.add(directory)
            try:
                dst = os.stat(directory)
                self._note_owner(dst.st_uid)
                self._emit(DirFact(directory, PathStat(dst.st_uid, dst.st_gid, dst.st_mode)))
            except OSError:
                self._emit(DirFact(directory, None))
            parent = os.path.dirname(directory)
            directory = "" if parent == directory else parent

    def _inspect(self, path: str) -> tuple[BinaryFacts | None, str | None]:
        try:
            return self._cache.get_or_inspect(path), None
        except BinaryParseError as e:
            return None, str(e)

    def _note_owner(self, uid: int) -> None:
        if uid in self._seen_uids:
            return
        self._seen_uids.add(uid)
        with contextlib.suppress(KeyError):
            self._emit(UserFact(uid, pwd.getpwuid(uid).pw_name))
