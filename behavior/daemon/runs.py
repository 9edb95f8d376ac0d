"""The run table: every run the daemon knows, the active ones, and their states.

One lock guards it. Records are frozen; a change of state is a new record made with
:func:`dataclasses.replace`, put back in the table (and written to the store by the
caller). Runs given up at shutdown are *abandoned*: their failed state is final, and a
late evaluation can no longer overwrite it.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the engine imports bcc and numpy: only the service needs them loaded
    from behavior.daemon.config import Template
    from behavior.daemon.engine import DaemonRun
    from behavior.daemon.sharing import Subscription


class RunState(str, enum.Enum):
    """Where a run is in its life. A ``str`` so that it is stored and sent as its value."""

    COLLECTING = "collecting"
    EVALUATING = "evaluating"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    def __str__(self) -> str:
        return self.value

    @property
    def active(self) -> bool:
        """Whether the run still collects or evaluates (it has no report yet)."""
        return self in (RunState.COLLECTING, RunState.EVALUATING)


@dataclass(frozen=True)
class RunRecord:
    """What the store keeps about a run besides its report."""

    id: str
    template: str
    state: RunState
    started_at: str  # ISO 8601 UTC
    duration_s: float
    ends_at: str = ""  # planned end of the window
    ended_at: str = ""
    reason: str = ""  # why it failed, or how it ended early
    partial: bool = False
    events: int = 0
    lost_events: int = 0
    findings: int = 0


@dataclass
class ActiveRun:
    """A run that is collecting or evaluating."""

    record: RunRecord
    template: Template
    assessment: DaemonRun
    deadline: float  # time.monotonic() at which the window ends
    subscription: Subscription | None = None
    ended_at_ns: int = 0
    finisher: threading.Thread | None = None


@dataclass(frozen=True)
class RunView:
    """One run as ``status`` shows it: its record and, while collecting, its live parts."""

    record: RunRecord
    time_left_s: float | None = None
    subscription: Subscription | None = None


class RunTable:
    """The daemon's runs, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, RunRecord] = {}
        self._active: dict[str, ActiveRun] = {}
        self._starting = 0  # runs between acceptance and attachment to the probes
        self._abandoned: set[str] = set()

    # --- starting ----------------------------------------------------------------

    def reserve(self, max_active: int) -> int:
        """Count one more run as starting if fewer than ``max_active`` are busy; returns
        the number busy before (``>= max_active``: refused, nothing reserved)."""
        with self._lock:
            busy = len(self._active) + self._starting
            if busy < max_active:
                self._starting += 1
            return busy

    def release(self) -> None:
        """A reserved run is attached (or failed to): it no longer counts as starting."""
        with self._lock:
            self._starting -= 1

    @property
    def starting(self) -> int:
        """Runs accepted but not yet attached to the probes."""
        with self._lock:
            return self._starting

    def activate(self, run: ActiveRun) -> None:
        """``run`` collects from now on."""
        with self._lock:
            self._active[run.record.id] = run
            self._records[run.record.id] = run.record

    # --- records -----------------------------------------------------------------

    def put(self, record: RunRecord, *, force: bool = False) -> bool:
        """Record ``record``; False (and nothing changed) when its run was abandoned,
        unless ``force``."""
        with self._lock:
            if record.id in self._abandoned and not force:
                return False
            self._records[record.id] = record
            return True

    def lookup(self, run_id: str) -> tuple[ActiveRun | None, RunRecord | None]:
        """The active run (or None) and the record (or None) of ``run_id``."""
        with self._lock:
            return self._active.get(run_id), self._records.get(run_id)

    def records(self) -> list[RunRecord]:
        """Every record, in the table's order (oldest first)."""
        with self._lock:
            return list(self._records.values())

    def remove(self, run_ids: Collection[str]) -> None:
        """Forget ``run_ids`` (retention removed them from the store)."""
        with self._lock:
            for run_id in run_ids:
                self._records.pop(run_id, None)

    def active_ids(self) -> set[str]:
        """Ids of the collecting and evaluating runs."""
        with self._lock:
            return set(self._active)

    def busy_templates(self) -> set[str]:
        """Names of the templates with an active run."""
        with self._lock:
            return {run.template.name for run in self._active.values()}

    def views(self) -> list[RunView]:
        """Every run for ``status``, with the time left of those collecting."""
        now = time.monotonic()
        with self._lock:
            out = []
            for record in self._records.values():
                run = self._active.get(record.id)
                if run is not None and record.state == RunState.COLLECTING:
                    left = max(0.0, run.deadline - now)
                    out.append(RunView(record, left, run.subscription))
                else:
                    out.append(RunView(record))
            return out

    def update_counts(self, run: ActiveRun, events: int, lost: int) -> RunRecord | None:
        """Set a collecting run's event and loss counts so far; the new record, or None
        when the run's window already ended (or nothing changed)."""
        with self._lock:
            old = run.record
            if run.finisher is not None or (old.events, old.lost_events) == (events, lost):
                return None
            run.record = dataclasses.replace(old, events=events, lost_events=lost)
            self._records[old.id] = run.record
            return run.record

    # --- ending ------------------------------------------------------------------

    def collecting(self) -> list[ActiveRun]:
        """Active runs whose window has not ended yet."""
        with self._lock:
            return [r for r in self._active.values() if r.finisher is None]

    def due(self, now: float) -> list[ActiveRun]:
        """Collecting runs whose deadline is at or before ``now`` (monotonic)."""
        return [r for r in self.collecting() if now >= r.deadline]

    def claim(self, run: ActiveRun, finisher: threading.Thread) -> bool:
        """Make ``finisher`` the one thread that ends ``run``; False if another has."""
        with self._lock:
            if run.finisher is not None:
                return False
            run.finisher = finisher
            return True

    def finishers(self) -> list[threading.Thread]:
        """The evaluation threads still running."""
        with self._lock:
            return [r.finisher for r in self._active.values() if r.finisher is not None]

    def retire(self, run_id: str) -> bool:
        """``run_id`` is no longer active; False if it was abandoned (its state is final)."""
        with self._lock:
            if run_id in self._abandoned:
                return False
            self._active.pop(run_id, None)
            return True

    def abandon_all(self) -> list[ActiveRun]:
        """Give up every run still active (shutdown); they are returned."""
        with self._lock:
            late = list(self._active.values())
            self._abandoned.update(run.record.id for run in late)
            return late
