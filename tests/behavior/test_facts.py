"""Facts: JSON round trip, /proc parsing, the package index, and the live gatherer on
real processes of this host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from behavior.facts.interface import (
    CoverageFact,
    DirFact,
    FactError,
    FactSet,
    FileFact,
    GapFact,
    HostFact,
    PathStat,
    ProcessFact,
    UserFact,
    fact_from_dict,
    fact_to_dict,
    uid_view,
    view_stat,
)
from behavior.facts.live import LiveFactSource
from behavior.facts.packages import PackageIndex
from behavior.facts.scripts import script_argument
from probes import procfs
from probes.containers import ContainerIdentity, from_cgroup
from probes.events import EventArray, Kind, StringTable
from probes.procfs import IdRange, parse_maps
from tests.behavior.synth import batch, binary, event, process


@pytest.mark.parametrize(
    "fact",
    [
        HostFact("h", "6.1.0", 4026531840),
        CoverageFact(False, True, "not root"),
        process(5, "/usr/bin/x", modules=("/lib/a.so",), script="/opt/s.py", exec_stack=None),
        FileFact("/usr/bin/x", PathStat(0, 0, 0o100755), "pkg", binary("/usr/bin/x", dep=False)),
        FileFact("/gone", None, None, None, error="No such file or directory"),
        DirFact("/usr/bin", PathStat(0, 0, 0o40755)),
        DirFact("/secret", None),
        UserFact(1000, "alice"),
        GapFact("maps-gone", "pid 5 (x)"),
    ],
)
def test_every_fact_round_trips_through_json(fact: object) -> None:
    text = json.dumps(fact_to_dict(fact))  # type: ignore[arg-type]
    assert fact_from_dict(json.loads(text)) == fact


@pytest.mark.parametrize("bad", [{}, {"type": "nope"}, {"type": "dir"}, {"type": "user", "x": 1}])
def test_malformed_fact_is_a_clear_error(bad: dict[str, object]) -> None:
    with pytest.raises(FactError, match="malformed fact"):
        fact_from_dict(bad)


def test_process_facts_of_one_image_merge() -> None:
    early = process(5, "/usr/bin/x", euid=1000, t=1)
    later = process(5, "/usr/bin/x", euid=0, modules=("/lib/b.so",), exec_stack=True, t=1)
    merged = FactSet.of([early, later]).processes[early.key]
    assert merged.modules == ("/lib/b.so", "/usr/bin/x")
    assert merged.euid == 0 and merged.exec_stack is True


def test_parse_maps_keeps_executable_file_mappings_and_stack_mode() -> None:
    text = "\n".join(
        [
            "5600-5601 r--p 00000000 fe:00 1 /usr/bin/prog",
            "5601-5602 r-xp 00001000 fe:00 1 /usr/bin/prog",
            "7f00-7f01 r-xp 00000000 fe:00 2 /usr/lib/x86_64-linux-gnu/libc.so.6",
            "7f01-7f02 rw-p 00000000 fe:00 3 /usr/lib/locale/locale-archive",
            "7f02-7f03 r-xp 00000000 00:01 4 /memfd:jit (deleted)",
            "7ffd-7ffe rwxp 00000000 00:00 0 [stack]",
            "ffff-ffff r-xp 00000000 00:00 0 [vdso]",
            "garbage",
        ]
    )
    info = parse_maps(text)
    assert info.modules == ("/usr/bin/prog", "/usr/lib/x86_64-linux-gnu/libc.so.6")
    assert info.exec_stack is True


@pytest.mark.parametrize(
    ("exe", "argv", "script"),
    [
        ("/usr/bin/python3.11", ("python3", "-u", "/opt/job.py", "x"), "/opt/job.py"),
        ("/usr/bin/python3.11", ("python3", "-m", "http.server"), None),
        ("/usr/bin/python3.11", ("python3", "-W", "ignore", "run.py"), "run.py"),
        ("/usr/bin/dash", ("/bin/sh", "/srv/x.sh", "1"), "/srv/x.sh"),
        ("/usr/bin/bash", ("bash", "-c", "echo hi"), None),
        ("/usr/bin/perl", ("perl", "-e", "print 1"), None),
        ("/usr/bin/busybox", ("busybox", "sh", "a.sh"), "a.sh"),
        ("/usr/bin/sleep", ("sleep", "5"), None),
    ],
)
def test_script_argument(exe: str, argv: tuple[str, ...], script: str | None) -> None:
    assert script_argument(exe, argv) == script


def test_package_index_reads_dpkg_lists_once_and_resolves_merged_usr(tmp_path: Path) -> None:
    info = tmp_path / "info"
    info.mkdir()
    real = tmp_path / "usr" / "lib"
    real.mkdir(parents=True)
    (tmp_path / "lib").symlink_to(real)  # merged /usr: /lib -> /usr/lib
    (info / "libfoo1:amd64.list").write_text(f"/.\n{tmp_path}/lib\n{tmp_path}/lib/libfoo.so.1\n")
    (info / "bar.list").write_text(f"{real}/bar\n")
    (info / "broken.md5sums").write_text("not a list")
    index = PackageIndex.load(info, with_rpm=False)
    assert index.owner(f"{real}/libfoo.so.1") == "libfoo1"
    assert index.owner(f"{real}/bar") == "bar"
    assert index.owner(f"{real}/unknown") is None


def test_package_index_of_this_host_knows_libc() -> None:
    index = PackageIndex.load()
    if not len(index):
        pytest.skip("no dpkg database on this host")
    libc = os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")
    assert index.owner(libc) == "libc6"


def _exec_event(strings: StringTable, proc: subprocess.Popen[bytes], exe: str):  # type: ignore[no-untyped-def]
    return event(
        strings,
        Kind.EXEC,
        pid=proc.pid,
        ppid=os.getpid(),
        uid=os.getuid(),
        euid=os.geteuid(),
        comm=os.path.basename(exe),
        str_a=exe,
        ts_wall=time.time_ns(),
    )


def _gather(
    argv: list[str], exe: str, facts: LiveFactSource, *, cwd: Path | None = None
) -> tuple[FactSet, int]:
    """Run ``argv``, show ``facts`` its exec once it had time to map its libraries, and
    return what was gathered and the pid."""
    strings = StringTable()
    proc = subprocess.Popen(argv, cwd=cwd)
    try:
        time.sleep(0.2)
        facts.observe(batch(_exec_event(strings, proc, exe)), strings)
        return facts.facts(timeout=30), proc.pid
    finally:
        proc.kill()
        proc.wait()
        facts.close()


def _gather_rows(strings: StringTable, *batches: EventArray) -> FactSet:
    """What a fresh live fact source gathers from ``batches``, observed in that order."""
    facts = LiveFactSource()
    try:
        for rows in batches:
            facts.observe(rows, strings)
        return facts.facts(timeout=30)
    finally:
        facts.close()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A running ``sleep 5``, killed afterwards."""
    proc = subprocess.Popen(["sleep", "5"])
    time.sleep(0.2)  # exec'd, libraries mapped
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.root
def test_live_source_reads_a_running_process_and_its_files() -> None:
    gathered: list[object] = []
    result, pid = _gather(["sleep", "5"], "/usr/bin/sleep", LiveFactSource(sink=gathered.append))
    [fact] = [p for p in result.processes.values() if p.pid == pid]
    libc = os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")
    assert fact.exe == os.path.realpath("/usr/bin/sleep")
    assert fact.cmdline == ("sleep", "5") and fact.euid == 0 and fact.exec_stack is False
    assert libc in fact.modules
    assert result.files[0, libc].package == "libc6" and result.files[0, libc].binary is not None
    assert result.dirs[0, "/usr/lib"].stat == PathStat(0, 0, os.stat("/usr/lib").st_mode)
    # Everything in the set went to the sink too, so a trace can replay it.
    assert FactSet.of(gathered).processes == result.processes  # type: ignore[arg-type]


@pytest.mark.root
def test_live_source_keeps_a_process_that_exited_before_its_read() -> None:
    strings = StringTable()
    facts = LiveFactSource()
    proc = subprocess.Popen(["true"])
    proc.wait()
    try:
        facts.observe(batch(_exec_event(strings, proc, "/usr/bin/true")), strings)
        result = facts.facts(timeout=30)
    finally:
        facts.close()
    [fact] = [p for p in result.processes.values() if p.pid == proc.pid]
    assert fact.modules == (os.path.realpath("/usr/bin/true"),) and fact.exec_stack is None
    assert f"pid {proc.pid} (true)" in result.gaps["maps-gone"]


@pytest.mark.root
def test_live_source_finds_an_interpreter_script(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("import time\ntime.sleep(5)\n")
    argv = [sys.executable, "-u", "job.py"]
    result, pid = _gather(argv, sys.executable, LiveFactSource(), cwd=tmp_path)
    [fact] = [p for p in result.processes.values() if p.pid == pid]
    assert fact.script == str(script)
    assert result.files[0, str(script)].stat is not None


@pytest.mark.root
def test_a_failing_sink_does_not_stop_the_gathering() -> None:
    def broken_sink(fact: object) -> None:
        raise OSError("disk full")

    facts = LiveFactSource(sink=broken_sink)
    result, pid = _gather(["sleep", "5"], "/usr/bin/sleep", facts)
    assert [p.pid for p in result.processes.values()] == [pid]
    assert facts.sink_error == "OSError: disk full"


@pytest.mark.root
@pytest.mark.parametrize("announced_by_fork", [True, False])
def test_fork_children_are_not_new_images(
    announced_by_fork: bool, sleeper: subprocess.Popen[bytes]
) -> None:
    """A child seen between fork and exec (polling meets it; eBPF announces it with a
    FORK) runs its parent's image: it is no second process image of the program."""
    strings = StringTable()
    child = 4_194_304  # PID_MAX_LIMIT, never a pid: any fact about it would be a fallback
    snap = {"kind": Kind.PROC_SNAPSHOT, "str_a": "/usr/bin/sleep", "str_b": "sleep 5"}
    rows = [event(strings, pid=sleeper.pid, ppid=os.getpid(), **snap)]
    if announced_by_fork:
        rows.append(event(strings, Kind.FORK, pid=child, ppid=sleeper.pid))
    rows.append(event(strings, pid=child, ppid=sleeper.pid, t=0.5, **snap))
    result = _gather_rows(strings, batch(*rows))
    assert [p.pid for p in result.processes.values()] == [sleeper.pid]
    assert result.gaps == {}


@pytest.mark.root
@pytest.mark.parametrize(
    ("exec_at", "argv", "images"),
    [
        (0.5, ("/usr/bin/sleep", "sleep 5"), 1),  # exec before the poll's stamp
        (1.5, ("/usr/bin/sleep", "sleep 5"), 1),  # exec during the poll: same program
        (1.5, ("/usr/bin/true", "true"), 2),  # a later exec of another program
    ],
)
def test_an_image_polled_before_its_exec_event_is_one_image(
    exec_at: float, argv: tuple[str, str], images: int, sleeper: subprocess.Popen[bytes]
) -> None:
    """Polling and eBPF batches arrive in either order: a poll that met the process
    before its EXEC event arrived saw the same image, not an earlier one."""
    strings = StringTable()
    exe, cmdline = argv
    ids = {"pid": sleeper.pid, "ppid": os.getpid()}
    snap = {"str_a": os.path.realpath("/usr/bin/sleep"), "str_b": "sleep 5", "aux": 1}
    rows = [
        event(strings, Kind.PROC_SNAPSHOT, t=1.0, **snap, **ids),
        event(strings, Kind.EXEC, t=exec_at, str_a=exe, str_b=cmdline, **ids),
    ]
    result = _gather_rows(strings, batch(*rows))
    assert len([p for p in result.processes.values() if p.pid == sleeper.pid]) == images


@pytest.mark.root
@pytest.mark.parametrize(("polled_at", "images"), [(0.55, 1), (0.7, 2)])
def test_a_poll_delivered_after_the_exit_it_preceded_is_no_new_image(
    polled_at: float, images: int
) -> None:
    """The reverse order: eBPF's EXEC and EXIT of a short process are handled first, then
    a poll that met the process alive arrives. Only a poll from after the exit (a new
    process with the same pid) is a new image."""
    strings = StringTable()
    proc = subprocess.Popen(["sleep", "5"])
    proc.kill()
    proc.wait()  # gone before any batch arrives, as a 50 ms program is
    ids = {"pid": proc.pid, "ppid": os.getpid()}
    first = [
        event(strings, Kind.EXEC, t=0.5, str_a="/usr/bin/sleep", str_b="sleep 5", **ids),
        event(strings, Kind.EXIT, t=0.6, **ids),
    ]
    snap = {"str_a": os.path.realpath("/usr/bin/sleep"), "str_b": "sleep 5", "aux": 1}
    late = event(strings, Kind.PROC_SNAPSHOT, t=polled_at, **snap, **ids)
    result = _gather_rows(strings, batch(*first), batch(late))
    assert len([p for p in result.processes.values() if p.pid == proc.pid]) == images


# --- namespaces (issue 14) ----------------------------------------------------------------


def _in_container() -> ProcessFact:
    return replace(
        process(9, "/usr/sbin/httpd", modules=("/lib/libc.so.6",)),
        mnt_ns=4026532999,
        net_ns=4026533001,
        pid_ns=4026533000,
        uid_map=(IdRange(0, 100000, 65536),),
        gid_map=(IdRange(0, 100000, 65536),),
        container=ContainerIdentity("ab" * 32, "podman", "web", "localhost/web:1", "cd" * 32),
    )


@pytest.mark.parametrize(
    "fact",
    [
        _in_container(),
        FileFact("/lib/libc.so.6", PathStat(100000, 100000, 0o100755), None, None, mnt_ns=7),
        DirFact("/lib", PathStat(100000, 100000, 0o40755), mnt_ns=7),
    ],
)
def test_namespaced_facts_round_trip_through_json(fact: object) -> None:
    text = json.dumps(fact_to_dict(fact))  # type: ignore[arg-type]
    assert fact_from_dict(json.loads(text)) == fact


def test_facts_of_traces_from_before_namespaces_load_as_the_hosts() -> None:
    old = fact_to_dict(process(5, "/usr/bin/x"))
    for name in ("mnt_ns", "net_ns", "pid_ns", "uid_map", "gid_map", "container"):
        old.pop(name)
    loaded = fact_from_dict(old)
    assert isinstance(loaded, ProcessFact)
    assert (loaded.mnt_ns, loaded.uid_map, loaded.container) == (0, (), None)
    file = fact_to_dict(FileFact("/x", None, None, None))
    file.pop("mnt_ns")
    assert fact_from_dict(file) == FileFact("/x", None, None, None)


def test_files_are_looked_up_in_the_process_mount_namespace() -> None:
    host = FileFact("/lib/libc.so.6", PathStat(0, 0, 0o100666), None, None)
    inside = replace(host, stat=PathStat(0, 0, 0o100755), mnt_ns=4026532999)
    facts = FactSet.of([host, inside, _in_container()])
    assert facts.file("/lib/libc.so.6") == host
    assert facts.file("/lib/libc.so.6", 4026532999) == inside
    assert facts.process_of(9) == _in_container()


def test_owners_are_seen_through_the_user_namespace() -> None:
    proc = _in_container()
    assert (proc.inner_uid(100000), proc.inner_uid(101000), proc.inner_uid(0)) == (0, 1000, 65534)
    assert view_stat(proc, PathStat(100000, 100000, 0o644)) == PathStat(0, 0, 0o644)
    assert uid_view(proc) == "user namespace (0-65535 = host 100000-165535)"
    assert view_stat(process(1, "/x"), PathStat(5, 5, 0o644)) == PathStat(5, 5, 0o644)


@pytest.mark.root
def test_live_source_reads_a_bare_mount_namespace_through_its_root(tmp_path: Path) -> None:
    """A tmpfs mounted only in the process's namespace hides the host's directory: the
    gatherer sees the namespace's file, keyed by that namespace."""
    (tmp_path / "hidden").mkdir()
    host_file = tmp_path / "hidden" / "prog"
    host_file.write_bytes(Path("/usr/bin/sleep").read_bytes())
    host_file.chmod(0o755)
    script = (
        f"mount -t tmpfs rba-facts {tmp_path}/hidden && cp /usr/bin/sleep {host_file} && "
        f"chmod 4777 {host_file} && exec {host_file} 5"
    )
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    result, pid = _gather(argv, str(host_file), LiveFactSource())
    [fact] = [p for p in result.processes.values() if p.pid == pid]
    assert fact.exe == str(host_file) and fact.mnt_ns not in (
        0,
        os.stat("/proc/self/ns/mnt").st_ino,
    )
    # No runtime made it: it is in whatever container this test runs in (none on a host;
    # the fresh-machine check runs the suite inside podman).
    ours = from_cgroup(procfs.read_cgroup(os.getpid()))
    assert (fact.container and fact.container.id) == (ours and ours.id) and fact.net_ns == 0
    inside = result.file(str(host_file), fact.mnt_ns)
    assert inside is not None and inside.stat is not None
    assert inside.stat.mode & 0o7777 == 0o4777  # the namespace's file, not the host's 0755
    assert result.file(str(host_file)) is None  # the host's twin was never examined
