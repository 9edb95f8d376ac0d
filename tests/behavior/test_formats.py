"""The text and JSON formats: pure, deterministic, and true to docs/design.md's contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from behavior.formats import Format, render
from behavior.interface import Finding, Report, RuleStatus, RunInfo, Severity
from tests.conftest import REPO


def _finding(rule_id: str, severity: Severity, **evidence: object) -> Finding:
    return Finding(
        rule_id=rule_id,
        title=f"Title of {rule_id}",
        severity=severity,
        description="What it means.",
        recommendation="What to do about it, in words long enough to wrap the line " * 2,
        evidence=dict(evidence),
        count=3,
        first_seen="2026-01-01T00:00:00.000Z",
        last_seen="2026-01-01T00:01:00.000Z",
    )


REPORT = Report(
    run=RunInfo(
        id="20260101T000000Z-abcdef",
        host="web-1",
        started_at="2026-01-01T00:00:00.000Z",
        ended_at="2026-01-01T00:15:00.000Z",
        duration_s=900.0,
        sources=("ebpf", "poll"),
        events=12345,
        lost_events=2,
        rules=(
            RuleStatus("insecure-client-login", True),
            RuleStatus("unused-listening-port", True, "lower confidence: polling only"),
            RuleStatus("root-process-insecure-permissions", False, "not root: maps unreadable"),
        ),
        partial=True,
        notes=("eBPF unavailable: polling only",),
    ),
    findings=(
        _finding("root-process-insecure-permissions", Severity.HIGH, module="/x" * 60),
        _finding(
            "insecure-client-login",
            Severity.MEDIUM,
            process={"pid": 4, "exe": "/usr/bin/telnet"},
            pids=[4, 5],
            remote={"address": "198.51.100.2", "port": 23},
        ),
        _finding("unused-listening-port", Severity.INFORMATIONAL, port=8080),
    ),
)


def test_json_follows_the_contract() -> None:
    data = json.loads(render(Format.JSON, REPORT))
    assert data["schema_version"] == 1
    run = data["run"]
    for key in ("id", "host", "started_at", "ended_at", "sources", "events", "lost_events"):
        assert key in run
    assert run["partial"] is True and run["replayed"] is False
    assert run["rules"][2] == {
        "rule_id": "root-process-insecure-permissions",
        "ran": False,
        "reason": "not root: maps unreadable",
    }
    finding = data["findings"][1]
    assert list(finding) == [
        "rule_id",
        "fingerprint",
        "title",
        "severity",
        "description",
        "recommendation",
        "evidence",
        "count",
        "first_seen",
        "last_seen",
    ]
    assert finding["severity"] == "Medium" and finding["evidence"]["remote"]["port"] == 23


def test_json_and_text_are_the_same_in_any_process() -> None:
    """Nothing in a rendering depends on hash order, time or the process (a daemon and a
    replay elsewhere must write the same bytes), so two interpreters with different hash
    seeds render this report identically, and as this process does."""
    script = (
        "import sys; from tests.behavior.test_formats import REPORT; "
        "from behavior.formats import Format, render; "
        "sys.stdout.write(render(Format.JSON, REPORT) + render(Format.TEXT, REPORT))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout
        for seed in ("1", "2")
    }  # fmt: skip
    assert outputs == {render(Format.JSON, REPORT) + render(Format.TEXT, REPORT)}


def test_text_is_grouped_by_severity_within_80_columns_with_a_summary() -> None:
    text = render(Format.TEXT, REPORT)
    lines = text.splitlines()
    # Only a word longer than the width may pass it, on a line of its own.
    assert all(len(line) <= 80 or len(line.split()) <= 2 for line in lines)
    high, medium, info = (lines.index(h) for h in ("HIGH (1)", "MEDIUM (1)", "INFORMATIONAL (1)"))
    assert high < medium < info
    assert "LOW (" not in text
    assert lines[-1] == "3 findings: 1 High, 1 Medium, 0 Low, 1 Informational (partial window)"
    flat = " ".join(text.split())  # wrapped lines joined again
    assert "rule not run: root-process-insecure-permissions: not root" in flat
    assert "lost events: 2" in flat and "ended early (partial)" in flat
    assert "remote: address=198.51.100.2, port=23" in flat


def test_text_never_splits_a_path() -> None:
    long_path = (
        "/usr/lib/python3/dist-packages/numpy/core/"
        "_multiarray_umath.cpython-311-x86_64-linux-gnu.so"
    )
    finding = _finding("software-without-dep", Severity.MEDIUM, path=long_path, note="a " * 50)
    text = render(Format.TEXT, Report(run=REPORT.run, findings=(finding,)))
    assert any(line.split()[-1:] == [long_path] for line in text.splitlines())


def test_empty_report_says_so() -> None:
    empty = Report(run=REPORT.run, findings=())
    assert render(Format.TEXT, empty).splitlines()[-1].startswith("0 findings: 0 High")
    assert json.loads(render(Format.JSON, empty))["findings"] == []
