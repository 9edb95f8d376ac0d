"""Retention: the oldest finished runs go once the store holds too many or too much."""

from __future__ import annotations

import logging

from behavior.daemon.config import Retention
from behavior.daemon.runs import RunRecord, RunTable
from behavior.daemon.store import RunStore

log = logging.getLogger("rba.daemon")


def apply_retention(
    store: RunStore, table: RunTable, bounds: Retention, *, finished: RunRecord | None = None
) -> list[str]:
    """Delete the oldest finished runs beyond ``bounds``, from the store and the table.
    ``finished`` is the final record of a run not yet updated in the table (it counts as
    finished). Active runs are never removed. Returns the removed ids."""
    records = [
        finished if finished is not None and r.id == finished.id else r for r in table.records()
    ]
    removed = store.enforce_retention(
        records, max_runs=bounds.max_runs, max_bytes=bounds.max_bytes, keep=table.active_ids()
    )
    if removed:
        table.remove(removed)
        log.info("retention: removed %d old run(s)", len(removed))
    return removed
