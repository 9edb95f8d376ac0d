"""The results store: ``<state_dir>/runs/<run-id>/`` with ``state.json`` and ``report.json``.

Both files are written atomically with mode 0600 (:func:`behavior.formats.output.write_atomic`),
the directories are 0700. The state file is written when a run starts and at each change
of state, so a run that was still collecting or evaluating when the daemon died is found
on the next start and marked failed with the reason. The report is written before the
state says "completed", so a completed run always has its report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from behavior.daemon.runs import RunRecord, RunState
from behavior.formats import Format
from behavior.formats.output import write_atomic
from behavior.interface import RbaError, UsageError

log = logging.getLogger("rba.daemon")

STATE_FILE = "state.json"
REPORT_FILE = "report.json"
TRACE_FILE = "trace.rbt"  # templates with trace = true
FULL_BELOW_BYTES = 256 * 1024
REPORT_FORMATS: tuple[str, ...] = tuple(f.value for f in Format)


class StoreError(RbaError):
    """The store cannot be read or written (the message names the path)."""


@dataclass(frozen=True)
class StoreUsage:
    """The store's file system, for ``rba status``."""

    path: str
    free_bytes: int
    total_bytes: int
    last_error: str = ""

    @property
    def full(self) -> bool:
        """Too full for another run's state and report (or a write was just refused)."""
        return self.free_bytes < FULL_BELOW_BYTES or bool(self.last_error)


class RunStore:
    """One directory per run under ``<state_dir>/runs``."""

    def __init__(self, state_dir: str) -> None:
        self.runs_dir = os.path.join(state_dir, "runs")
        self.last_error = ""  # the last write that failed ("" once one succeeds again)

    def open(self) -> None:
        """Create the store's directories (mode 0700) if needed."""
        try:
            os.makedirs(self.runs_dir, mode=0o700, exist_ok=True)
            os.chmod(self.runs_dir, 0o700)
        except OSError as e:
            raise StoreError(f"cannot create {self.runs_dir}: {e.strerror}") from e

    def run_dir(self, run_id: str) -> str:
        """The directory of ``run_id``."""
        return os.path.join(self.runs_dir, run_id)

    def save(self, record: RunRecord) -> None:
        """Write ``record``'s state file (creating its directory)."""
        directory = self.run_dir(record.id)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            write_atomic(os.path.join(directory, STATE_FILE), _dump(record))
        except (OSError, UsageError) as e:
            raise self._failed(f"cannot save the state of run {record.id}: {e}") from e
        self.last_error = ""

    def save_report(self, run_id: str, text: str, fmt: str = "json") -> None:
        """Write the run's report rendered in ``fmt`` (``report.json``, ``report.text``...)."""
        try:
            write_atomic(os.path.join(self.run_dir(run_id), report_file(fmt)), text)
        except (OSError, UsageError) as e:
            raise self._failed(f"cannot save the report of run {run_id}: {e}") from e
        self.last_error = ""

    def _failed(self, message: str) -> StoreError:
        self.last_error = message
        return StoreError(message)

    def remove_renderings(self, run_id: str, *, keep: Collection[str]) -> None:
        """Delete the run's reports in formats other than ``keep``."""
        for fmt in REPORT_FORMATS:
            if fmt not in keep:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.run_dir(run_id), report_file(fmt)))

    def remove_trace(self, run_id: str) -> bool:
        """Delete the run's trace (to make room for its findings); False if it has none."""
        try:
            os.unlink(os.path.join(self.run_dir(run_id), TRACE_FILE))
        except OSError:
            return False
        return True

    def usage(self) -> StoreUsage:
        """How full the file system holding the store is, and the last write refused."""
        try:
            st = os.statvfs(self.runs_dir)
        except OSError as e:
            return StoreUsage(self.runs_dir, 0, 0, self.last_error or e.strerror or str(e))
        free = st.f_bavail * st.f_frsize
        return StoreUsage(self.runs_dir, free, st.f_blocks * st.f_frsize, self.last_error)

    def read_report(self, run_id: str, fmt: str = "json") -> str | None:
        """The stored report text in ``fmt``, or None when the run has none."""
        try:
            path = os.path.join(self.run_dir(run_id), report_file(fmt))
            with open(path, encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StoreError(f"cannot read the report of run {run_id}: {e.strerror}") from e

    def load_all(self) -> list[RunRecord]:
        """Every run in the store, oldest first. Unreadable entries are logged and skipped."""
        records = []
        try:
            names = sorted(os.listdir(self.runs_dir))
        except OSError as e:
            raise StoreError(f"cannot list {self.runs_dir}: {e.strerror}") from e
        for name in names:
            path = os.path.join(self.runs_dir, name, STATE_FILE)
            if self._remove_if_unborn(name):
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    records.append(_load(json.load(f)))
            except (OSError, ValueError, TypeError, KeyError) as e:
                log.warning("store: skipping %s: unreadable state file (%s)", name, e)
        records.sort(key=lambda r: (r.started_at, r.id))
        return records

    def _remove_if_unborn(self, name: str) -> bool:
        """A run directory without a state file, report or trace is a run that died while
        being created (a kill between mkdir and the first write): remove it."""
        directory = os.path.join(self.runs_dir, name)
        try:
            entries = os.listdir(directory)
        except OSError:
            return False
        if any(e in entries for e in (STATE_FILE, REPORT_FILE, TRACE_FILE)):
            return False
        shutil.rmtree(directory, ignore_errors=True)
        log.warning("store: removed %s: a run that died before its state was written", name)
        return True

    def recover(self) -> list[RunRecord]:
        """Load every run, marking those a dead daemon left active as failed (or as
        completed when their report was written just before the crash)."""
        records = []
        for record in self.load_all():
            settled = self._settle_interrupted(record) if record.state.active else record
            records.append(settled)
        return records

    def _settle_interrupted(self, record: RunRecord) -> RunRecord:
        if record.state == RunState.EVALUATING and self.read_report(record.id) is not None:
            settled = dataclasses.replace(record, state=RunState.COMPLETED)
        else:
            settled = dataclasses.replace(
                record,
                state=RunState.FAILED,
                reason=f"the daemon stopped while the run was {record.state} "
                "(crash, kill or power loss); no report was written",
            )
        try:
            self.save(settled)
        except StoreError as e:  # a full disk: the daemon starts all the same
            log.error("store: %s (it is %s in memory only)", e, settled.state)
        log.warning("store: run %s was interrupted: now %s", record.id, settled.state)
        return settled

    def enforce_retention(
        self, records: list[RunRecord], *, max_runs: int, max_bytes: int, keep: Collection[str]
    ) -> list[str]:
        """Delete the oldest finished runs until at most ``max_runs`` finished runs remain
        and the store uses at most ``max_bytes``. Runs in ``keep`` are never deleted.
        Returns the deleted ids (``records`` is ordered oldest first)."""
        finished = [r for r in records if not r.state.active and r.id not in keep]
        sizes = {r.id: self._size(r.id) for r in records}
        total = sum(sizes.values())
        removed: list[str] = []
        for record in finished:
            over_count = len(finished) - len(removed) > max_runs
            if not over_count and total <= max_bytes:
                break
            shutil.rmtree(self.run_dir(record.id), ignore_errors=True)
            total -= sizes[record.id]
            removed.append(record.id)
        return removed

    def _size(self, run_id: str) -> int:
        total = 0
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.run_dir(run_id)):
                with contextlib.suppress(OSError):
                    total += entry.stat(follow_symlinks=False).st_size
        return total


def report_file(fmt: str) -> str:
    """The file name of a report in ``fmt``; JSON is the reference rendering."""
    return REPORT_FILE if fmt == "json" else f"report.{fmt}"


def _dump(record: RunRecord) -> str:
    return json.dumps(dataclasses.asdict(record), indent=2) + "\n"


def _load(data: Any) -> RunRecord:
    if not isinstance(data, dict):
        raise ValueError("not an object")
    fields = {f.name for f in dataclasses.fields(RunRecord)}
    values = {k: v for k, v in data.items() if k in fields}
    state = values.get("state")
    if state not in {s.value for s in RunState}:
        raise ValueError(f"unknown state {state!r}")
    values["state"] = RunState(state)
    return RunRecord(**values)
