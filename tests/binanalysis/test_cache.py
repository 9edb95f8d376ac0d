"""Facts round-trip exactly (traces replay them), and the cache never inspects an unchanged
file twice, across threads, processes and JSON dumps."""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from binanalysis import (
    BinaryFacts,
    BinaryReadError,
    CacheFormatError,
    FactsCache,
    inspect,
    inspect_many,
)
from binanalysis import inspector as inspector_module
from binanalysis.cache import CACHE_VERSION


def _all_facts(gcc_built: dict[str, Path], pe_built: dict[tuple[str, str], Path]) -> list[str]:
    return [str(p) for p in gcc_built.values()] + [str(p) for p in pe_built.values()]


def test_to_dict_round_trips_byte_identically(
    gcc_built: dict[str, Path], pe_built: dict[tuple[str, str], Path], tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt"
    corrupt.write_bytes(gcc_built["sp"].read_bytes()[:300])
    for path in [*_all_facts(gcc_built, pe_built), str(corrupt), "/etc/hostname"]:
        facts = inspect(path)
        text = json.dumps(facts.to_dict(), sort_keys=True)
        again = BinaryFacts.from_dict(json.loads(text))
        assert again == facts
        assert json.dumps(again.to_dict(), sort_keys=True) == text
    assert inspect(str(corrupt)).error is not None


def test_from_dict_rejects_malformed() -> None:
    good = inspect("/etc/hostname").to_dict()
    for broken in ({**good, "format": "exe"}, {**good, "dep": {"value": 3, "reason": ""}},
                   {k: v for k, v in good.items() if k != "aslr"}):  # fmt: skip
        with pytest.raises(ValueError):
            BinaryFacts.from_dict(broken)


class _CountingInspect:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        real = inspector_module.inspect_keyed

        def counting(path: str):  # type: ignore[no-untyped-def]
            self.calls.append(path)
            return real(path)

        import binanalysis.cache

        monkeypatch.setattr(binanalysis.cache, "inspect_keyed", counting)


def test_unchanged_file_inspected_once(
    gcc_built: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = _CountingInspect(monkeypatch)
    path = tmp_path / "prog"
    shutil.copyfile(gcc_built["sp_strong"], path)
    link = tmp_path / "hardlink"
    os.link(path, link)  # before the first inspection: a new link moves ctime
    cache = FactsCache()
    first = cache.get_or_inspect(str(path))
    assert cache.get_or_inspect(str(path)) == first
    via_link = cache.get_or_inspect(str(link))
    assert via_link.path == str(link)
    assert via_link.stack_cookies == first.stack_cookies
    assert len(counter.calls) == 1
    shutil.copyfile(gcc_built["nosp"], path)  # rewritten in place: size/mtime change
    assert cache.get_or_inspect(str(path)).stack_cookies.value is False
    assert len(counter.calls) == 2
    with pytest.raises(BinaryReadError):
        cache.get_or_inspect(str(tmp_path / "missing"))


def test_threads_share_one_cache(
    gcc_built: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = _CountingInspect(monkeypatch)
    cache = FactsCache()
    paths = [str(p) for p in gcc_built.values()] * 8
    for path in paths[: len(gcc_built)]:
        cache.get_or_inspect(path)  # warm it, then hammer it from many threads
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(cache.get_or_inspect, paths))
    assert [r.path for r in results] == paths
    assert len(counter.calls) == len(gcc_built)
    assert cache.hits == len(paths)


def test_bounded(gcc_built: dict[str, Path]) -> None:
    cache = FactsCache(max_entries=3)
    for path in gcc_built.values():
        cache.get_or_inspect(str(path))
    assert len(cache) == 3


def test_dumps_loads(gcc_built: dict[str, Path]) -> None:
    cache = FactsCache()
    for path in gcc_built.values():
        cache.get_or_inspect(str(path))
    cache.get_or_inspect("/etc/hostname")  # an 'other' file: its facts are shared
    loaded = FactsCache.loads(cache.dumps())
    assert [(k, f.with_path("")) for k, f in loaded.items()] == [
        (k, f.with_path("")) for k, f in cache.items()
    ]
    for key, facts in cache.items():
        assert loaded.lookup(key, facts.path) == facts
    assert not loaded.changed
    assert loaded.dumps() == cache.dumps()


HEAD = f'{{"format": "rba-binary-facts", "version": {CACHE_VERSION}'


@pytest.mark.parametrize(
    "text",
    ["", "{", "[]", '{"format": "x"}', '{"format": "rba-binary-facts", "version": 999}',
     HEAD + ', "facts": [], "entries": [[1, 2, 3]]}',  # short entry
     HEAD + ', "facts": [], "entries": [[1, 2, 3, 4, 0]]}',  # version 6's entry: no ctime
     HEAD + ', "facts": [], "entries": [[1, 2, 3, 4, 5, 0]]}',  # index out of range
     HEAD + ', "facts": [], "entries": [[1, 2, 3, 4, 5, true]]}',  # index not an int
     HEAD + ', "facts": [{"path": 1}], "entries": []}',  # malformed facts
     HEAD + ', "facts": []}'],  # no entries
)  # fmt: skip
def test_corrupt_cache_text_is_refused(text: str) -> None:
    with pytest.raises(CacheFormatError):
        FactsCache.loads(text)


def test_inspect_many_parallel_equals_serial(gcc_built: dict[str, Path], tmp_path: Path) -> None:
    paths = [str(p) for p in gcc_built.values()] * 4 + [str(tmp_path / "missing")]
    serial = inspect_many(paths, FactsCache(), jobs=1)
    cache = FactsCache()
    seen: list[tuple[int, int]] = []
    parallel = inspect_many(paths, cache, jobs=2, progress=lambda d, t: seen.append((d, t)))
    assert [str(r) if isinstance(r, Exception) else r for r in parallel] == [
        str(r) if isinstance(r, Exception) else r for r in serial
    ]
    assert isinstance(parallel[-1], BinaryReadError)
    assert seen[-1] == (len(paths), len(paths))
    assert len(cache) == len(gcc_built)


def _dies_on_object(task: tuple[int, str]):  # type: ignore[no-untyped-def]
    """Stands in for the worker function (module level, so that it pickles by name)."""
    from binanalysis import batch

    if task[1].endswith("object.o"):
        os._exit(9)
    return batch.inspect_keyed_task(task)


def test_dead_worker_is_an_error_not_a_hang(
    gcc_built: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed mid-scan (OOM killer, a signal) costs verdicts, never the scan."""
    from binanalysis import batch

    monkeypatch.setattr(batch, "inspect_keyed_task", batch._inspect_one, raising=False)
    monkeypatch.setattr(batch, "_inspect_one", _dies_on_object)
    monkeypatch.setattr(batch, "MIN_PARALLEL", 1)
    paths = [str(p) for p in gcc_built.values()]
    results = inspect_many(paths, FactsCache(), jobs=2)
    assert len(results) == len(paths)
    died = [r for r in results if isinstance(r, BinaryFacts) and r.error and "died" in r.error]
    assert died and any(r.path.endswith("object.o") for r in died)


def test_rewrite_with_mtime_restored_is_inspected_again(
    gcc_built: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: same inode, same size, mtime set back with os.utime: only ctime tells."""
    counter = _CountingInspect(monkeypatch)
    path = tmp_path / "prog"
    shutil.copyfile(gcc_built["sp_strong"], path)
    st = path.stat()
    cache = FactsCache.loads(FactsCache().dumps())
    assert cache.get_or_inspect(str(path)).stack_cookies.value is True
    saved = FactsCache.loads(cache.dumps())  # through the persistent form, as the CLI does
    unprotected = gcc_built["nosp"].read_bytes()
    original = path.read_bytes()
    assert len(unprotected) != len(original) or unprotected != original
    # Same size: pad or cut the unprotected program to the protected one's length.
    data = (unprotected + b"\0" * len(original))[: len(original)]
    with open(path, "r+b") as f:  # in place: the inode stays
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
    )
    assert after.st_ctime_ns != st.st_ctime_ns
    facts = saved.get_or_inspect(str(path))
    assert len(counter.calls) == 2
    assert facts.stack_cookies.value is not True, facts.stack_cookies.reason


def test_old_cache_version_is_refused_not_a_crash() -> None:
    old = '{"format": "rba-binary-facts", "version": 6, "facts": [], "entries": [[1, 2, 3, 4, 0]]}'
    with pytest.raises(CacheFormatError, match="cache version 6"):
        FactsCache.loads(old)


FORK_COUNTER = """
import sys
forks = []
sys.addaudithook(lambda event, _args: forks.append(1) if event == "os.fork" else None)
from binanalysis import FactsCache, inspect_many
paths = sys.argv[2:]
results = inspect_many(paths, FactsCache(), jobs=int(sys.argv[1]))
assert len(results) == len(paths) and all(r.error is None for r in results)
print(len(forks))
"""


@pytest.mark.parametrize("jobs", [64, 100000])
def test_jobs_bounded_by_cpus_and_files(
    gcc_built: dict[str, Path], tmp_path: Path, jobs: int
) -> None:
    """Issue 12: --jobs 64 on 60 files started 66 processes; --jobs 100000 forked thousands."""
    import subprocess
    import sys

    from binanalysis.batch import usable_cpus

    paths = []
    for i in range(60):  # 60 distinct inodes, so 60 misses
        copy = tmp_path / f"prog{i}"
        shutil.copyfile(gcc_built["sp_strong"], copy)
        paths.append(str(copy))
    repo = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-c", FORK_COUNTER, str(jobs), *paths]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, cwd=repo, check=False
    )
    assert done.returncode == 0, done.stderr
    forks = int(done.stdout)
    assert 1 <= forks <= usable_cpus(), forks


def test_automatic_jobs_follow_work_and_idle_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """--jobs by default: one worker per FILES_PER_WORKER misses, only on idle CPUs."""
    from binanalysis import batch

    monkeypatch.setattr(batch, "usable_cpus", lambda: 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert batch.bounded_workers(None, batch.MIN_PARALLEL - 1) == 1  # in-process
    assert batch.bounded_workers(None, batch.FILES_PER_WORKER * 2) == 2
    assert batch.bounded_workers(None, batch.FILES_PER_WORKER * 100) == 4
    monkeypatch.setattr(os, "getloadavg", lambda: (3.6, 0.0, 0.0))  # 0.4 CPU idle
    assert batch.bounded_workers(None, batch.FILES_PER_WORKER * 100) == 1
    assert batch.bounded_workers(64, 60) == 4  # explicit: bounded by the CPUs
    assert batch.bounded_workers(3, 60) == 3
    assert batch.bounded_workers(100000, 50) == 4
