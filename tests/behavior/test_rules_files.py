"""The file rules with synthetic facts: DEP, stack cookies, ASLR, RELRO, root perms."""

from __future__ import annotations

import pytest

from behavior.facts import interface
from behavior.facts.interface import FactSet, PathStat
from behavior.interface import Observations
from behavior.rules import (
    root_process_insecure_permissions,
    software_without_aslr,
    software_without_dep,
    software_without_relro,
    software_without_stack_cookies,
)
from behavior.rules.interface import Rule, RuleInput, RuleResult
from binanalysis.interface import Relro
from tests.behavior.conftest import Evaluate
from tests.behavior.synth import ROOT_FILE, T0, batch, binary, facts_with, process

DEP = software_without_dep.RULE
COOKIES = software_without_stack_cookies.RULE
ROOT = root_process_insecure_permissions.RULE
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"


def _run(evaluate: Evaluate, rule: Rule, facts: FactSet) -> RuleResult:
    return evaluate(rule, batch(), facts)


def test_execstack_binary_lacks_dep_and_cookies(evaluate: Evaluate) -> None:
    exe = "/tmp/lab/execstack"
    facts = facts_with(
        [process(100, exe, euid=1000, modules=(LIBC,), t=2), process(101, exe, euid=1000, t=4)],
        {
            exe: (ROOT_FILE, binary(exe, dep=False, cookies=False), None),
            LIBC: (ROOT_FILE, binary(LIBC), "libc6"),
        },
    )
    [dep] = _run(evaluate, DEP, facts).findings
    [cookies] = _run(evaluate, COOKIES, facts).findings
    for f in (dep, cookies):
        assert f.severity.value == "Medium"
        assert f.evidence["path"] == exe and f.evidence["package"] == "unpackaged"
        assert [p["pid"] for p in f.evidence["processes"]] == [100, 101]
        assert f.count == 2 and f.first_seen < f.last_seen
    assert dep.evidence["reason"] == "synthetic False"


def test_packaged_file_names_its_package(evaluate: Evaluate) -> None:
    facts = facts_with(
        [process(5, "/usr/bin/x", modules=(LIBC,))],
        {
            "/usr/bin/x": (ROOT_FILE, binary("/usr/bin/x"), "x-pkg"),
            LIBC: (ROOT_FILE, binary(LIBC, cookies=False), "libc6"),
        },
    )
    [f] = _run(evaluate, COOKIES, facts).findings
    assert (f.evidence["path"], f.evidence["package"]) == (LIBC, "libc6")


def test_go_binary_is_not_applicable_never_a_finding(evaluate: Evaluate) -> None:
    go = "/usr/local/bin/gobin"
    facts = facts_with([process(5, go)], {go: (ROOT_FILE, binary(go, cookies=None), None)})
    result = _run(evaluate, COOKIES, facts)
    assert result.findings == ()
    assert "1 file(s) not applicable" in result.note


def test_runtime_executable_stack_with_nx_file(evaluate: Evaluate) -> None:
    exe = "/usr/bin/legacy"
    facts = facts_with(
        [process(9, exe, exec_stack=True), process(10, exe, exec_stack=False)],
        {exe: (ROOT_FILE, binary(exe), None)},
    )
    [f] = _run(evaluate, DEP, facts).findings
    assert f.evidence["runtime_executable_stack_pids"] == [9]
    assert "[stack]" in f.evidence["reason"] and f.count == 1


def test_aslr_and_relro(evaluate: Evaluate) -> None:
    exe, lib = "/usr/bin/old", "/usr/lib/libold.so"
    facts = facts_with(
        [process(5, exe, modules=(lib,))],
        {
            exe: (ROOT_FILE, binary(exe, aslr=False, relro=Relro.PARTIAL), None),
            lib: (ROOT_FILE, binary(lib, relro=Relro.PARTIAL), None),
        },
    )
    [aslr] = _run(evaluate, software_without_aslr.RULE, facts).findings
    assert aslr.evidence["path"] == exe
    # Partial RELRO is reported on executables only; a library with it is not.
    [relro] = _run(evaluate, software_without_relro.RULE, facts).findings
    assert relro.evidence["path"] == exe and relro.severity.value == "Low"


def test_file_rules_cannot_run_without_facts(evaluate: Evaluate) -> None:
    inp_facts = FactSet()
    obs = Observations(T0, T0, 0, (), (), {}, (), ())
    assert DEP.unavailable(RuleInput(obs, inp_facts, ("ebpf",))) is not None


# --- root-process-insecure-permissions --------------------------------------------------


def _root(evaluate: Evaluate, facts: FactSet) -> list[dict[str, object]]:
    return [f.evidence for f in _run(evaluate, ROOT, facts).findings]


def test_root_process_preloading_from_world_writable_dir(evaluate: Evaluate) -> None:
    lib = "/srv/ww/libpreload.so"
    facts = facts_with(
        [process(77, "/usr/bin/sleep", modules=(LIBC, lib))],
        {
            "/usr/bin/sleep": (ROOT_FILE, None, "coreutils"),
            LIBC: (ROOT_FILE, None, "libc6"),
            lib: (PathStat(0, 0, 0o100644), None, None),
        },
        {"/srv/ww": PathStat(0, 0, 0o40777)},
    )
    [ev] = _root(evaluate, facts)
    assert (ev["pid"], ev["exe"], ev["module"]) == (77, "/usr/bin/sleep", lib)
    assert (ev["offending_path"], ev["mode"]) == ("/srv/ww", "0777")
    assert ev["reason"] == "directory world-writable without the sticky bit"
    assert (ev["user"], ev["module_role"]) == ("root", "mapped module")


def test_root_interpreter_with_script_owned_by_nobody(evaluate: Evaluate) -> None:
    script = "/opt/job.sh"
    facts = facts_with(
        [process(78, "/usr/bin/dash", script=script)],
        {
            "/usr/bin/dash": (ROOT_FILE, None, "dash"),
            script: (PathStat(65534, 65534, 0o100644), None, None),
        },
    )
    [ev] = _root(evaluate, facts)
    assert (ev["module"], ev["module_role"], ev["offending_path"]) == (
        script,
        "interpreter script",
        script,
    )
    assert (ev["owner"], ev["owner_uid"]) == ("nobody", 65534)
    assert "65534" in str(ev["reason"])


def test_sticky_world_writable_dir_protects_root_owned_files(evaluate: Evaluate) -> None:
    lib = "/tmp/libroot.so"
    facts = facts_with(
        [process(5, "/usr/bin/x", modules=(lib,))],
        {"/usr/bin/x": (ROOT_FILE, None, None), lib: (PathStat(0, 0, 0o100644), None, None)},
        {"/tmp": PathStat(0, 0, 0o41777)},
    )
    assert _root(evaluate, facts) == []


def test_sticky_dir_owned_by_a_user_is_still_modifiable(evaluate: Evaluate) -> None:
    lib = "/home/alice/shared/lib.so"
    facts = facts_with(
        [process(5, "/usr/bin/x", modules=(lib,))],
        {"/usr/bin/x": (ROOT_FILE, None, None), lib: (PathStat(0, 0, 0o100644), None, None)},
        {"/home/alice/shared": PathStat(1000, 1000, 0o41777)},
    )
    [ev] = _root(evaluate, facts)
    assert ev["offending_path"] == "/home/alice/shared" and ev["owner"] == "alice"


def test_group_writable_with_gid_0_is_fine_other_groups_are_not(evaluate: Evaluate) -> None:
    ok, bad = "/opt/a/ok.so", "/opt/b/bad.so"
    facts = facts_with(
        [process(5, "/usr/bin/x", modules=(ok, bad))],
        {
            "/usr/bin/x": (ROOT_FILE, None, None),
            ok: (PathStat(0, 0, 0o100664), None, None),
            bad: (PathStat(0, 0, 0o100644), None, None),
        },
        {"/opt/a": PathStat(0, 0, 0o40775), "/opt/b": PathStat(0, 50, 0o40775)},
    )
    [ev] = _root(evaluate, facts)
    assert ev["module"] == bad and ev["offending_path"] == "/opt/b"
    assert ev["reason"] == "directory writable by non-root group gid 50"


def test_non_root_processes_are_not_judged(evaluate: Evaluate) -> None:
    lib = "/home/alice/lib.so"
    facts = facts_with(
        [process(5, "/usr/bin/x", euid=1000, modules=(lib,))],
        {"/usr/bin/x": (ROOT_FILE, None, None), lib: (PathStat(1000, 1000, 0o100666), None, None)},
    )
    assert _root(evaluate, facts) == []


def test_setuid_root_process_is_judged_by_effective_uid(evaluate: Evaluate) -> None:
    exe = "/home/alice/bin/tool"
    facts = facts_with(
        [process(5, exe, euid=0, uid=1000)],
        {exe: (PathStat(1000, 1000, 0o104755), None, None)},
    )
    [ev] = _root(evaluate, facts)
    assert ev["reason"] == "file owned by non-root uid 1000" and ev["user"] == "alice"


def test_root_rule_cannot_run_without_memory_maps(evaluate: Evaluate) -> None:

    facts = facts_with([], {}, maps_readable=False)
    obs = Observations(T0, T0, 0, (), (), {}, (), ())
    assert ROOT.unavailable(RuleInput(obs, facts, ("ebpf",))) == "not root"


def test_folded_images_count_like_full_ones(
    evaluate: Evaluate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond MAX_FULL_IMAGES, old images fold into groups of identical ones: the
    findings (counts, times, pids) are those of the unfolded set."""
    exe, lib = "/opt/tool", "/opt/lib/libtool.so"
    files = {
        exe: (ROOT_FILE, binary(exe, cookies=False), None),
        lib: (PathStat(0, 0, 0o100644), binary(lib, dep=False), None),
    }
    dirs = {"/opt/lib": PathStat(1000, 1000, 0o40755)}
    images = [process(100 + i, exe, modules=(lib,), t=1 + i) for i in range(30)]
    full = facts_with(images, files, dirs)
    monkeypatch.setattr(interface, "MAX_FULL_IMAGES", 10)
    folded = facts_with(images, files, dirs)
    assert folded.folded and len(folded.processes) <= 10
    for rule in (COOKIES, DEP, ROOT):
        want = [(f.count, f.first_seen, f.last_seen) for f in _run(evaluate, rule, full).findings]
        got = [(f.count, f.first_seen, f.last_seen) for f in _run(evaluate, rule, folded).findings]
        assert got == want and want and want[0][0] == 30
    # A late fact about a folded image is dropped: the same in a live set and a replay.
    again = facts_with([*images, process(100, exe, modules=(lib, "/opt/new.so"), t=1)], files)
    assert "/opt/new.so" not in {m for g in again.images() for m in g.sample.modules}
