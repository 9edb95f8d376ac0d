"""Processes judged in their own world (issue 14), with real podman containers and a bare
``unshare --mount`` process: their files are read through their own root, owners are seen
through their user namespace, and findings name the container. A recorded window replays
to the same findings, for eBPF and for polling.

The containers and the namespace process start before the windows; each window's start
snapshot meets them, and the fact gatherer reads them from /proc like any process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from behavior.facts.interface import ProcessFact
from behavior.facts.live import LiveFactSource
from behavior.recording.loading import load_recording
from binanalysis import FactsCache
from probes.events import Kind, StringTable
from tests.behavior.synth import batch, event
from tests.conftest import RBA, REPO
from tests.containers.lab import Lab, podman_lab
from tests.support.assess import AssessRun, Finding, Report, evidence_value

pytestmark = [pytest.mark.root]
WINDOW_S = 5.0
ROOT_RULE = "root-process-insecure-permissions"
USERNS = ("--uidmap", "0:200000:65536", "--gidmap", "0:200000:65536")

if os.geteuid() != 0 or shutil.which("podman") is None or shutil.which("runc") is None:
    pytest.skip(
        "needs root, podman and runc (apt-get install podman runc)", allow_module_level=True
    )


@dataclass
class World:
    """The lab, its processes' host pids, and the reports of both windows and replays."""

    lab: Lab
    pids: dict[str, int]
    bare_lib: str
    live: dict[str, Report]
    replayed: dict[str, Report]
    recorded: dict[str, list[ProcessFact]]  # the process facts each trace holds

    def recorded_process(self, probes: str, name: str) -> ProcessFact:
        """The recorded fact of the process started as ``name``."""
        found = [p for p in self.recorded[probes] if p.pid == self.pids[name]]
        assert found, f"no recorded fact for {name}"
        return found[0]


def _bare_namespace(work: Path, lib_source: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A root process in a private mount namespace (no runtime): a tmpfs hides the host's
    safe ``libx.so`` behind a world-writable one, which the process preloads."""
    directory = work / "bare"
    directory.mkdir()
    host_lib = directory / "libx.so"
    host_lib.write_bytes(lib_source.read_bytes())
    host_lib.chmod(0o644)
    script = (
        f"mount -t tmpfs rba-ct {directory} && cp {lib_source} {host_lib} && "
        f"chmod 666 {host_lib} && LD_PRELOAD={host_lib} exec sleep 120"
    )
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script])
    return proc, str(host_lib)


def _wait_exec(pid: int, name: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{pid}/exe").endswith(name):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} did not become {name}")


def _replay(trace: Path, out: Path) -> Report:
    subprocess.run(
        [*RBA, "replay", str(trace), "--format", "json", "--output", str(out)],
        cwd=REPO,
        check=False,
        capture_output=True,
        timeout=120,
    )
    return Report(json.loads(out.read_text()))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("containers")
    with podman_lab(work) as lab:
        pids = {
            "ww": lab.run("ww", "/bin/busybox", "sleep", "300", env={"LD_PRELOAD": lab.ww_lib}),
            "shadow": lab.run(
                "shadow", "/bin/busybox", "sleep", "300", env={"LD_PRELOAD": lab.safe_lib}
            ),
            "nodep": lab.run("nodep", lab.nodep, "300000"),
            "script": lab.run("script", "/bin/busybox", "sh", lab.script_link),
            "userns": lab.run(
                "userns",
                "/bin/busybox",
                "sleep",
                "120",
                env={"LD_PRELOAD": f"{lab.ww_lib}:{lab.safe_lib}"},
                extra=USERNS,
            ),
            "httpd": lab.run("httpd", "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/tmp"),
        }
        pod_id = lab.pod("pod")
        pids["in-pod"] = lab.run("in-pod", "/bin/busybox", "sleep", "300", extra=("--pod", pod_id))
        bare, bare_lib = _bare_namespace(work, work / "lib.so")
        try:
            pids["bare"] = bare.pid
            _wait_exec(bare.pid, "sleep")
            live, replayed, recorded = {}, {}, {}
            for probes in ("ebpf", "poll"):
                trace = work / f"{probes}.rbt"
                with AssessRun(
                    work, duration=WINDOW_S, probes=probes, extra=("--record", str(trace))
                ) as run:
                    pass
                live[probes] = run.report
                replayed[probes] = _replay(trace, work / f"{probes}-replayed.json")
                facts = load_recording(str(trace)).facts
                recorded[probes] = [f for f in facts if isinstance(f, ProcessFact)]
            yield World(lab, pids, bare_lib, live, replayed, recorded)
        finally:
            bare.kill()
            bare.wait()


def _pid(finding: Finding) -> Any:
    return evidence_value(finding, "process.pid") or evidence_value(finding, "pid")


def _module_findings(report: Report, module: str) -> list[Finding]:
    return [
        f
        for f in report.findings
        if f["rule_id"] == ROOT_RULE and evidence_value(f, "module") == module
    ]


def _container(finding: Finding) -> Any:
    return evidence_value(finding, "process.container") or evidence_value(finding, "container")


@pytest.mark.parametrize("probes", ["ebpf", "poll"])
def test_world_writable_module_only_in_the_image_is_found(world: World, probes: str) -> None:
    found = [
        f
        for f in _module_findings(world.live[probes], world.lab.ww_lib)
        if _pid(f) == world.pids["ww"]
    ]
    assert len(found) == 1, world.live[probes].summary()
    assert evidence_value(found[0], "reason") == "file world-writable"
    container = _container(found[0])
    assert container["runtime"] == "podman"
    assert container["id"] == world.lab.container_id("ww")
    assert container["name"].endswith("-ww") and container["image"] == world.lab.tag


@pytest.mark.parametrize("probes", ["ebpf", "poll"])
@pytest.mark.parametrize("rule", ["insecure-server-protocol", "unused-listening-port"])
def test_container_listener_is_judged_and_attributed(world: World, probes: str, rule: str) -> None:
    report = world.live[probes]
    found = [f for f in report.select(rule, port=80) if _pid(f) == world.pids["httpd"]]
    assert len(found) == 1, report.summary()
    container = _container(found[0])
    assert (container["runtime"], container["id"]) == ("podman", world.lab.container_id("httpd"))
    assert container["image"] == world.lab.tag
    if rule == "insecure-server-protocol":
        assert evidence_value(found[0], "protocol") == "http"


@pytest.mark.parametrize("probes", ["ebpf", "poll"])
def test_the_trace_records_container_and_namespaces(world: World, probes: str) -> None:
    own_mnt = os.stat("/proc/self/ns/mnt").st_ino
    ww = world.recorded_process(probes, "ww")
    assert ww.container is not None
    assert (ww.container.runtime, ww.container.id) == ("podman", world.lab.container_id("ww"))
    assert ww.container.name.endswith("-ww") and ww.container.image == world.lab.tag
    assert ww.mnt_ns == os.stat(f"/proc/{world.pids['ww']}/ns/mnt").st_ino != own_mnt
    assert ww.net_ns == os.stat(f"/proc/{world.pids['ww']}/ns/net").st_ino  # network none
    assert ww.uid_map == ()  # rootful: the host's own user namespace
    userns = world.recorded_process(probes, "userns")
    assert [(r.inner, r.outer, r.count) for r in userns.uid_map] == [(0, 200000, 65536)]
    in_pod = world.recorded_process(probes, "in-pod")
    assert in_pod.container is not None
    assert in_pod.container.pod == world.lab.pod_id("pod")
    bare = world.recorded_process(probes, "bare")
    assert bare.container is None and bare.mnt_ns not in (0, own_mnt) and bare.net_ns == 0


@pytest.mark.parametrize("probes", ["ebpf", "poll"])
def test_safe_module_shadowed_by_an_unsafe_host_file_is_not_flagged(
    world: World, probes: str
) -> None:
    assert os.stat(world.lab.safe_lib).st_mode & 0o002  # the host's twin is unsafe
    assert _module_findings(world.live[probes], world.lab.safe_lib) == []


@pytest.mark.parametrize("probes", ["ebpf", "poll"])
def test_no_dep_no_cookie_binary_only_in_the_image(world: World, probes: str) -> None:
    assert not os.path.exists(world.lab.nodep)
    report = world.live[probes]
    for rule in ("software-without-dep", "software-without-stack-cookies"):
        found = report.select(rule, path=world.lab.nodep)
        assert len(found) == 1, f"{rule}:\n{report.summary()}"
        [process] = evidence_value(found[0], "processes")
        assert process["pid"] == world.pids["nodep"]
        assert process["container"]["id"] == world.lab.container_id("nodep")


def test_absolute_symlink_resolves_inside_the_container(world: World) -> None:
    assert not os.path.exists(world.lab.script_real)  # a host lookup would find nothing
    found = _module_findings(world.live["ebpf"], world.lab.script_real)
    assert [_pid(f) for f in found] == [world.pids["script"]], world.live["ebpf"].summary()
    assert evidence_value(found[0], "module_role") == "interpreter script"
    assert evidence_value(found[0], "reason") == "file world-writable"


def test_user_namespace_owners_are_judged_in_its_view(world: World) -> None:
    status = Path(f"/proc/{world.pids['userns']}/status").read_text()
    assert "Uid:\t200000\t200000" in status  # the host sees uid 200000, not root
    report = world.live["ebpf"]
    found = [
        f for f in _module_findings(report, world.lab.ww_lib) if _pid(f) == world.pids["userns"]
    ]
    assert len(found) == 1, report.summary()
    assert evidence_value(found[0], "uid_view").startswith("user namespace (0-65535 = host 200000-")
    # The safe library is owned by host uid 200000: root in the container, not an offence.
    assert os.stat(f"/proc/{world.pids['userns']}/root{world.lab.safe_lib}").st_uid == 200000
    assert [
        f for f in _module_findings(report, world.lab.safe_lib) if _pid(f) == world.pids["userns"]
    ] == []


def test_bare_mount_namespace_without_a_runtime(world: World) -> None:
    assert os.stat(world.bare_lib).st_mode & 0o777 == 0o644  # the host's file is safe
    found = _module_findings(world.live["ebpf"], world.bare_lib)
    assert [_pid(f) for f in found] == [world.pids["bare"]], world.live["ebpf"].summary()
    assert evidence_value(found[0], "reason") == "file world-writable"
    assert _container(found[0]) is None


@pytest.mark.parametrize("probes", ["ebpf", "poll"])
def test_replay_equals_live(world: World, probes: str) -> None:
    live, replayed = world.live[probes], world.replayed[probes]
    assert live.findings and replayed.findings == live.findings


def test_a_shared_image_layer_is_inspected_once(world: World) -> None:
    """Two containers of one image: their overlays differ (st_dev), their files do not."""
    names = ("ww", "shadow")
    cache = FactsCache()
    source = LiveFactSource(cache=cache)
    strings = StringTable()
    execs = [
        event(strings, Kind.EXEC, pid=world.pids[n], ppid=1, comm="busybox", str_a="/bin/busybox")
        for n in names
    ]
    try:
        source.observe(batch(*execs), strings)
        facts = source.facts(timeout=60)
    finally:
        source.close()
    procs = [facts.process_of(world.pids[n]) for n in names]
    keys, devices = set(), set()
    for name, proc in zip(names, procs):
        assert proc is not None and proc.mnt_ns
        for module in proc.modules:
            fact = facts.file(module, proc.mnt_ns)
            assert fact is not None and fact.binary is not None, module
            st = os.stat(f"/proc/{world.pids[name]}/root{module}")
            keys.add((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
            devices.add((name, st.st_dev))
    assert len({dev for _, dev in devices}) >= 2  # each container has its own overlay
    assert cache.hits + cache.misses == len(keys)  # yet each layer file was inspected once
