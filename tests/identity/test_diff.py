"""``rba diff`` on reports of the real assessment core (tests/formats/sample.py): the
three lists, persisting counts from both sides, ``--fail-on`` on new findings only,
the text and ASFF forms, and one-line errors for bad input."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

from behavior.formats.diff import diff_reports, render_diff_text
from behavior.formats.json_format import render_json, report_from_dict
from behavior.interface import Report, Severity
from tests.conftest import RBA, REPO
from tests.formats.sample import sample_report


def _pair() -> tuple[Report, Report]:
    """An old report, and a new one where the High finding is gone, one Low finding
    is new and the rest stayed (seen more often)."""
    base = sample_report()
    high = next(f for f in base.findings if f.severity is Severity.HIGH)
    low = next(f for f in base.findings if f.severity is Severity.LOW)
    rest = [f for f in base.findings if f not in (high, low)]
    old = dataclasses.replace(base, findings=(high, *rest))
    new_run = dataclasses.replace(base.run, id="20991231T000000Z-abcdef")
    grown = tuple(dataclasses.replace(f, count=f.count + 2) for f in rest)
    return old, Report(run=new_run, findings=(*grown, low))


def _write(tmp_path: Path, name: str, report: Report) -> Path:
    path = tmp_path / name
    path.write_text(render_json(report))
    return path


def _rba(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RBA, "diff", *args], check=False, cwd=REPO, capture_output=True, text=True
    )


def test_json_reports_read_back_with_their_subjects() -> None:
    report = sample_report()
    again = report_from_dict(json.loads(render_json(report)))
    assert [f.subject for f in again.findings] == [f.subject for f in report.findings]
    assert [f.fingerprint for f in again.findings] == [f.fingerprint for f in report.findings]
    assert render_json(dataclasses.replace(again, timeline=report.timeline)) == render_json(report)


def test_new_resolved_and_persisting(tmp_path: Path) -> None:
    old, new = _pair()
    result = _rba(str(_write(tmp_path, "o.json", old)), str(_write(tmp_path, "n.json", new)),
                  "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    diff = json.loads(result.stdout)
    assert [f["severity"] for f in diff["new"]] == ["Low"]
    assert [f["severity"] for f in diff["resolved"]] == ["High"]
    assert len(diff["persisting"]) == len(old.findings) - 1
    for item in diff["persisting"]:
        assert item["new_count"] == item["old_count"] + 2 == item["count"]
    assert diff["old_run"]["id"] == old.run.id and diff["new_run"]["id"] == new.run.id


def test_fail_on_applies_to_new_findings_only(tmp_path: Path) -> None:
    old, new = _pair()
    paths = [str(_write(tmp_path, "o.json", old)), str(_write(tmp_path, "n.json", new))]
    assert _rba(*paths, "--fail-on", "medium").returncode == 0  # Medium ones persist
    assert _rba(*paths, "--fail-on", "low").returncode == 1  # the new one is Low
    assert _rba(*reversed(paths), "--fail-on", "high").returncode == 1  # High is new then


def test_text_and_asff(tmp_path: Path) -> None:
    old, new = _pair()
    text = render_diff_text(diff_reports(old, new))
    assert text.splitlines()[1] == f"1 new, 1 resolved, {len(old.findings) - 1} persisting"
    paths = [str(_write(tmp_path, "o.json", old)), str(_write(tmp_path, "n.json", new))]
    (batch,) = [json.loads(line) for line in _rba(*paths, "--format", "asff").stdout.splitlines()]
    states = [f["RecordState"] for f in batch]
    assert states.count("ARCHIVED") == 1 and len(batch) == len(new.findings) + 1
    resolved = next(f for f in old.findings if f.severity is Severity.HIGH)
    assert next(f for f in batch if f["RecordState"] == "ARCHIVED")["Id"].endswith(
        resolved.fingerprint
    )


def test_bad_input_is_a_one_line_error(tmp_path: Path) -> None:
    good = str(_write(tmp_path, "o.json", sample_report()))
    bad = tmp_path / "bad.json"
    for text in ("{", '{"schema_version": 1}', "[]", '{"schema_version": 1, "run": {}}'):
        bad.write_text(text)
        result = _rba(good, str(bad))
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, text
        assert result.stderr.startswith("rba diff: ")
    result = _rba(good, str(tmp_path / "missing.json"))
    assert result.returncode == 2 and "cannot read" in result.stderr
