"""Finding identity over real windows (real eBPF, real servers and clients of the lab in
tests.support.scenarios): two windows over the same lab give the same fingerprints for
the same subjects although every pid differs; a listener restarted with a new pid keeps
its fingerprint; and ``rba diff`` names what appeared, what disappeared and what stayed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RBA, REPO
from tests.support.assess import AssessRun, Report
from tests.support.scenarios import IDLE_PORT, Lab, drive, lab
from tests.support.servers import ServerSet

pytestmark = [pytest.mark.netns, pytest.mark.root, pytest.mark.ebpf]

WINDOW_S = 9.0  # the scenario takes about 3 s; the listeners live through the window
KEPT, GONE, ARRIVED = IDLE_PORT + 100, IDLE_PORT + 101, IDLE_PORT + 102


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Report, Report, Lab]]:
    """Window 1 with listeners KEPT and GONE; then KEPT restarts (a new pid), GONE stops
    and ARRIVED starts; window 2. The lab's scenario runs in both."""
    work = tmp_path_factory.mktemp("identity")
    (work / "lab").mkdir()
    with lab(work / "lab") as the_lab, ServerSet(work, None) as extra:
        address = the_lab.ns.host_ip
        kept, gone = extra.listener(address, KEPT), extra.listener(address, GONE)
        with AssessRun(work, duration=WINDOW_S, probes="ebpf") as first:
            drive(the_lab)
        kept.stop()
        gone.stop()
        restarted = extra.listener(address, KEPT)
        assert restarted.pid != kept.pid
        extra.listener(address, ARRIVED)
        with AssessRun(work, duration=WINDOW_S, probes="ebpf") as second:
            drive(the_lab)
        yield first.report, second.report, the_lab


def _unused(report: Report, port: int) -> dict[str, Any]:
    [found] = report.select("unused-listening-port", port=port)
    return found


def _lab_subjects(report: Report, the_lab: Lab) -> dict[tuple[object, ...], dict[str, Any]]:
    """The findings about the lab's own subjects, keyed as the test sees them."""
    peer, files = the_lab.ns.peer_ip, str(the_lab.files.preload.parent.parent)
    out: dict[tuple[object, ...], dict[str, Any]] = {}
    for f in report.findings:
        ev = f["evidence"]
        remote = ev.get("remote") or {}
        if remote.get("address") == peer:
            key: tuple[object, ...] = (f["rule_id"], remote["port"], ev["process"]["exe"])
        elif "bind_addresses" in ev and the_lab.ns.host_ip in ev["bind_addresses"]:
            key = (f["rule_id"], ev["port"])
        elif str(ev.get("path", "")).startswith(files) or str(ev.get("module", "")).startswith(
            files
        ):
            key = (f["rule_id"], ev.get("path") or ev.get("module"), ev.get("exe"))
        else:
            continue
        assert key not in out, key
        out[key] = f
    return out


def test_two_windows_over_the_same_lab_give_the_same_fingerprints(
    windows: tuple[Report, Report, Lab],
) -> None:
    first, second, the_lab = windows
    one, two = _lab_subjects(first, the_lab), _lab_subjects(second, the_lab)
    common = set(one) & set(two)
    rules = {key[0] for key in common}
    # clients to the peer, the lab's listeners, its gcc-built files and root modules
    assert {"insecure-client-login", "unused-listening-port", "software-without-dep"} <= rules
    assert {"root-process-insecure-permissions"} <= rules
    for key in common:
        assert one[key]["fingerprint"] == two[key]["fingerprint"], key
    clients = [k for k in common if k[0] == "insecure-client-login"]
    assert clients and all(
        one[k]["evidence"]["process"]["pid"] != two[k]["evidence"]["process"]["pid"]
        for k in clients
    )
    assert len({f["fingerprint"] for f in first.findings}) == len(first.findings)
    machine_id = Path("/etc/machine-id").read_text().strip()
    assert first.run["machine_id"] == second.run["machine_id"] == machine_id


def test_a_listener_restarted_with_a_new_pid_keeps_its_fingerprint(
    windows: tuple[Report, Report, Lab],
) -> None:
    first, second, _ = windows
    before, after = _unused(first, KEPT), _unused(second, KEPT)
    assert before["evidence"]["process"]["pid"] != after["evidence"]["process"]["pid"]
    assert before["fingerprint"] == after["fingerprint"]


def _diff(
    first: Report, second: Report, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(first.data))
    new.write_text(json.dumps(second.data))
    return subprocess.run(
        [*RBA, "diff", str(old), str(new), *args],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def test_rba_diff_names_what_appeared_disappeared_and_stayed(
    windows: tuple[Report, Report, Lab], tmp_path: Path
) -> None:
    first, second, _ = windows
    result = _diff(first, second, tmp_path, "--format", "json", "--fail-on", "info")
    assert result.returncode == 1, result.stderr  # ARRIVED is new and Informational
    diff = json.loads(result.stdout)
    new = {f["fingerprint"] for f in diff["new"]}
    resolved = {f["fingerprint"] for f in diff["resolved"]}
    persisting = {f["fingerprint"]: f for f in diff["persisting"]}
    assert _unused(second, ARRIVED)["fingerprint"] in new
    assert _unused(first, GONE)["fingerprint"] in resolved
    kept = persisting[_unused(second, KEPT)["fingerprint"]]
    assert kept["old_count"] == kept["new_count"] == 1
    assert not new & resolved and not (new | resolved) & set(persisting)
    assert len(new) + len(persisting) == len(second.findings)
    assert len(resolved) + len(persisting) == len(first.findings)

    text = _diff(first, second, tmp_path).stdout
    assert f"port {ARRIVED}" in text.split("RESOLVED")[0] and f"port {GONE}" in text
    assert "new," in text.splitlines()[1]

    batches = [
        json.loads(line)
        for line in _diff(first, second, tmp_path, "--format", "asff").stdout.splitlines()
    ]
    archived = [f for b in batches for f in b if f["RecordState"] == "ARCHIVED"]
    assert len(archived) == len(resolved)
    assert any(f["Id"].endswith(_unused(first, GONE)["fingerprint"]) for f in archived)
