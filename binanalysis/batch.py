"""Inspect many files at once: cache hits in this process, misses across worker processes.

Hits cost one ``stat``. Misses are spread over ``jobs`` forked processes (parsing is
CPU-bound Python, so threads would not help). Use from a single-threaded program such as the
CLI; a long-running multi-threaded process should call :meth:`FactsCache.get_or_inspect`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Optional, Union

from binanalysis.cache import FactsCache
from binanalysis.inspector import error_facts, inspect_keyed
from binanalysis.interface import BinaryFacts, BinaryReadError, FileFormat
from binanalysis.reader import CacheKey, stat_key

# Below this many misses, forking workers costs more than it saves.
MIN_PARALLEL = 48
# Automatic --jobs: one more worker per this many misses. A file costs about 0.5 ms, and
# forking a 2-worker pool costs 6 to 12 ms here: each worker gets about 100 ms of work.
FILES_PER_WORKER = 200

Result = Union[BinaryFacts, BinaryReadError]
Progress = Callable[[int, int], None]


def inspect_many(
    paths: Sequence[str],
    cache: FactsCache,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> list[Result]:
    """Facts (or the read error) for each path, in order. New facts are added to ``cache``.

    ``jobs`` is an upper bound: never more workers than usable CPUs or files to inspect.
    By default (None) it is chosen from the work and the idle CPUs (:func:`auto_workers`).
    ``progress(done, total)`` is called as files finish."""
    results: list[Result | None] = [None] * len(paths)
    misses: dict[CacheKey, list[int]] = {}  # one inspection per file, however many names
    for i, path in enumerate(paths):
        try:
            key = stat_key(os.stat(path))
        except OSError as e:
            results[i] = BinaryReadError(f"cannot stat: {e.strerror or e}")
            continue
        if key in misses:
            misses[key].append(i)
            continue
        results[i] = cache.lookup(key, path)
        if results[i] is None:
            misses[key] = [i]
    names_of = {names[0]: names for names in misses.values()}  # first index -> all of them
    done = len(paths) - sum(len(names) for names in names_of.values())
    if progress:
        progress(done, len(paths))
    firsts = list(names_of)
    workers = bounded_workers(jobs, len(firsts))
    for first, read_key, result in _inspect_all([paths[i] for i in firsts], firsts, workers):
        if read_key is not None and isinstance(result, BinaryFacts):
            cache.put(read_key, result)
        for i in names_of[first]:
            results[i] = result.with_path(paths[i]) if isinstance(result, BinaryFacts) else result
        done += len(names_of[first])
        if progress:
            progress(done, len(paths))
    return [r for r in results if r is not None]


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def bounded_workers(jobs: int | None, tasks: int) -> int:
    """Worker processes for ``tasks`` misses: at most ``jobs``, the usable CPUs and the
    tasks, so ``--jobs 100000`` cannot fork thousands of processes."""
    if tasks < MIN_PARALLEL:
        return 1
    if jobs is None:
        return auto_workers(tasks)
    return max(1, min(jobs, usable_cpus(), tasks))


def auto_workers(tasks: int) -> int:
    """One worker per :data:`FILES_PER_WORKER` misses, but only on CPUs that are idle now
    (by the 1-minute load average): on a busy machine another worker only competes with
    the first, and one worker never loses to itself."""
    cpus = usable_cpus()
    try:
        idle = int(cpus - os.getloadavg()[0] + 0.5)
    except OSError:
        idle = cpus
    return max(1, min(cpus, idle, tasks // FILES_PER_WORKER))


Outcome = tuple[int, Optional[CacheKey], Result]


def _inspect_all(paths: list[str], indexes: list[int], workers: int) -> Iterator[Outcome]:
    tasks = list(zip(indexes, paths))
    if workers == 1 or len(tasks) < MIN_PARALLEL:
        yield from map(_inspect_one, tasks)
        return
    import multiprocessing  # only cold scans pay for these
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    chunk = max(1, len(tasks) // (workers * 8))
    finished = 0
    context = multiprocessing.get_context("fork")
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            for outcome in pool.map(_inspect_one, tasks, chunksize=chunk):
                finished += 1
                yield outcome
    except BrokenProcessPool:  # a worker was killed (OOM killer, signal): say so per file
        for index, path in tasks[finished:]:
            message = "internal error: worker process died"
            yield index, None, error_facts(path, FileFormat.OTHER, message)


def _inspect_one(task: tuple[int, str]) -> Outcome:
    index, path = task
    try:
        key, facts = inspect_keyed(path)
    except BinaryReadError as e:
        return index, None, e
    except Exception as e:  # a bug must cost one file's verdict, not the whole scan
        return index, None, error_facts(path, FileFormat.OTHER, f"internal error: {e!r}")
    return index, key, facts
