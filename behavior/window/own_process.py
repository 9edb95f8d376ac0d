"""rba never judges itself: the events of its own process, and of every process it
starts (package-manager queries, for example), are set aside before anything folds them;
findings about its own installed files (its packages, its venv) are not reported.

The filter runs inside :meth:`behavior.window.assess.Assessment.feed`, on the live
window and on its replay alike. The pid and the install roots to set aside travel in the
assessment's configuration, which the trace's header records, so a replay anywhere makes
the same choice as the live run did.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from behavior.interface import Finding
from behavior.subjects import FileSubject, ModuleSubject
from probes.events import EventArray, Kind

# Kinds that make a process part of rba's tree (its parent is in it) or take it out.
_JOINS = (Kind.FORK, Kind.EXEC, Kind.PROC_SNAPSHOT)


class OwnProcessFilter:
    """Drops the events of one process tree: ``pid`` and its descendants."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._tree: set[int] = {pid}
        self.helpers: set[int] = set()  # descendants seen, for the run's note
        self.dropped = 0

    def apply(self, events: EventArray) -> EventArray:
        """``events`` without those of the tree (in order)."""
        if len(events) == 0:
            return events
        kind = events["kind"]
        # Joining rows are rare. They are walked in order, so that a grandchild forked in
        # the same batch joins too.
        joins = np.flatnonzero(np.isin(kind, _JOINS))
        for row in events[joins]:
            pid, ppid = int(row["pid"]), int(row["ppid"])
            if ppid in self._tree and pid != self.pid:
                self._tree.add(pid)
                self.helpers.add(pid)
        ours = np.isin(events["pid"], list(self._tree))
        kept = events if not ours.any() else events[~ours]
        self.dropped += len(events) - len(kept)
        exits = events["pid"][ours & (kind == Kind.EXIT)].tolist()
        self._tree.difference_update(p for p in exits if p != self.pid)  # pids get reused
        return kept

    def note(self) -> str:
        """The run note that says what was set aside."""
        parts = [f"rba's own process (pid {self.pid}) is not assessed"]
        if self.helpers:
            parts.append(f"nor the {len(self.helpers)} process(es) it started")
        return ", ".join(parts) + f" ({self.dropped} of their events set aside)"


def own_install_roots() -> tuple[str, ...]:
    """Where rba's own files are: its three packages and, when it runs from a venv, the
    venv (whose libraries other programs on the host do not use by accident)."""
    import behavior
    import binanalysis
    import probes

    roots = [
        os.path.dirname(os.path.abspath(p.__file__ or "")) for p in (behavior, probes, binanalysis)
    ]
    if sys.prefix != sys.base_prefix:
        roots.append(os.path.abspath(sys.prefix))
    return tuple(sorted(set(roots)))


def is_own_file(path: str, roots: tuple[str, ...]) -> bool:
    """True when ``path`` (on the host) lies under one of ``roots``."""
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def own_file_of(finding: Finding, roots: tuple[str, ...]) -> bool:
    """True when ``finding`` is about one of rba's own files, on the host."""
    subject = finding.subject
    if isinstance(subject, FileSubject):
        return not subject.namespace and is_own_file(subject.path, roots)
    if isinstance(subject, ModuleSubject):
        return subject.process.container is None and is_own_file(subject.module, roots)
    return False
