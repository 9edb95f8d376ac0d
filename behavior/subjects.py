"""What a finding is about: typed subjects, their evidence, and their fingerprint.

Every finding names one *subject*: a program talking to a remote endpoint, a listening
port, a file in use, a module of a root process, a login server. A subject is a frozen
record built from smaller ones (:class:`ProcessRef`, :class:`Endpoint`,
:class:`ContainerRef`, :class:`SessionRef`). Three things are derived from it here and
nowhere else:

- **evidence**: the JSON-ready dict a report shows (:meth:`evidence`), and back
  (:func:`subject_from_evidence`, for reports read from JSON);
- **identity**: the fields that make two subjects the same across runs
  (:meth:`identity`): never a pid, a time, a count or an ephemeral port;
- **fingerprint**: a stable string of (host, rule, identity) (:func:`fingerprint`).

docs/identity.md states, per rule, what the identity holds and why. This module imports
nothing of rba, so every layer may read it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Union

FINGERPRINT_VERSION = "rba-fp-1"
UNPACKAGED = "unpackaged"
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", "*", ""})


class SubjectError(ValueError):
    """Evidence that does not hold the subject its rule produces."""


# --- building blocks ------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerRef:
    """The container a process runs in (None on a process reference: the host's own)."""

    id: str
    runtime: str
    name: str = ""
    image: str = ""
    pod: str = ""

    def evidence(self) -> dict[str, Any]:
        """The container as evidence shows it."""
        return {
            "id": self.id,
            "runtime": self.runtime,
            "name": self.name,
            "image": self.image,
            "pod": self.pod,
        }

    @classmethod
    def from_evidence(cls, ev: Any) -> ContainerRef | None:
        """The inverse of :meth:`evidence` (None for null or absent)."""
        if not isinstance(ev, Mapping):
            return None
        return cls(*(str(ev.get(k) or "") for k in ("id", "runtime", "name", "image", "pod")))


@dataclass(frozen=True)
class ProcessRef:
    """A process as findings name it. ``uid`` is None where the rule states the
    effective uid instead (a root process's module)."""

    pid: int
    exe: str = ""
    cmdline: str = ""
    comm: str = ""
    user: str = ""
    uid: int | None = None
    container: ContainerRef | None = None

    @property
    def program(self) -> str:
        """What identifies the program across runs: its executable, else its comm."""
        return self.exe or self.comm

    def evidence(self) -> dict[str, Any]:
        """The process as the ``process`` object of evidence shows it."""
        out: dict[str, Any] = {
            "pid": self.pid,
            "exe": self.exe,
            "cmdline": self.cmdline,
            "comm": self.comm,
            "user": self.user,
            "uid": self.uid,
        }
        if self.container is not None:
            out["container"] = self.container.evidence()
        return out

    @classmethod
    def from_evidence(cls, ev: Any) -> ProcessRef:
        """The inverse of :meth:`evidence`."""
        if not isinstance(ev, Mapping):
            raise SubjectError("process is not an object")
        uid = ev.get("uid")
        return cls(
            pid=_int(ev.get("pid", 0)),
            exe=str(ev.get("exe") or ""),
            cmdline=str(ev.get("cmdline") or ""),
            comm=str(ev.get("comm") or ""),
            user=str(ev.get("user") or ""),
            uid=None if uid is None else _int(uid),
            container=ContainerRef.from_evidence(ev.get("container")),
        )


def _container_id(process: ProcessRef) -> str:
    """A process's container in an identity: the image where known (a container
    re-created from the same image is the same service), else the id; '' on the host."""
    container = process.container
    if container is None:
        return ""
    return container.image or container.name or container.id


@dataclass(frozen=True)
class Endpoint:
    """A remote address and port."""

    address: str
    port: int


@dataclass(frozen=True)
class SessionRef:
    """A login session (utmp) that matched an accepted login."""

    user: str
    tty: str
    remote_host: str


# --- subjects -------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionSubject:
    """A program's cleartext connections to one remote endpoint over one transport
    (the client rules). ``pids`` lists the processes; ``process`` is the first."""

    kind: ClassVar[str] = "connection"
    process: ProcessRef
    pids: tuple[int, ...]
    remote: Endpoint
    transport: str

    def identity(self) -> tuple[object, ...]:
        """(program, container, remote address, remote port, transport)."""
        return (
            self.process.program,
            _container_id(self.process),
            self.remote.address,
            self.remote.port,
            self.transport,
        )

    def evidence(self) -> dict[str, Any]:
        """The subject's part of the evidence."""
        return {
            "process": self.process.evidence(),
            "pids": list(self.pids),
            "remote": {"address": self.remote.address, "port": self.remote.port},
            "transport": self.transport,
        }

    @classmethod
    def from_evidence(cls, ev: Mapping[str, Any]) -> ConnectionSubject:
        """The inverse of :meth:`evidence`."""
        remote = ev.get("remote")
        if not isinstance(remote, Mapping):
            raise SubjectError("remote is not an object")
        return cls(
            process=ProcessRef.from_evidence(ev.get("process")),
            pids=_ints(ev.get("pids")),
            remote=Endpoint(str(remote.get("address") or ""), _int(remote.get("port", 0))),
            transport=str(ev.get("transport") or "tcp"),
        )


def bind_scope(addresses: tuple[str, ...], loopback_only: bool) -> str:
    """Where a listener can be reached from: 'loopback', 'any' (a wildcard address) or
    the addresses it binds, sorted (two services may bind one port on two addresses)."""
    if loopback_only:
        return "loopback"
    if any(a in WILDCARD_ADDRESSES for a in addresses):
        return "any"
    return ",".join(sorted(addresses))


@dataclass(frozen=True)
class ListenerSubject:
    """A listening port of one program, on every address it binds (the listener rules)."""

    kind: ClassVar[str] = "listener"
    port: int
    bind_addresses: tuple[str, ...]
    loopback_only: bool
    process: ProcessRef
    transport: str = "tcp"

    def identity(self) -> tuple[object, ...]:
        """(port, transport, bind scope, program, container): not the pid."""
        return (
            self.port,
            self.transport,
            bind_scope(self.bind_addresses, self.loopback_only),
            self.process.program,
            _container_id(self.process),
        )

    def evidence(self) -> dict[str, Any]:
        """The subject's part of the evidence (``transport`` only when not TCP)."""
        out: dict[str, Any] = {"port": self.port}
        if self.transport != "tcp":
            out["transport"] = self.transport
        out["bind_addresses"] = list(self.bind_addresses)
        out["loopback_only"] = self.loopback_only
        out["process"] = self.process.evidence()
        return out

    @classmethod
    def from_evidence(cls, ev: Mapping[str, Any]) -> ListenerSubject:
        """The inverse of :meth:`evidence`."""
        return cls(
            port=_int(ev.get("port", 0)),
            bind_addresses=tuple(map(str, ev.get("bind_addresses") or ())),
            loopback_only=bool(ev.get("loopback_only")),
            process=ProcessRef.from_evidence(ev.get("process")),
            transport=str(ev.get("transport") or "tcp"),
        )


@dataclass(frozen=True)
class FileSubject:
    """A file in use, with its owning package (None: unpackaged) and the first few
    processes that used it (the file rules)."""

    kind: ClassVar[str] = "file"
    path: str
    package: str | None
    format: str
    processes: tuple[ProcessRef, ...]
    process_count: int
    namespace: str = ""  # "" on the host; else its container, or "mnt:INODE"

    def identity(self) -> tuple[object, ...]:
        """(path, namespace): the package may change on an upgrade, the file is the
        same; the same path in another container's image is another file."""
        return (self.path, self.namespace)

    def evidence(self) -> dict[str, Any]:
        """The subject's part of the evidence (``namespace`` only off the host)."""
        out: dict[str, Any] = {
            "path": self.path,
            "package": self.package or UNPACKAGED,
            "format": self.format,
            "processes": [_user_evidence(p) for p in self.processes],
            "process_count": self.process_count,
        }
        if self.namespace:
            out["namespace"] = self.namespace
        return out

    @classmethod
    def from_evidence(cls, ev: Mapping[str, Any]) -> FileSubject:
        """The inverse of :meth:`evidence`."""
        package = str(ev.get("package") or UNPACKAGED)
        users = ev.get("processes") or ()
        return cls(
            path=str(ev.get("path") or ""),
            package=None if package == UNPACKAGED else package,
            format=str(ev.get("format") or "other"),
            processes=tuple(_user_from(u) for u in users if isinstance(u, Mapping)),
            process_count=_int(ev.get("process_count", 0)),
            namespace=str(ev.get("namespace") or ""),
        )


def _user_evidence(process: ProcessRef) -> dict[str, Any]:
    out: dict[str, Any] = {"pid": process.pid, "exe": process.exe}
    if process.container is not None:
        out["container"] = process.container.evidence()
    return out


def _user_from(ev: Mapping[str, Any]) -> ProcessRef:
    container = ContainerRef.from_evidence(ev.get("container"))
    return ProcessRef(_int(ev.get("pid", 0)), str(ev.get("exe") or ""), container=container)


@dataclass(frozen=True)
class ModuleSubject:
    """A module (executable, interpreter script or shared object) of a root process's
    program (root-process-insecure-permissions). ``process.uid`` is unused: ``euid``."""

    kind: ClassVar[str] = "module"
    process: ProcessRef
    pids: tuple[int, ...]
    euid: int
    module: str
    module_role: str

    def identity(self) -> tuple[object, ...]:
        """(program, container, module path)."""
        return (self.process.exe, _container_id(self.process), self.module)

    def evidence(self) -> dict[str, Any]:
        """The subject's part of the evidence: the process's fields at the top level."""
        out: dict[str, Any] = {
            "pid": self.process.pid,
            "pids": list(self.pids),
            "user": self.process.user,
            "euid": self.euid,
            "exe": self.process.exe,
            "cmdline": self.process.cmdline,
        }
        if self.process.container is not None:
            out["container"] = self.process.container.evidence()
        return out | {"module": self.module, "module_role": self.module_role}

    @classmethod
    def from_evidence(cls, ev: Mapping[str, Any]) -> ModuleSubject:
        """The inverse of :meth:`evidence`."""
        process = ProcessRef(
            pid=_int(ev.get("pid", 0)),
            exe=str(ev.get("exe") or ""),
            cmdline=str(ev.get("cmdline") or ""),
            user=str(ev.get("user") or ""),
            container=ContainerRef.from_evidence(ev.get("container")),
        )
        return cls(
            process=process,
            pids=_ints(ev.get("pids")),
            euid=_int(ev.get("euid", 0)),
            module=str(ev.get("module") or ""),
            module_role=str(ev.get("module_role") or ""),
        )


@dataclass(frozen=True)
class LoginSubject:
    """Logins a cleartext login server started (insecure-login-accepted): the server
    (``server`` is its comm or exe), the login program, and a matching session."""

    kind: ClassVar[str] = "login"
    protocol: str
    server: str
    server_pid: int
    program: str
    pids: tuple[int, ...]
    basis: str = "program"
    session: SessionRef | None = None

    @property
    def process(self) -> ProcessRef:
        """The server process."""
        return ProcessRef(self.server_pid, comm=self.server)

    def identity(self) -> tuple[object, ...]:
        """(protocol, server program): not the client, which differs every login."""
        return (self.protocol, self.server)

    def evidence(self) -> dict[str, Any]:
        """The subject's part of the evidence."""
        out: dict[str, Any] = {
            "protocol": self.protocol,
            "server": self.server,
            "server_pid": self.server_pid,
            "program": self.program,
            "pids": list(self.pids),
            "basis": self.basis,
        }
        if self.session is not None:
            session = self.session
            out |= {"user": session.user, "tty": session.tty, "remote_host": session.remote_host}
        return out

    @classmethod
    def from_evidence(cls, ev: Mapping[str, Any]) -> LoginSubject:
        """The inverse of :meth:`evidence`."""
        session = None
        if "remote_host" in ev or "tty" in ev:
            session = SessionRef(
                str(ev.get("user") or ""), str(ev.get("tty") or ""), str(ev.get("remote_host"))
            )
        return cls(
            protocol=str(ev.get("protocol") or ""),
            server=str(ev.get("server") or ""),
            server_pid=_int(ev.get("server_pid", 0)),
            program=str(ev.get("program") or ""),
            pids=_ints(ev.get("pids")),
            basis=str(ev.get("basis") or "program"),
            session=session,
        )


Subject = Union[ConnectionSubject, ListenerSubject, FileSubject, ModuleSubject, LoginSubject]
SUBJECT_TYPES: tuple[type[Any], ...] = (
    ConnectionSubject,
    ListenerSubject,
    FileSubject,
    ModuleSubject,
    LoginSubject,
)
_BY_KIND: dict[str, Any] = {cls.kind: cls for cls in SUBJECT_TYPES}

# Which subject each rule names (docs/rules.md ids). A rule not listed has no typed subject.
RULE_SUBJECTS: dict[str, str] = {
    "insecure-client-login": "connection",
    "insecure-client-general": "connection",
    "unused-listening-port": "listener",
    "insecure-server-protocol": "listener",
    "software-without-dep": "file",
    "software-without-stack-cookies": "file",
    "software-without-aslr": "file",
    "software-without-relro": "file",
    "root-process-insecure-permissions": "module",
    "insecure-login-accepted": "login",
}


def evidence_of(subject: Subject, details: Mapping[str, Any]) -> dict[str, Any]:
    """A finding's evidence: the subject's fields, then what the rule observed about it
    (``details``: reasons, verdict bases, durations). The one place evidence is built."""
    return subject.evidence() | dict(details)


def subject_from_evidence(rule_id: str, evidence: Mapping[str, Any]) -> Subject | None:
    """The subject a report's evidence names (None for a rule with no typed subject).
    Raises SubjectError when the evidence does not have the rule's shape."""
    kind = RULE_SUBJECTS.get(rule_id)
    if kind is None:
        return None
    try:
        subject: Subject = _BY_KIND[kind].from_evidence(evidence)
    except (TypeError, ValueError, AttributeError) as e:
        raise SubjectError(f"{rule_id}: evidence is not a {kind}: {e}") from e
    return subject


# --- fingerprints ---------------------------------------------------------------------


def host_key(machine_id: str, hostname: str) -> str:
    """The host part of a fingerprint: the machine id (stable across renames and
    reboots), else the host name where a host has no machine id."""
    return f"machine-id:{machine_id}" if machine_id else f"hostname:{hostname}"


def fingerprint(host: str, rule_id: str, subject: Subject) -> str:
    """A stable 32-hex-digit string for (host key, rule, subject identity)."""
    material = json.dumps(
        [FINGERPRINT_VERSION, host, rule_id, subject.kind, list(subject.identity())],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SubjectError(f"not an integer: {value!r}")
    return int(value)


def _ints(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SubjectError(f"not a list of integers: {value!r}")
    return tuple(_int(v) for v in value)


def processes_of(subject: Subject) -> tuple[ProcessRef, ...]:
    """Every process a subject names: its owner, client or server, or a file's users."""
    if isinstance(subject, FileSubject):
        return subject.processes
    return (subject.process,)
