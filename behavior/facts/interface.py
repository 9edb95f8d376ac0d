"""The facts layer's interface: what the rules may know about processes and files.

The rules never touch the live system. Everything they need beyond the event stream is a
*fact*: a frozen, JSON-round-trippable record gathered while the window runs (a process's
memory map read while it lived, the owner and mode of a file and of each directory on its
path, the owning package, the binary verdicts). A :class:`FactSource` delivers facts; the
live one gathers them from ``/proc`` and the file system, a recorded one serves them back
from a trace. Every fact the live source gathers is also handed to an optional sink (the
trace writer), so a replay sees exactly the facts the live run saw and reproduces its
findings byte for byte.
"""

from __future__ import annotations

import abc
import hashlib
import itertools
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from binanalysis.interface import BinaryFacts
from probes.containers import ContainerIdentity
from probes.events import EventArray, StringTable
from probes.procfs import IdRange


class FactError(Exception):
    """Base error of the facts layer (for example a malformed recorded fact)."""


@dataclass(frozen=True)
class PathStat:
    """Owner, group and mode (``st_mode``, including the file type bits) of one path."""

    uid: int
    gid: int
    mode: int


@dataclass(frozen=True)
class HostFact:
    """Who the host is. ``netns`` is the host's network namespace inode: listeners in
    other namespaces (containers, test peers) are not the host's own. ``machine_id``
    (/etc/machine-id) keys finding fingerprints; the OS and addresses go into reports."""

    hostname: str
    kernel: str
    netns: int
    machine_id: str = ""
    os_name: str = ""
    os_version: str = ""
    ips: tuple[str, ...] = ()
    instance_id: str = ""  # the EC2 instance id from DMI ("" off EC2)


@dataclass(frozen=True)
class CoverageFact:
    """What the fact gatherer could read on this machine; ``reason`` says why not."""

    maps_readable: bool
    binary_analysis: bool
    reason: str = ""


@dataclass(frozen=True)
class ProcessFact:
    """One process image (a pid between two execs), read from ``/proc`` while it lived.

    ``key`` identifies the image (pid and the time of the event that revealed it), so a
    pid reused later in the window is a different key. ``modules`` holds the real paths of
    the executable and of every executable file-backed mapping; several facts with the
    same key merge (their modules unite), because libraries loaded later are re-read.
    ``exec_stack`` is True when the ``[stack]`` mapping was executable, None when the
    memory map could not be read (``modules`` then holds only the executable).
    """

    key: str
    pid: int
    ppid: int
    uid: int
    euid: int
    exe: str
    cmdline: tuple[str, ...]
    script: str | None
    modules: tuple[str, ...]
    exec_stack: bool | None
    seen_ns: int  # wall time of the event that revealed the process
    # Namespaces, 0 where they are the gatherer's own (a host process): paths above are
    # in mount namespace ``mnt_ns``; the facts of its files carry the same ``mnt_ns``.
    mnt_ns: int = 0
    net_ns: int = 0
    pid_ns: int = 0
    # The user namespace's id maps, () where it is the gatherer's own: uids above are as
    # the host sees them; :meth:`inner_uid` gives the process's own view.
    uid_map: tuple[IdRange, ...] = ()
    gid_map: tuple[IdRange, ...] = ()
    container: ContainerIdentity | None = None

    def inner_uid(self, host_uid: int) -> int:
        """``host_uid`` as this process's user namespace sees it (the overflow uid 65534
        when the namespace does not map it)."""
        return map_id(self.uid_map, host_uid)

    def inner_gid(self, host_gid: int) -> int:
        """``host_gid`` as this process's user namespace sees it."""
        return map_id(self.gid_map, host_gid)


OVERFLOW_ID = 65534


def map_id(id_map: tuple[IdRange, ...], host_id: int) -> int:
    """A host id seen through a user namespace's map (() = the identity)."""
    if not id_map:
        return host_id
    for r in id_map:
        if r.outer <= host_id < r.outer + r.count:
            return r.inner + host_id - r.outer
    return OVERFLOW_ID


def view_stat(proc: ProcessFact, st: PathStat) -> PathStat:
    """``st`` with its owner and group as ``proc``'s user namespace sees them."""
    if not proc.uid_map and not proc.gid_map:
        return st
    return PathStat(proc.inner_uid(st.uid), proc.inner_gid(st.gid), st.mode)


def uid_view(proc: ProcessFact) -> str:
    """Which view of uids a judgement of ``proc`` used, as evidence states it."""
    if not proc.uid_map:
        return "host"
    ranges = ", ".join(
        f"{r.inner}-{r.inner + r.count - 1} = host {r.outer}-{r.outer + r.count - 1}"
        for r in proc.uid_map
    )
    return f"user namespace ({ranges})"


@dataclass(frozen=True)
class FileFact:
    """A module file: its permissions, owning package (None = unpackaged) and binary
    verdicts (None when the file is not an executable format or was not analysed).
    ``stat`` is None when the file could not be examined; ``error`` says why. ``path``
    is in mount namespace ``mnt_ns`` (0: the gatherer's own), reached through the root of
    a process in it; ``stat`` holds the host's view of the owner."""

    path: str
    stat: PathStat | None
    package: str | None
    binary: BinaryFacts | None
    error: str | None = None
    mnt_ns: int = 0


@dataclass(frozen=True)
class DirFact:
    """A directory on a module's path, with its permissions (None if unreadable), in
    mount namespace ``mnt_ns`` (0: the gatherer's own)."""

    path: str
    stat: PathStat | None
    mnt_ns: int = 0


@dataclass(frozen=True)
class UserFact:
    """The name of a uid, as the host's user database gave it."""

    uid: int
    name: str


@dataclass(frozen=True)
class GapFact:
    """Something the gatherer could not see, e.g. a process that exited before its memory
    map was read. ``kind`` groups gaps for the report; ``subject`` names the instance."""

    kind: str
    subject: str


Fact = Union[HostFact, CoverageFact, ProcessFact, FileFact, DirFact, UserFact, GapFact]
FactSink = Callable[[Fact], None]

GAP_MAPS_GONE = "maps-gone"
GAP_MAPS_DENIED = "maps-denied"
GAP_FILE_UNREADABLE = "file-unreadable"
GAP_GATHER_ERROR = "gather-error"
GAP_FILES_GONE = "files-gone"  # the process (its root) was gone before its files were read


# A window holds this many process images in full; older ones are then folded into
# groups of identical images, so a 24 h window of churn stays within bounded memory.
MAX_FULL_IMAGES = 100_000
MAX_GROUP_PIDS = 20


@dataclass
class ImageGroup:
    """Process images the rules count together: identical executable, script, modules,
    uids and stack mode. A full image is a group of one; ``sample`` is the first image."""

    sample: ProcessFact
    count: int
    first_ns: int
    last_ns: int
    pids: list[int]

    @classmethod
    def of(cls, fact: ProcessFact) -> ImageGroup:
        """The group of one image."""
        return cls(fact, 1, fact.seen_ns, fact.seen_ns, [fact.pid])


def _signature(fact: ProcessFact) -> tuple[object, ...]:
    return (
        fact.exe,
        fact.script,
        fact.modules,
        fact.uid,
        fact.euid,
        fact.exec_stack,
        fact.mnt_ns,
        fact.uid_map,
        fact.container,
    )


def _key_digest(key: str) -> int:
    """A stable 64-bit digest of an image key (unlike hash(), the same in every process)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


@dataclass(eq=False)
class FactSet:
    """All facts of a window, merged and indexed for the rules.

    Adding the same facts in the same order always gives the same set, whether they come
    from the live gatherer or from a trace: folding depends on nothing else."""

    host: HostFact | None = None
    coverage: CoverageFact | None = None
    processes: dict[str, ProcessFact] = field(default_factory=dict)
    files: dict[tuple[int, str], FileFact] = field(default_factory=dict)  # (mnt_ns, path)
    dirs: dict[tuple[int, str], DirFact] = field(default_factory=dict)
    users: dict[int, str] = field(default_factory=dict)
    gaps: dict[str, set[str]] = field(default_factory=dict)
    folded: dict[tuple[object, ...], ImageGroup] = field(default_factory=dict)
    # Identical module lists are shared: a long window holds many images of few programs.
    _module_lists: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    _by_pid: dict[int, str] = field(default_factory=dict)  # pid -> its latest image's key
    # Digests of folded image keys, sorted: 8 bytes per folded image.
    _folded_keys: npt.NDArray[np.uint64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.uint64)
    )

    def add(self, fact: Fact) -> None:
        """Merge one fact. Later host/coverage facts win; a later fact about a folded
        image is dropped (its group keeps what the image had when it was folded)."""
        if isinstance(fact, ProcessFact):
            self._add_process(fact)
        elif isinstance(fact, FileFact):
            self.files[fact.mnt_ns, fact.path] = fact
        elif isinstance(fact, DirFact):
            self.dirs[fact.mnt_ns, fact.path] = fact
        elif isinstance(fact, UserFact):
            self.users[fact.uid] = fact.name
        elif isinstance(fact, GapFact):
            self.gaps.setdefault(fact.kind, set()).add(fact.subject)
        elif isinstance(fact, HostFact):
            self.host = fact
        else:
            self.coverage = fact

    def _add_process(self, fact: ProcessFact) -> None:
        if len(self._folded_keys):
            digest = np.uint64(_key_digest(fact.key))
            at = int(np.searchsorted(self._folded_keys, digest))
            if at < len(self._folded_keys) and self._folded_keys[at] == digest:
                return
        merged = _merge_process(self.processes.get(fact.key), fact)
        modules = self._module_lists.setdefault(merged.modules, merged.modules)
        if modules is not merged.modules or merged.exe is not sys.intern(merged.exe):
            merged = replace(merged, modules=modules, exe=sys.intern(merged.exe))
        self.processes[fact.key] = merged
        latest = self.processes.get(self._by_pid.get(merged.pid, ""))
        if latest is None or latest.seen_ns <= merged.seen_ns:
            self._by_pid[merged.pid] = merged.key
        if len(self.processes) > MAX_FULL_IMAGES:
            self._fold_oldest(len(self.processes) // 10)

    def _fold_oldest(self, n: int) -> None:
        """Fold the ``n`` images added first into their groups."""
        keys = list(itertools.islice(self.processes, n))
        digests = np.array([_key_digest(k) for k in keys], dtype=np.uint64)
        self._folded_keys = np.sort(np.concatenate((self._folded_keys, digests)), kind="stable")
        for key in keys:
            fact = self.processes.pop(key)
            group = self.folded.get(_signature(fact))
            if group is None:
                self.folded[_signature(fact)] = ImageGroup.of(fact)
                continue
            group.count += 1
            group.first_ns = min(group.first_ns, fact.seen_ns)
            group.last_ns = max(group.last_ns, fact.seen_ns)
            if len(group.pids) < MAX_GROUP_PIDS:
                group.pids.append(fact.pid)

    def images(self) -> list[ImageGroup]:
        """Every process image of the window: full ones as groups of one, then the folded."""
        return [ImageGroup.of(p) for p in self.processes.values()] + list(self.folded.values())

    @classmethod
    def of(cls, facts: Iterable[Fact]) -> FactSet:
        """A fact set holding ``facts``."""
        merged = cls()
        for fact in facts:
            merged.add(fact)
        return merged

    def file(self, path: str, mnt_ns: int = 0) -> FileFact | None:
        """The fact of file ``path`` in mount namespace ``mnt_ns``, if gathered."""
        return self.files.get((mnt_ns, path))

    def dir(self, path: str, mnt_ns: int = 0) -> DirFact | None:
        """The fact of directory ``path`` in mount namespace ``mnt_ns``, if gathered."""
        return self.dirs.get((mnt_ns, path))

    def process_of(self, pid: int) -> ProcessFact | None:
        """The latest full image of ``pid`` (None when none was gathered or it was folded)."""
        key = self._by_pid.get(pid)
        return None if key is None else self.processes.get(key)

    def user_name(self, uid: int) -> str:
        """The user name of ``uid``, or the number as text when unknown."""
        return self.users.get(uid, str(uid))


def _merge_process(old: ProcessFact | None, new: ProcessFact) -> ProcessFact:
    if old is None:
        return new
    modules = tuple(sorted(set(old.modules) | set(new.modules)))
    if old.exec_stack is None:
        exec_stack = new.exec_stack
    else:
        exec_stack = old.exec_stack or bool(new.exec_stack)
    first = old if old.seen_ns <= new.seen_ns else new
    return ProcessFact(
        key=old.key,
        pid=old.pid,
        ppid=first.ppid,
        uid=first.uid,
        euid=min(old.euid, new.euid),  # effective uid 0 at any read matters
        exe=first.exe,
        cmdline=first.cmdline or old.cmdline or new.cmdline,
        script=old.script or new.script,
        modules=modules,
        exec_stack=exec_stack,
        seen_ns=first.seen_ns,
        mnt_ns=first.mnt_ns,
        net_ns=first.net_ns,
        pid_ns=first.pid_ns,
        uid_map=first.uid_map,
        gid_map=first.gid_map,
        container=old.container or new.container,
    )


class FactSource(abc.ABC):
    """Delivers the facts of one window. Used as: observe() each batch, then facts()."""

    @abc.abstractmethod
    def observe(self, events: EventArray, strings: StringTable) -> None:
        """Note a batch of events (a live source starts gathering for new processes)."""

    @abc.abstractmethod
    def facts(self, *, timeout: float = 30.0) -> FactSet:
        """Every fact so far, after waiting up to ``timeout`` s for pending gathering."""

    def close(self) -> None:  # noqa: B027 - optional hook, most sources hold nothing
        """Release threads or files. Safe to call twice."""


class RecordedFactSource(FactSource):
    """Facts recorded earlier (by a trace), served back as they were."""

    def __init__(self, facts: Iterable[Fact]) -> None:
        self._facts = FactSet.of(facts)

    def observe(self, events: EventArray, strings: StringTable) -> None:
        pass

    def facts(self, *, timeout: float = 30.0) -> FactSet:
        return self._facts


# --- JSON round trip -----------------------------------------------------------------

_TYPES: dict[str, type[Any]] = {
    "host": HostFact,
    "coverage": CoverageFact,
    "process": ProcessFact,
    "file": FileFact,
    "dir": DirFact,
    "user": UserFact,
    "gap": GapFact,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}


def _stat_to_dict(st: PathStat | None) -> list[int] | None:
    return None if st is None else [st.uid, st.gid, st.mode]


def _stat_from(value: Any) -> PathStat | None:
    if value is None:
        return None
    uid, gid, mode = value
    return PathStat(int(uid), int(gid), int(mode))


def _id_map_to_list(id_map: tuple[IdRange, ...]) -> list[list[int]]:
    return [[r.inner, r.outer, r.count] for r in id_map]


def _id_map_from(value: Any) -> tuple[IdRange, ...]:
    return tuple(IdRange(int(a), int(b), int(c)) for a, b, c in value or ())


def _container_from(value: Any) -> ContainerIdentity | None:
    if value is None:
        return None
    return ContainerIdentity(**{k: str(v) for k, v in value.items()})


def _fields(fact: Fact) -> dict[str, Any]:
    return {f.name: getattr(fact, f.name) for f in fields(fact)}


def fact_to_dict(fact: Fact) -> dict[str, Any]:
    """A JSON-ready dict for ``fact`` with a ``type`` tag; :func:`fact_from_dict` inverts it."""
    out: dict[str, Any] = {"type": _NAMES[type(fact)]}
    if isinstance(fact, FileFact):
        out |= {
            "path": fact.path,
            "stat": _stat_to_dict(fact.stat),
            "package": fact.package,
            "binary": None if fact.binary is None else fact.binary.to_dict(),
            "error": fact.error,
            "mnt_ns": fact.mnt_ns,
        }
    elif isinstance(fact, DirFact):
        out |= {"path": fact.path, "stat": _stat_to_dict(fact.stat), "mnt_ns": fact.mnt_ns}
    elif isinstance(fact, ProcessFact):
        out |= _fields(fact) | {
            "cmdline": list(fact.cmdline),
            "modules": list(fact.modules),
            "uid_map": _id_map_to_list(fact.uid_map),
            "gid_map": _id_map_to_list(fact.gid_map),
            "container": None if fact.container is None else fact.container.to_dict(),
        }
    else:
        out |= _fields(fact)
    return out


def fact_from_dict(data: Mapping[str, Any]) -> Fact:
    """The fact that :func:`fact_to_dict` produced ``data`` from. Raises FactError."""
    try:
        kind = data["type"]
        fields = {k: v for k, v in data.items() if k != "type"}
        if kind == "file":
            binary = fields["binary"]
            return FileFact(
                path=str(fields["path"]),
                stat=_stat_from(fields["stat"]),
                package=fields["package"],
                binary=None if binary is None else BinaryFacts.from_dict(binary),
                error=fields.get("error"),
                mnt_ns=int(fields.get("mnt_ns", 0)),
            )
        if kind == "dir":
            return DirFact(
                path=str(fields["path"]),
                stat=_stat_from(fields["stat"]),
                mnt_ns=int(fields.get("mnt_ns", 0)),
            )
        if kind == "process":  # traces from before namespaces lack the last fields
            fields["cmdline"] = tuple(fields["cmdline"])
            fields["modules"] = tuple(fields["modules"])
            fields["uid_map"] = _id_map_from(fields.get("uid_map"))
            fields["gid_map"] = _id_map_from(fields.get("gid_map"))
            fields["container"] = _container_from(fields.get("container"))
        if kind == "host":
            fields["ips"] = tuple(map(str, fields.get("ips", ())))
        fact: Fact = _TYPES[kind](**fields)
        return fact
    except (KeyError, TypeError, ValueError) as e:
        raise FactError(f"malformed fact record: {e}") from e
