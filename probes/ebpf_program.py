"""What ``probes/ebpf_program.c`` contains: its tracepoint programs and maps, declared.

The loss accounting rests on these declarations: a kernel-skipped run of a program that
emits events may have cost one, and is counted as a lost event; a skipped run of any other
program is stated as a gap. ``tests/probes/test_ebpf_program.py`` checks that every
``TRACEPOINT_PROBE`` and map in the C file is declared here exactly once, and that the
content-only ones are compiled only with content capture.
"""

from __future__ import annotations

import atexit
import enum
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCE_PATH = Path(__file__).with_name("ebpf_program.c")
DEFAULT_RINGBUF_PAGES = 4096  # 16 MiB: a 20,000-connect burst fits even if we stall


class Role(enum.Enum):
    """What a tracepoint program is for."""

    EVENTS = "events"  # reserves events in the ring buffer (and may feed content too)
    STATE = "state"  # keeps per-task or per-fd state for the event programs
    CONTENT = "content"  # exists only to capture first payloads (probes/content.py)


@dataclass(frozen=True)
class Tracepoint:
    """One ``TRACEPOINT_PROBE(category, event)`` of the C program."""

    category: str
    event: str
    role: Role

    @property
    def name(self) -> str:
        """``category:event``, as tracefs and bcc spell it."""
        return f"{self.category}:{self.event}"

    @property
    def function(self) -> str:
        """The C function bcc's ``TRACEPOINT_PROBE`` macro defines."""
        return f"tracepoint__{self.category}__{self.event}"

    @property
    def emits_events(self) -> bool:
        """Could a skipped run of this program have cost an event?"""
        return self.role is Role.EVENTS

    def loaded(self, content: bool) -> bool:
        """Is this program compiled when content capture is ``content``?"""
        return content or self.role is not Role.CONTENT


def _tracepoints(role: Role, category: str, *events: str) -> tuple[Tracepoint, ...]:
    return tuple(Tracepoint(category, event, role) for event in events)


TRACEPOINTS: tuple[Tracepoint, ...] = (
    *_tracepoints(
        Role.EVENTS, "sched", "sched_process_exec", "sched_process_fork", "sched_process_exit"
    ),
    *_tracepoints(Role.EVENTS, "sock", "inet_sock_set_state"),
    *_tracepoints(
        Role.EVENTS,
        "syscalls",
        *("sys_enter_sendto", "sys_enter_sendmsg", "sys_enter_sendmmsg"),
        *("sys_enter_connect", "sys_enter_bind"),
    ),
    *_tracepoints(
        Role.STATE,
        "syscalls",
        *("sys_enter_clone", "sys_enter_clone3", "sys_enter_exit_group"),
        *("sys_enter_socket", "sys_exit_socket", "sys_exit_accept4"),
    ),
    *_tracepoints(
        Role.CONTENT,
        "syscalls",
        *("sys_exit_connect", "sys_enter_accept4", "sys_enter_write"),
        *("sys_enter_read", "sys_exit_read", "sys_enter_recvfrom", "sys_exit_recvfrom"),
        *("sys_enter_recvmsg", "sys_exit_recvmsg"),
    ),
)

BY_FUNCTION = {tp.function: tp for tp in TRACEPOINTS}


@dataclass(frozen=True)
class Map:
    """One BPF map of the C program."""

    name: str
    content_only: bool = False
    # Per-task or per-socket state, emptied when a loaded program is reused for a new
    # window: an fd or pid reused in between must not inherit its predecessor's marks.
    window_state: bool = False

    def loaded(self, content: bool) -> bool:
        """Does this map exist when content capture is ``content``?"""
        return content or not self.content_only

    @property
    def key(self) -> bytes:
        """The name as bcc's tables are indexed."""
        return self.name.encode()


MAPS: tuple[Map, ...] = (
    Map("events"),  # the event ring buffer
    Map("lost"),  # per-CPU failed reserves
    Map("attempts"),  # per-CPU attempted reserves
    Map("window"),  # the gate: 1 while a window is open
    *(Map(name, window_state=True) for name in ("parent_of", "clone_flags", "exit_codes")),
    *(Map(name, window_state=True) for name in ("socket_args", "fd_kind")),
    Map("payloads", content_only=True),  # the first-payload ring buffer
    Map("payloads_lost", content_only=True),
    Map("connecting", content_only=True),  # per CPU: the last connect() entered
    *(
        Map(name, content_only=True, window_state=True)
        for name in ("conns", "accepting", "reading", "datagram_seen")
    ),
    # who wrote first to each UDP peer, and the datagram receives in flight
    *(Map(name, content_only=True, window_state=True) for name in ("udp_peers", "receiving_from")),
)


def tracepoints(content: bool) -> tuple[Tracepoint, ...]:
    """The programs compiled with content capture on or off."""
    return tuple(tp for tp in TRACEPOINTS if tp.loaded(content))


def window_state_maps(content: bool) -> tuple[Map, ...]:
    """The maps to empty before a reused program's next window."""
    return tuple(m for m in MAPS if m.window_state and m.loaded(content))


def cflags(ringbuf_pages: int, content: bool) -> list[str]:
    """The compiler flags of a program with these settings."""
    return [f"-DRBA_RINGBUF_PAGES={ringbuf_pages}", f"-DRBA_CONTENT={int(content)}"]


class _Preload:
    """A compile started ahead of need, in a thread (bcc's compiler runs without the
    GIL), so that it overlaps the imports and set-up of the command that will use it."""

    def __init__(self, flags: list[str]) -> None:
        self.flags = flags
        self.bpf: Any = None
        self._thread = threading.Thread(target=self._run, name="rba-ebpf-compile", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            import bcc

            self.bpf = bcc.BPF(text=SOURCE_PATH.read_bytes(), cflags=self.flags)
        except Exception:  # the load that needs it retries, and says why
            self.bpf = None

    def take(self) -> Any:
        self._thread.join()
        return self.bpf


_preloads: list[_Preload] = []  # at most one, not yet taken


def preload(content: bool) -> None:
    """Start compiling and loading the default program now, when it will probably be
    needed (as root); :func:`take_preloaded` hands it over. Without root, nothing."""
    if not _preloads and os.geteuid() == 0:
        atexit.register(_wait_for_untaken)
        _preloads.append(_Preload(cflags(DEFAULT_RINGBUF_PAGES, content)))


def _wait_for_untaken() -> None:
    """At exit, wait for a compile nobody took (the command failed on its arguments, say):
    an interpreter torn down under a running LLVM crashes the process ("pure virtual
    method called", SIGSEGV) instead of exiting with its status. The program is left to
    the kernel, which unloads it when the process's descriptors close."""
    while _preloads:
        _preloads.pop().take()


def take_preloaded(ringbuf_pages: int, content: bool) -> Any:
    """The preloaded ``bcc.BPF`` with these settings once it is ready, or None (none
    was started, it failed, it had other settings, or it was taken already)."""
    try:
        pending = _preloads.pop()
    except IndexError:
        return None
    bpf = pending.take()
    if pending.flags != cflags(ringbuf_pages, content):
        if bpf is not None:
            bpf.cleanup()
        return None
    return bpf
