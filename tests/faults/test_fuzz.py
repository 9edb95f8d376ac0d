"""A fixed-seed fuzz corpus, in CI: hostile traces, daemon configs, suppression files
and scan caches. Crashes: 0. Files clobbered: 0. (A longer run: bench/fuzz_traces.py.)"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults import fuzz

SEED = 20261201
CASES = {"traces": 300, "configs": 150, "suppressions": 150, "cache": 150}


def _cases(seed_data: bytes | str, n: int, salt: int) -> Iterator[bytes]:
    rng = random.Random(SEED + salt)
    for _ in range(n):
        if isinstance(seed_data, bytes):
            yield fuzz.mutate_trace(rng, seed_data)
        else:
            yield fuzz.mutate_text(rng, seed_data)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file that a planted symlink points at, next to where rba writes reports."""
    secret = tmp_path / "victim"
    secret.write_text("must not change")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    link = shared / "report.txt"
    link.symlink_to(secret)
    if os.geteuid() == 0:
        os.lchown(link, 65534, 65534)
    return secret


def _check(outcome: fuzz.Outcome, expected: int) -> None:
    assert outcome.cases == expected
    assert outcome.crashes == [], "\n".join(outcome.crashes[:10])
    assert outcome.clobbered == []


def test_fuzzed_traces(tmp_path: Path, victim: Path) -> None:
    from behavior.commands.cli import main

    seed = fuzz.seed_trace(tmp_path / "seed.rbt")
    link = str(tmp_path / "shared" / "report.txt")

    def exercise(path: str) -> None:
        fuzz.exercise_trace(path)
        # and through the CLI, onto the planted symlink: refused, never followed
        assert main(["replay", path, "--output", link]) == 2

    outcome = fuzz.run_corpus("trace", _cases(seed, CASES["traces"], 1), exercise, tmp_path,
                              [victim, tmp_path / "seed.rbt"])  # fmt: skip
    _check(outcome, CASES["traces"])
    assert 0 < outcome.refused < outcome.cases  # some read (damaged), some refused


@pytest.mark.parametrize(
    ("name", "seed", "exercise"),
    [
        pytest.param("configs", fuzz.CONFIG, fuzz.exercise_config),
        pytest.param("suppressions", fuzz.SUPPRESSIONS, fuzz.exercise_suppressions),
    ],
)
def test_fuzzed_text_inputs(
    name: str, seed: str, exercise: Callable[[str], None], tmp_path: Path, victim: Path
) -> None:
    outcome = fuzz.run_corpus(name, _cases(seed, CASES[name], 2), exercise, tmp_path, [victim])
    _check(outcome, CASES[name])


def test_fuzzed_scan_cache(tmp_path: Path, victim: Path) -> None:
    outcome = fuzz.run_corpus("cache", _cases(fuzz.cache_seed(), CASES["cache"], 3),
                              fuzz.exercise_cache, tmp_path, [victim])  # fmt: skip
    _check(outcome, CASES["cache"])
