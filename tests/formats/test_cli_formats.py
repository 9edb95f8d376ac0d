"""The formats and suppressions through the real CLI: a live window (polling) that sees a
listener this test opens, recorded, then replayed in every format with the same file."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_rba


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """(trace, suppression file, port): a 3 s polling window with an idle listener."""
    tmp = tmp_path_factory.mktemp("live")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    suppressions = tmp / "ops.toml"
    suppressions.write_text(
        "[[suppression]]\n"
        "rule = 'unused-listening-port'\n"
        f"port = {port}\n"
        "reason = 'the test listener, idle on purpose'\n"
    )
    trace = tmp / "window.trace"
    try:
        result = run_rba(
            "assess", "--duration", "3s", "--probes", "poll", "--poll-interval", "0.2s",
            "--format", "json", "--output", str(tmp / "live.json"),
            "--suppressions", str(suppressions), "--record", str(trace),
        )  # fmt: skip
    finally:
        listener.close()
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp / "live.json").read_text())
    ports = [s["evidence"]["port"] for s in data["suppressed"]]
    assert ports == [port]
    assert data["suppressed"][0]["suppression"]["source"] == f"{suppressions}:1"
    assert all(f["evidence"].get("port") != port for f in data["findings"])
    assert any(s["port"] == port for s in data["timeline"]["listeners"])
    return trace, suppressions, port


def _replay(live: tuple[Path, Path, int], fmt: str, *extra: str) -> str:
    trace, suppressions, _ = live
    result = run_rba(
        "replay", str(trace), "--format", fmt, "--suppressions", str(suppressions), *extra
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_replayed_ocsf_marks_the_suppressed_listener_and_validates(
    live: tuple[Path, Path, int], ocsf_errors: Callable[[dict[str, Any]], list[str]]
) -> None:
    port = live[2]
    events = json.loads(_replay(live, "ocsf"))
    ours = [e for e in events if e["unmapped"]["rba"]["evidence"].get("port") == port]
    assert [e["status"] for e in ours] == ["Suppressed"]
    assert "idle on purpose" in ours[0]["comment"]
    for event in events:
        assert ocsf_errors(event) == []
    assert len(_replay(live, "ocsf-jsonl").splitlines()) == len(events)


def test_replayed_asff_uses_the_given_account(live: tuple[Path, Path, int]) -> None:
    port = live[2]
    text = _replay(live, "asff", "--aws-account-id", "123456789012", "--aws-region", "eu-west-1")
    batches = [json.loads(line) for line in text.splitlines()]  # one batch of <= 100 a line
    assert all(0 < len(batch) <= 100 for batch in batches)
    findings = [f for batch in batches for f in batch]
    ours = [f for f in findings if f["ProductFields"].get("rba/evidence/port") == str(port)]
    assert [f["Workflow"]["Status"] for f in ours] == ["SUPPRESSED"]
    assert {f["AwsAccountId"] for f in findings} == {"123456789012"}
    assert {f["Region"] for f in findings} == {"eu-west-1"}


def test_replayed_text_and_html_show_the_reason(live: tuple[Path, Path, int]) -> None:
    text = _replay(live, "text")
    assert "SUPPRESSED (1)" in text and "idle on purpose" in text
    page = _replay(live, "html")
    assert "<h2>Suppressed (1)</h2>" in page and "idle on purpose" in page
    assert page.count("<svg ") >= 1 and f":{live[2]} " in page  # the listener is plotted
