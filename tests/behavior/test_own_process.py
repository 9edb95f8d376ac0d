"""rba never judges itself: its own process and the processes it starts are set aside,
live and in replay, and the run says so."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from behavior.interface import NullObserver
from behavior.window.assess import AssessConfig, Assessment, WindowEnd
from behavior.window.own_process import OwnProcessFilter, own_install_roots
from probes.events import EventArray, Kind, StringTable, empty
from tests.behavior.synth import ROOT_FILE, T0, FixedFacts, binary, facts_with, process
from tests.conftest import RBA, REPO, run_rba


def _rows(*rows: tuple[Kind, int, int]) -> EventArray:
    batch = empty(len(rows))
    for i, (kind, pid, ppid) in enumerate(rows):
        batch[i]["kind"], batch[i]["pid"], batch[i]["ppid"] = kind, pid, ppid
    return batch


def test_the_process_its_children_and_grandchildren_are_set_aside() -> None:
    own = OwnProcessFilter(100)
    kept = own.apply(
        _rows(
            (Kind.TCP_CONNECT, 100, 0),
            (Kind.FORK, 101, 100),  # a helper (dpkg-query, say)
            (Kind.EXEC, 101, 100),
            (Kind.FORK, 102, 101),  # its child
            (Kind.TCP_CONNECT, 200, 1),  # someone else
            (Kind.EXEC, 201, 1),
        )
    )
    assert kept["pid"].tolist() == [200, 201]
    assert own.helpers == {101, 102} and own.dropped == 4
    assert own.note() == (
        "rba's own process (pid 100) is not assessed, nor the 2 process(es) it started "
        "(4 of their events set aside)"
    )


def test_a_helper_pid_reused_after_its_exit_is_assessed_again() -> None:
    own = OwnProcessFilter(100)
    own.apply(_rows((Kind.FORK, 101, 100), (Kind.EXIT, 101, 0)))
    kept = own.apply(_rows((Kind.EXEC, 101, 1), (Kind.TCP_CONNECT, 101, 1)))
    assert len(kept) == 2  # pid 101 now belongs to an unrelated program


def test_polling_snapshots_of_children_join_the_tree() -> None:
    own = OwnProcessFilter(100)
    kept = own.apply(_rows((Kind.PROC_SNAPSHOT, 100, 1), (Kind.PROC_SNAPSHOT, 150, 100)))
    assert len(kept) == 0 and own.helpers == {150}


def test_findings_about_rbas_own_files_are_not_reported() -> None:
    own, other = "/opt/rba/venv/lib/libown.so", "/opt/vendor/lib/libother.so"
    facts = facts_with(
        [process(10, "/opt/vendor/bin/app", euid=1000, modules=(own, other))],
        {path: (ROOT_FILE, binary(path, dep=False), None) for path in (own, other)},
    )
    config = AssessConfig(duration_s=60, rules=frozenset({"software-without-dep"}),
                          own_roots=("/opt/rba/venv",))  # fmt: skip
    window = Assessment(config, strings=StringTable(), facts=FixedFacts(facts),
                        observer=NullObserver(), started_at_ns=T0)  # fmt: skip
    report = window.finish(WindowEnd(T0 + 10**9, False, {}, ("ebpf",), ()))
    assert [f.evidence["path"] for f in report.findings] == [other]
    assert "1 finding(s) about rba's own files (under /opt/rba/venv) not reported" in (
        report.run.notes
    )


def test_the_install_roots_are_rbas_packages_and_its_venv() -> None:
    roots = own_install_roots()
    assert str(REPO / "behavior") in roots and str(REPO / "probes") in roots
    if sys.prefix != sys.base_prefix:
        assert sys.prefix in roots


def _pids_in(value: Any) -> set[int]:
    if isinstance(value, dict):
        found = {value["pid"]} if isinstance(value.get("pid"), int) else set()
        for item in value.values():
            found |= _pids_in(item)
        return found
    if isinstance(value, list):
        return set().union(*(_pids_in(v) for v in value)) if value else set()
    return set()


@pytest.mark.ebpf
def test_a_live_window_and_its_replay_never_name_rbas_own_process(tmp_path: Path) -> None:
    report, trace = tmp_path / "r.json", tmp_path / "t.rbt"
    argv = [*RBA, "assess", "--duration", "3s", "--probes", "ebpf", "--format", "json"]
    proc = subprocess.run(
        [*argv, "--output", str(report), "--record", str(trace)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    own_pid = int(re.search(r"window open .*; pid (\d+)\)", proc.stderr).group(1))  # type: ignore[union-attr]
    live = json.loads(report.read_text())
    replayed = json.loads(run_rba("replay", str(trace), "--format", "json", check=True).stdout)
    for data in (live, replayed):
        note = f"rba's own process (pid {own_pid}) is not assessed"
        assert any(n.startswith(note) for n in data["run"]["notes"]), data["run"]["notes"]
        named = set().union(*(_pids_in(f["evidence"]) for f in data["findings"]))
        assert own_pid not in named
        paths = [
            str(f["evidence"].get("path") or f["evidence"].get("module")) for f in data["findings"]
        ]
        assert not [p for p in paths if p.startswith((sys.prefix + "/", str(REPO / "behavior")))]
    assert [f["evidence"] for f in live["findings"]] == [
        f["evidence"] for f in replayed["findings"]
    ]
