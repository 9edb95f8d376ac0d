"""The assessment core with synthetic windows, and ``rba assess`` for real on this host."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from behavior.facts.interface import RecordedFactSource
from behavior.formats import Format, render
from behavior.interface import NullObserver
from behavior.rules import RULE_IDS
from behavior.window.assess import AssessConfig, AssessError, Assessment, WindowEnd
from probes.events import StringTable
from probes.interface import SourceStats
from tests.behavior.synth import (
    ROOT_FILE,
    SEC,
    T0,
    FixedFacts,
    batch,
    binary,
    connect,
    facts_with,
    listen,
    process,
)
from tests.conftest import RBA, REPO, run_rba
from tests.support.other_user import OtherUserPython


def _window(strings: StringTable, rules: frozenset[str] | None = None) -> Assessment:
    exe = "/opt/app/bin/app"
    facts = facts_with(
        [process(10, exe, euid=1000)], {exe: (ROOT_FILE, binary(exe, dep=False), None)}
    )
    facts.gaps["maps-gone"] = {"pid 11 (true)"}
    return Assessment(
        AssessConfig(duration_s=60, rules=rules),
        strings=strings,
        facts=RecordedFactSource([]) if rules == frozenset() else FixedFacts(facts),
        observer=NullObserver(),
        run_id="run-1",
        started_at_ns=T0,
    )


def _finish(assessment: Assessment) -> str:
    report = assessment.finish(
        WindowEnd(
            ended_at_ns=T0 + 60 * SEC,
            partial=False,
            source_stats={"ebpf": SourceStats(100, 3, ("x",)), "poll": SourceStats(5, 1)},
            sources=("ebpf", "poll"),
            notices=("a notice",),
        )
    )
    return render(Format.JSON, report)


def test_a_window_reports_findings_and_run_facts() -> None:
    strings = StringTable()
    window = _window(strings)
    window.feed(batch(connect(strings, 10, "198.51.100.9", 23), listen(strings, 10, "0.0.0.0", 9)))
    window.feed(batch(connect(strings, 10, "198.51.100.9", 80, t=2)))
    data = json.loads(_finish(window))
    run = data["run"]
    assert (run["id"], run["events"], run["lost_events"]) == ("run-1", 3, 4)
    assert run["duration_s"] == 60.0 and run["sources"] == ["ebpf", "poll"]
    assert [r["rule_id"] for r in run["rules"]] == list(RULE_IDS)
    assert all(r["ran"] for r in run["rules"])
    assert run["notes"][0] == "a notice"
    assert any(n == "ebpf: 1 gap(s): x" for n in run["notes"])
    assert any(n.startswith("1 process(es) exited before") for n in run["notes"])
    # Most severe first, then by catalogue order.
    assert [f["rule_id"] for f in data["findings"]] == [
        "insecure-client-login",
        "software-without-dep",
        "insecure-client-general",
        "unused-listening-port",
    ]


def test_the_same_inputs_give_the_same_bytes() -> None:
    outputs = []
    for _ in range(2):
        strings = StringTable()
        window = _window(strings)
        window.feed(connect(strings, 10, "198.51.100.9", 23))
        outputs.append(_finish(window))
    assert outputs[0] == outputs[1]


def test_selected_rules_only() -> None:
    strings = StringTable()
    window = _window(strings, frozenset({"insecure-client-general"}))
    window.feed(connect(strings, 10, "198.51.100.9", 23))
    data = json.loads(_finish(window))
    assert [r["rule_id"] for r in data["run"]["rules"]] == ["insecure-client-general"]
    assert data["findings"] == []


def test_unknown_rule_is_an_error() -> None:
    with pytest.raises(AssessError, match="unknown rule"):
        _window(StringTable(), frozenset({"no-such-rule"}))


@pytest.mark.parametrize(
    "args",
    [
        ["--duration", "0s"],
        ["--duration", "25h"],
        ["--duration", "soon"],
        ["--format", "xml"],
        ["--fail-on", "severe"],
        ["--rules", "no-such-rule"],
    ],
)
def test_bad_usage_exits_2_with_one_line(args: list[str]) -> None:
    result = run_rba("assess", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("rba assess: ") and result.stderr.count("\n") == 1


def test_rules_command_lists_the_catalogue() -> None:
    result = run_rba("rules", "--format", "json", check=True)
    entries = json.loads(result.stdout)
    assert [e["id"] for e in entries] == list(RULE_IDS)
    assert {e["severity"] for e in entries[:7]} == {"High", "Medium", "Low", "Informational"}


@pytest.mark.root
def test_live_poll_window_writes_0600_json_and_fails_on_severity(tmp_path: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    out = tmp_path / "report.json"
    try:
        base = ["assess", "--duration", "2s", "--probes", "poll", "--format", "json"]
        base += ["--rules", "unused-listening-port", "--output", str(out)]
        result = run_rba(*base, "--fail-on", "info")
        again = run_rba(*base, "--fail-on", "low")
    finally:
        server.close()
    assert result.returncode == 1, result.stderr
    assert again.returncode == 0, again.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    data = json.loads(out.read_text())
    [mine] = [f for f in data["findings"] if f["evidence"]["port"] == port]
    assert mine["evidence"]["process"]["pid"] == os.getpid()
    assert mine["evidence"]["loopback_only"] is True
    assert mine["evidence"]["confidence"] == "lower"
    assert data["run"]["sources"] == ["poll"] and result.stdout == ""


def _wait_for_window(proc: subprocess.Popen[str]) -> None:
    """Read stderr up to the line announcing the open window."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("rba: window open"):
            return
    raise AssertionError(f"no window opened; exit {proc.wait()}")


@pytest.mark.root
def test_sigint_ends_the_window_early_with_a_partial_report(tmp_path: Path) -> None:
    out = tmp_path / "partial.json"
    argv = [*RBA, "assess", "--duration", "60s", "--probes", "poll", "--format", "json"]
    proc = subprocess.Popen(
        [*argv, "--output", str(out)], cwd=REPO, stderr=subprocess.PIPE, text=True
    )
    _wait_for_window(proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    run = json.loads(out.read_text())["run"]
    assert run["partial"] is True and run["duration_s"] < 30
    assert "partial" in proc.stderr.read()


# The char[64] gives -fno-stack-protector something to leave unprotected: without it the
# program has nothing to protect, and rightly no stack-cookie finding (docs/scan.md).
EXECSTACK_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(int argc, char **argv) {
    char label[64];
    long ms = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    snprintf(label, sizeof label, "%s", argc > 2 ? argv[2] : "probe");
    nanosleep(&ts, NULL);
    return (int)strlen(label) < 0;
}
"""


@pytest.mark.ebpf
def test_live_ebpf_window_catches_a_50ms_execstack_binary(tmp_path: Path) -> None:
    source = tmp_path / "es.c"
    source.write_text(EXECSTACK_C)
    program = tmp_path / "rba-execstack-probe"
    subprocess.run(
        ["gcc", "-O1", "-z", "execstack", "-fno-stack-protector", "-o", str(program), str(source)],
        check=True,
    )
    out = tmp_path / "report.json"
    argv = [*RBA, "assess", "--duration", "4s", "--probes", "ebpf", "--format", "json"]
    proc = subprocess.Popen(
        [*argv, "--output", str(out)], cwd=REPO, stderr=subprocess.PIPE, text=True
    )
    _wait_for_window(proc)
    run = subprocess.run([str(program), "50"], check=True)
    assert run.returncode == 0
    assert proc.wait(timeout=120) == 0
    data = json.loads(out.read_text())
    for rule_id in ("software-without-dep", "software-without-stack-cookies"):
        [f] = [
            f
            for f in data["findings"]
            if f["rule_id"] == rule_id and f["evidence"]["path"] == str(program)
        ]
        assert f["evidence"]["package"] == "unpackaged" and f["evidence"]["format"] == "elf"
        assert f["count"] == 1
    assert "ebpf" in data["run"]["sources"] and sys.executable


@pytest.mark.root
def test_unprivileged_ebpf_request_is_a_one_line_error(other_user: OtherUserPython) -> None:
    result = subprocess.run(
        other_user.argv("-m", "behavior", "assess", "--duration", "2s", "--probes", "ebpf"),
        cwd="/",
        env=other_user.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == "rba assess: cannot start the probes: not root\n"
    assert result.stdout == ""
