"""The daemon finds what ``rba assess`` finds: one scenario (real servers in a peer network
namespace, real clients, gcc-built programs, root processes with insecure modules) runs
inside a daemon run and an ``rba assess`` window at the same time; the findings the
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
from tests.support.scenarios import Lab, drive, lab

pytestmark = [pytest.mark.ebpf, pytest.mark.netns, pytest.mark.root]

# Each window only has to hold the scenario (a few seconds): both open after every bcc
# compilation is done (see the test).
DAEMON_WINDOW_S = 10
ASSESS_WINDOW_S = 10
# The seven core rules (the catalogue lists them first): the scenario triggers each.
EXPECTED_RULES = set(RULE_IDS[:7])
# What identifies a finding's subject and verdict. Left out: details two independent
# readers of /proc can legitimately differ on for the same event, because they read at
# different moments (a process's cmdline or exe link once it exited, the runtime stack
# mapping of a 50 ms program), and values that depend on the window's length.
IDENTITY_KEYS = (
    "remote",
    "protocol",
    "transport",
    "pids",
    "port",
    "bind_addresses",
    "accepted",
    "usage",
    "path",
    "package",
    "reason",
    "module",
    "offending_path",
    "owner_uid",
    "mode",
    "server_pid",
    "program",
)


@pytest.fixture(scope="module")
def scenario_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("daemon-lab")
    workdir.chmod(0o755)
    with lab(workdir) as the_lab:
        yield the_lab


def caused_by_lab(finding: dict[str, Any], the_lab: Lab) -> bool:
    """Whether this lab's scenario caused ``finding`` (other tests may run labs of their
    own on this machine at the same time, on other addresses and in other directories)."""
    evidence = finding["evidence"]
    files = str(the_lab.files.programs.execstack.parent)
    return (
        evidence.get("remote", {}).get("address") == the_lab.ns.peer_ip
        or the_lab.ns.host_ip in evidence.get("bind_addresses", ())
        or str(evidence.get("path", "")).startswith(files)
        or str(evidence.get("module", "")).startswith(files)
        or evidence.get("server_pid") in {s.pid for s in the_lab.peer.values()}
    )


def scenario_findings(report: dict[str, Any], the_lab: Lab) -> set[str]:
    """The identities (rule, severity, count, subject) of the findings the lab caused."""
    found = set()
    for finding in report["findings"]:
        if caused_by_lab(finding, the_lab):
            evidence = finding["evidence"]
            subject = {k: evidence[k] for k in IDENTITY_KEYS if k in evidence}
            identity = [finding["rule_id"], finding["severity"], finding["count"], subject]
            found.add(json.dumps(identity, sort_keys=True))
    return found


def test_daemon_run_matches_rba_assess(scenario_lab: Lab, tmp_path: Path) -> None:
    daemon = DaemonProcess(
        tmp_path,
        '[[template]]\nname = "warm-up"\nduration = "1s"\n\n'
        f'[[template]]\nname = "scenario"\nduration = "{DAEMON_WINDOW_S}s"\n',
    )
    try:
        daemon.start()
        # The daemon's first run compiles and loads its eBPF programs (seconds on a busy
        # machine); later runs reuse them and open their window at once. Warmed up so,
        # the daemon's window opens right after rba assess's, which waited for its own
        # compilation: neither window is eaten by the other's start-up.
        daemon.request("run", template="warm-up")
        with AssessRun(tmp_path, duration=ASSESS_WINDOW_S, probes="auto") as assess:
            run_id = daemon.request("run", template="scenario")
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
    rules = {json.loads(f)[0] for f in ours_found}
    assert rules >= EXPECTED_RULES, rules  # (extended rules may add more)
    assert len(ours_found) >= 10, ours_found
    assert ours_found == theirs_found, (
        "only in the daemon's report:\n"
        + "\n".join(sorted(ours_found - theirs_found))
        + "\nonly in rba assess's report:\n"
        + "\n".join(sorted(theirs_found - ours_found))
    )
    assert f"{len(ours['findings'])} findings" in text
