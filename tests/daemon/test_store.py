"""The results store: atomic 0600 files, crash recovery, retention."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from behavior.daemon.runs import RunRecord, RunState
from behavior.daemon.store import RunStore

CANCELED = RunState.CANCELED
COLLECTING = RunState.COLLECTING
COMPLETED = RunState.COMPLETED
EVALUATING = RunState.EVALUATING
FAILED = RunState.FAILED


def record(run_id: str, state: RunState, started: str = "2026-01-01T00:00:00.000Z") -> RunRecord:
    return RunRecord(id=run_id, template="t", state=state, started_at=started, duration_s=20)


def test_files_are_private(tmp_path: Path) -> None:
    store = RunStore(str(tmp_path))
    store.open()
    store.save(record("r1", COMPLETED))
    store.save_report("r1", '{"findings": []}')
    run_dir = tmp_path / "runs" / "r1"
    assert stat.S_IMODE((tmp_path / "runs").stat().st_mode) == 0o700
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    for name in ("state.json", "report.json"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600
    assert sorted(os.listdir(run_dir)) == ["report.json", "state.json"]
    assert store.read_report("r1") == '{"findings": []}'
    assert store.read_report("absent") is None


def test_recover_marks_interrupted_runs(tmp_path: Path) -> None:
    store = RunStore(str(tmp_path))
    store.open()
    store.save(record("a-done", COMPLETED, "2026-01-01T00:00:00.000Z"))
    store.save(record("b-collecting", COLLECTING, "2026-01-01T00:01:00.000Z"))
    store.save(record("c-evaluating", EVALUATING, "2026-01-01T00:02:00.000Z"))
    store.save(record("d-evaluated", EVALUATING, "2026-01-01T00:03:00.000Z"))
    store.save_report("d-evaluated", "{}")
    (tmp_path / "runs" / "e-garbage").mkdir()
    (tmp_path / "runs" / "e-garbage" / "state.json").write_text("{not json")
    recovered = {r.id: r for r in RunStore(str(tmp_path)).recover()}
    assert set(recovered) == {"a-done", "b-collecting", "c-evaluating", "d-evaluated"}
    assert recovered["a-done"].state == COMPLETED
    assert recovered["b-collecting"].state == FAILED
    assert "while the run was collecting" in recovered["b-collecting"].reason
    assert recovered["c-evaluating"].state == FAILED
    assert recovered["d-evaluated"].state == COMPLETED
    on_disk = json.loads((tmp_path / "runs" / "b-collecting" / "state.json").read_text())
    assert on_disk["state"] == FAILED


def test_retention_removes_oldest_finished_only(tmp_path: Path) -> None:
    store = RunStore(str(tmp_path))
    store.open()
    records = [
        record(f"r{i}", CANCELED if i % 2 else COMPLETED, f"2026-01-0{i + 1}") for i in range(5)
    ]
    records.append(record("r9-active", COLLECTING, "2025-12-31"))
    for r in records:
        store.save(r)
        store.save_report(r.id, "x" * 1000)
    ordered = store.load_all()
    assert ordered[0].id == "r9-active"
    removed = store.enforce_retention(ordered, max_runs=2, max_bytes=10**9, keep=set())
    assert removed == ["r0", "r1", "r2"]
    remaining = {r.id for r in store.load_all()}
    assert remaining == {"r3", "r4", "r9-active"}
    removed = store.enforce_retention(store.load_all(), max_runs=100, max_bytes=2500, keep={"r4"})
    assert removed == ["r3"]
    assert {r.id for r in store.load_all()} == {"r4", "r9-active"}
