"""Golden files: the same report (the sample, with one matching, one non-matching and
one expired suppression) rendered in every format, compared byte for byte.

After an intended change of a format or of the rules' evidence, regenerate with
``RBA_UPDATE_GOLDEN=1 .venv/bin/pytest tests/formats/test_golden.py`` and review the diff.
The golden OCSF events are validated against the schema, the golden ASFF findings against
the required-attribute list and limits."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from behavior.formats import Format, render
from behavior.interface import Report
from tests.formats.test_asff import _check_limits

GOLDEN = Path(__file__).parent / "golden"
FILES = {
    Format.TEXT: "report.txt",
    Format.JSON: "report.json",
    Format.OCSF: "report.ocsf.json",
    Format.OCSF_JSONL: "report.ocsf.jsonl",
    Format.ASFF: "report.asff.json",
    Format.HTML: "report.html",
}


def test_every_format_has_a_golden_file() -> None:
    assert set(FILES) == set(Format)


@pytest.mark.parametrize("fmt", list(FILES))
def test_golden(fmt: Format, suppressed_report: Report) -> None:
    path = GOLDEN / FILES[fmt]
    text = render(fmt, suppressed_report)
    if os.environ.get("RBA_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{path} differs: see the module docstring to regenerate"


def test_golden_ocsf_validates(ocsf_errors: Callable[[dict[str, Any]], list[str]]) -> None:
    events = json.loads((GOLDEN / FILES[Format.OCSF]).read_text())
    lines = (GOLDEN / FILES[Format.OCSF_JSONL]).read_text().splitlines()
    assert [json.loads(line) for line in lines] == events
    assert {e["status"] for e in events} == {"New", "Suppressed"}
    for event in events:
        assert ocsf_errors(event) == []


def test_golden_asff_has_every_required_attribute_within_limits() -> None:
    findings = json.loads((GOLDEN / FILES[Format.ASFF]).read_text())
    assert len(findings) == 7
    for finding in findings:
        _check_limits(finding)
