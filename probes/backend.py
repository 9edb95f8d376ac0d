"""Backend choice, in one place, and the merged event stream of a window.

``open_session("auto")`` runs eBPF and polling together when eBPF can run here (root,
bcc, tracefs, kernel headers, a program that loads), and otherwise polling alone with
one notice saying why. ``"ebpf"`` insists on eBPF; ``"poll"`` polls only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from probes.common import GapCounter, concat
from probes.ebpf import EbpfSource
from probes.events import EventArray, Flag, StringTable
from probes.interface import (
    Capabilities,
    EventSource,
    ProbeError,
    ProbeUnavailableError,
    SourceStats,
)
from probes.poll import PollSource
from probes.procfs import NetnsCache

CHOICES = ("auto", "ebpf", "poll")


CONTENT_OFF_NOTICE = "content identification off: protocols are identified by port and program only"


def open_session(
    choice: str = "auto", poll_interval: float = 1.0, *, content: bool = True
) -> ProbeSession:
    """Pick the sources for ``choice``. Raises ProbeUnavailableError for an impossible
    ``"ebpf"``; ValueError for an unknown choice. ``content=False`` loads the eBPF
    programs without first-payload capture (no payload byte is ever read)."""
    if choice not in CHOICES:
        raise ValueError(f"unknown probe choice {choice!r}: use one of {', '.join(CHOICES)}")
    netns_gaps = GapCounter()
    netns = NetnsCache(netns_gaps)
    notices: list[str] = []
    ebpf: EbpfSource | None = None
    if choice in ("auto", "ebpf"):
        try:
            ebpf = EbpfSource(netns=netns, wait_for_seed=True, content=content)
            if not content:
                notices.append(CONTENT_OFF_NOTICE)
        except ProbeUnavailableError as e:
            if choice == "ebpf":
                raise
            notices.append(
                f"eBPF unavailable ({e}): polling only, every {poll_interval:g}s; "
                "connections and processes shorter than that may be missed"
            )
    poll = PollSource(poll_interval, complement=ebpf is not None, netns=netns)
    if ebpf is None and choice == "poll":
        notices.append(
            f"polling only (--probes poll), every {poll_interval:g}s; "
            "connections and processes shorter than that may be missed"
        )
    return ProbeSession(ebpf, poll, tuple(notices), netns_gaps)


def snapshot_now(strings: StringTable) -> EventArray:
    """Window-start state as of now (processes, listening sockets, logins), flagged
    SNAPSHOT: for a window that joins a session opened earlier, whose own start
    snapshot predates it (the daemon's overlapping runs)."""
    source = PollSource(1.0, complement=True)
    try:
        source.start(strings)
        snapshot = source.snapshot
    finally:
        source.stop()
    if snapshot is None:
        raise ProbeError("no snapshot was taken")
    return snapshot


class ProbeSession:
    """The sources of one window, read as one stream of events."""

    def __init__(
        self,
        ebpf: EbpfSource | None,
        poll: PollSource,
        notices: tuple[str, ...],
        netns_gaps: GapCounter | None = None,
    ):
        self._ebpf = ebpf
        self._netns_gaps = netns_gaps or GapCounter()
        self._poll = poll
        self._sources: list[EventSource] = [s for s in (ebpf, poll) if s is not None]
        self.sources: tuple[str, ...] = tuple(s.name for s in self._sources)
        self.notices = notices
        self.capabilities = merge_capabilities([s.capabilities for s in self._sources])
        self.poll_interval = poll.interval

    def start(self, strings: StringTable) -> None:
        """Attach eBPF first (nothing is missed), then take the window-start snapshot,
        which the first :meth:`read` returns before anything else."""
        if self._ebpf is not None:
            self._ebpf.start(strings)
        try:
            self._poll.start(strings)
        except BaseException:
            if self._ebpf is not None:
                self._ebpf.stop()
            raise
        if self._ebpf is not None:
            snapshot = self._poll.snapshot
            self._ebpf.seed(snapshot if snapshot is not None else concat([]))

    def read(self, timeout: float) -> EventArray:
        """Events from all sources since the last call, snapshot rows first, then by
        monotonic time; waits up to ``timeout`` seconds when there are none."""
        polled = self._poll.read(0.0)
        if self._ebpf is None:
            if not len(polled):
                polled = self._poll.read(timeout)
            return polled
        traced = self._ebpf.read(0.0 if len(polled) else timeout)
        merged = concat([b for b in (polled, traced) if len(b)])
        if len(merged) < 2:
            return merged
        not_snapshot = (merged["flags"] & Flag.SNAPSHOT) == 0
        order = np.lexsort((merged["ts_mono"], not_snapshot))
        ordered: EventArray = merged[order]
        return ordered

    def stop(self) -> None:
        """Stop every source; safe to call twice."""
        for source in self._sources:
            source.stop()

    def stats(self) -> dict[str, SourceStats]:
        """Per source: events delivered, events lost, stated gaps. Network namespaces
        that could not be read are stated with the first source (eBPF when running)."""
        stats = {s.name: s.stats() for s in self._sources}
        first = self._sources[0].name
        extra = self._netns_gaps.statements()
        if extra:
            stats[first] = dataclasses.replace(stats[first], gaps=(*stats[first].gaps, *extra))
        return stats

    def coverage(self) -> str:
        """One line on what this session can and cannot see."""
        if self._ebpf is not None:
            return "eBPF tracepoints (every connection, exec and UDP send) plus polling (logins)"
        return (
            f"polling only, every {self.poll_interval:g}s: connections and processes that "
            "begin and end between polls are not seen, nor unconnected UDP sends"
        )

    def __enter__(self) -> ProbeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def merge_capabilities(caps: list[Capabilities]) -> Capabilities:
    """What the sources see together: each flag is true when any source has it."""
    names = [f.name for f in dataclasses.fields(Capabilities)]
    return Capabilities(**{n: any(getattr(c, n) for c in caps) for n in names})
