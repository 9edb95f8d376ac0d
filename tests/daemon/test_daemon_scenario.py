"""The daemon finds what ``rba assess`` finds: one scenario (real servers in a peer network
namespace, real clients, gcc-built programs, root processes with insecure modules) runs
inside a 20 s daemon run and an ``rba assess`` window at the same time; the findings the
scenario causes must be the same in both reports, fetched from the daemon over its
socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from behavior.rules import RULE_IDS
from tests.daemon.daemon_proc import DaemonProcess
from tests.support.assess import AssessRun
from tests.support.scenarios import IDLE_PORT, USED_PORT, Lab, drive, lab

pytestmark = [pytest.mark.ebpf, pytest.mark.netns, pytest.mark.root]

DAEMON_WINDOW_S = 20
ASSESS_WINDOW_S = 10
# The seven core rules (the catalogue lists them first): the scenario triggers each.
EXPECTED_RULES = set(RULE_IDS[:7])
# Evidence that depends on the window's length or start rather than on what happened.
WINDOW_DEPENDENT = {"listening_s", "listening_fraction", "window_s", "first_seen", "last_seen"}


@pytest.fixture(scope="module")
def scenario_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("daemon-lab")
    workdir.chmod(0o755)
    with lab(workdir) as the_lab:
        yield the_lab


def lab_markers(the_lab: Lab) -> list[str]:
    """Strings that appear in the evidence of findings the scenario causes."""
    return [
        the_lab.ns.peer_ip,
        the_lab.ns.host_ip,
        str(the_lab.files.world_writable_dir),
        str(the_lab.files.script),
        str(the_lab.files.programs.execstack),
        str(the_lab.files.programs.hardened),
    ]


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in WINDOW_DEPENDENT}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def scenario_findings(report: dict[str, Any], the_lab: Lab) -> set[str]:
    """The findings caused by the lab, without window-dependent evidence, as JSON text."""
    markers = lab_markers(the_lab)
    found = set()
    for finding in report["findings"]:
        evidence = json.dumps(finding["evidence"], sort_keys=True)
        ports = {IDLE_PORT, USED_PORT}
        if any(m in evidence for m in markers) or finding["evidence"].get("port") in ports:
            stable = {k: _stable(v) for k, v in finding.items() if k not in WINDOW_DEPENDENT}
            found.add(json.dumps(stable, sort_keys=True))
    return found


def test_daemon_run_matches_rba_assess(scenario_lab: Lab, tmp_path: Path) -> None:
    daemon = DaemonProcess(
        tmp_path, f'[[template]]\nname = "scenario"\nduration = "{DAEMON_WINDOW_S}s"\n'
    )
    try:
        daemon.start()
        run_id = daemon.request("run", template="scenario")
        with AssessRun(tmp_path, duration=ASSESS_WINDOW_S, probes="auto") as assess:
            entry = daemon.run_of(run_id)
            assert entry["state"] == "collecting", entry
            drive(scenario_lab)
            assert daemon.run_of(run_id)["time_left_s"] > 1.0, "scenario overran the daemon run"
        entry = daemon.wait_finished(run_id, timeout=DAEMON_WINDOW_S + 90)
        assert entry["state"] == "completed", entry
        ours = json.loads(daemon.request("findings", run=run_id, format="json"))
        text = daemon.request("findings", run=run_id, format="text")
    finally:
        daemon.close()
    theirs = assess.report.data
    assert ours["run"]["id"] == run_id and not ours["run"]["partial"]
    assert ours["run"]["sources"] == theirs["run"]["sources"]
    ours_found = scenario_findings(ours, scenario_lab)
    theirs_found = scenario_findings(theirs, scenario_lab)
    rules = {json.loads(f)["rule_id"] for f in ours_found}
    assert rules >= EXPECTED_RULES, rules  # (extended rules may add more)
    assert len(ours_found) >= 10, ours_found
    assert ours_found == theirs_found, (
        "only in the daemon's report:\n"
        + "\n".join(sorted(ours_found - theirs_found))
        + "\nonly in rba assess's report:\n"
        + "\n".join(sorted(theirs_found - ours_found))
    )
    assert f"{len(ours['findings'])} findings" in text
