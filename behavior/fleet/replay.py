"""Replaying many traces into a lake: a local process pool, or Dask distributed.

Each task replays one trace exactly as ``rba replay`` does, turns the report into the
JSON contract (:func:`behavior.formats.json_format.report_to_dict`) and adds it to the
lake itself, so each worker writes its own Parquet parts and only a small outcome travels
back. Lake files are named after their rows, so the lake a pool or a cluster leaves is the
one a serial run leaves. With Dask, the traces and the lake must be at the same paths on
every worker (a shared file system).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial

from behavior.fleet.interface import FleetError, require_fleet_extra
from behavior.formats.suppressions import Suppression
from behavior.interface import NullObserver, Observer, RbaError


@dataclass(frozen=True)
class ReplayTask:
    """Where the reports go and how they are judged: the same for every trace."""

    lake: str
    region: str
    account_id: str
    suppressions: tuple[Suppression, ...] = ()


@dataclass(frozen=True)
class ReplayOutcome:
    """What replaying one trace into the lake did; ``error`` is one line, or ""."""

    trace: str
    findings: int
    added: int
    present: int
    worst_rank: int  # the highest severity rank among the active findings, -1 if none
    error: str = ""


def replay_into_lake(task: ReplayTask, trace: str) -> ReplayOutcome:
    """Replay ``trace`` and add its report to the lake (runs in a worker)."""
    from behavior.fleet.lake import add_reports
    from behavior.formats.json_format import report_to_dict
    from behavior.formats.suppressions import apply_suppressions
    from behavior.recording.loading import load_recording
    from behavior.recording.replay import replay

    try:
        report = replay(load_recording(trace), NullObserver())
        report = apply_suppressions(report, task.suppressions)
        result = add_reports(
            task.lake, [report_to_dict(report)], region=task.region, account_id=task.account_id
        )
    except RbaError as e:
        return ReplayOutcome(trace, 0, 0, 0, -1, str(e))
    worst = max((f.severity.rank for f in report.findings), default=-1)
    return ReplayOutcome(
        trace, len(report.findings), result.findings_added, result.findings_present, worst
    )


def replay_many(
    task: ReplayTask,
    traces: Sequence[str],
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    observer: Observer | None = None,
) -> list[ReplayOutcome]:
    """Replay every trace into ``task.lake``: serially (``jobs`` 1), on a local process
    pool (``jobs`` workers, default one per CPU), or on the Dask scheduler at
    ``scheduler``. Outcomes come back in the order of ``traces``."""
    require_fleet_extra("pyarrow", *(["distributed"] if scheduler else []))
    observer = observer or NullObserver()
    paths = [os.path.abspath(t) for t in traces]
    task = ReplayTask(os.path.abspath(task.lake), task.region, task.account_id, task.suppressions)
    work = partial(replay_into_lake, task)
    if scheduler:
        done = _on_dask(work, paths, scheduler)
    elif (jobs or os.cpu_count() or 1) == 1 or len(paths) == 1:
        done = (work(p) for p in paths)
    else:
        done = _on_pool(work, paths, jobs)
    by_trace: dict[str, ReplayOutcome] = {}
    for outcome in done:
        by_trace[outcome.trace] = outcome
        observer.progress(len(by_trace), len(paths), f"replayed {len(by_trace)} of {len(paths)}")
    return [by_trace[p] for p in paths]


def _on_pool(
    work: Callable[[str], ReplayOutcome], paths: Iterable[str], jobs: int | None
) -> Iterator[ReplayOutcome]:
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(work, p) for p in paths]
        for future in as_completed(futures):
            yield future.result()


def _on_dask(
    work: Callable[[str], ReplayOutcome], paths: list[str], scheduler: str
) -> Iterator[ReplayOutcome]:
    from distributed import Client
    from distributed import as_completed as dask_completed

    try:
        client = Client(scheduler, timeout=30)
    except (OSError, TimeoutError, ValueError) as e:
        raise FleetError(f"cannot reach the Dask scheduler {scheduler}: {e}") from None
    try:
        futures = client.map(work, paths, pure=False)
        for future in dask_completed(futures):
            yield future.result()
    finally:
        client.close()
