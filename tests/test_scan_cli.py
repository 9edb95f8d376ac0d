"""``rba scan`` end to end: the real CLI in a subprocess on real gcc-built files and live
processes; JSON per docs/design.md, the text table, the persistent cache and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.binanalysis.conftest import PROGRAM
from tests.conftest import REPO, run_rba
from tests.support.other_user import OtherUserPython

KEYS = {
    "path",
    "format",
    "arch",
    "dep",
    "stack_cookies",
    "aslr",
    "relro",
    "notes",
    "extra",
    "error",
}


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A protected and an unprotected program, a script and a subdirectory."""
    work = tmp_path_factory.mktemp("scan")
    source = work / "p.c"
    source.write_text(PROGRAM)
    flags = {
        "good": ["-fstack-protector-strong", "-fPIE", "-pie", "-Wl,-z,noexecstack",
                 "-Wl,-z,relro", "-Wl,-z,now"],
        "bad": ["-fno-stack-protector", "-fno-PIE", "-no-pie", "-Wl,-z,execstack",
                "-Wl,-z,norelro"],
    }  # fmt: skip
    (work / "tree" / "sub").mkdir(parents=True)
    out = {}
    for name, extra in flags.items():
        target = work / "tree" / ("sub" if name == "bad" else "") / name
        subprocess.run(["gcc", *extra, str(source), "-o", str(target)], check=True, timeout=60)
        out[name] = target
    script = work / "tree" / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    out["script"], out["tree"] = script, work / "tree"
    return out


def _json(*args: str, env: dict[str, str] | None = None) -> list[dict[str, object]]:
    result = run_rba("scan", "--format", "json", "--no-cache", *args, env=env)
    assert result.returncode == 0, result.stderr
    items: list[dict[str, object]] = json.loads(result.stdout)
    return items


def test_json_contract(programs: dict[str, Path]) -> None:
    good, bad = _json(str(programs["good"]), str(programs["bad"]))
    assert set(good) == KEYS and set(bad) == KEYS
    assert (good["format"], good["dep"], good["stack_cookies"], good["aslr"], good["relro"]) == (
        "elf", True, True, True, "full")  # fmt: skip
    assert (bad["dep"], bad["stack_cookies"], bad["aslr"], bad["relro"]) == (
        False, False, False, "none")  # fmt: skip
    notes = bad["notes"]
    assert isinstance(notes, dict)
    assert "executable" in notes["dep"] and "ET_EXEC" in notes["aslr"]
    assert good["error"] is None


def test_recursive_skips_and_counts_non_binaries(programs: dict[str, Path]) -> None:
    items = _json("--recursive", str(programs["tree"]))
    assert sorted(Path(str(i["path"])).name for i in items) == ["bad", "good"]
    result = run_rba("scan", "--no-cache", "-r", str(programs["tree"]))
    assert result.returncode == 0
    summary = result.stdout.strip().splitlines()[-1]
    assert "2 ELF/PE files" in summary
    assert "1 without DEP" in summary and "1 without stack cookies" in summary
    assert "1 skipped (not ELF/PE)" in summary
    assert "\x1b[" not in result.stdout  # no colour when not a terminal


def test_recursive_summary_counts_files_not_names(
    programs: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 16: a file reached through a symlink and a hard link is one file in the summary
    (every name still gets its row)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    os.link(programs["bad"], tree / "bad")
    os.link(programs["bad"], tree / "bad-again")  # a hard link: same inode
    (tree / "bad-link").symlink_to(programs["bad"])  # a symlink to it
    os.link(programs["good"], tree / "good")
    result = run_rba("scan", "--no-cache", "-r", str(tree))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 + 4 + 1  # header, one row per name, summary
    summary = lines[-1]
    assert summary.startswith("2 ELF/PE files (4 names); 1 without DEP; 1 without stack cookies")


def test_text_shows_the_stack_cookie_classes(programs: dict[str, Path], tmp_path: Path) -> None:
    """Protected, unprotected, and a library with nothing to protect (issue 16)."""
    source = tmp_path / "add.c"
    source.write_text("int add(int a, int b) { return a + b; }\n")
    lib = tmp_path / "libadd.so"
    subprocess.run(["gcc", "-O2", "-fPIC", "-shared", "-fno-stack-protector", "-s", str(source),
                    "-o", str(lib)], check=True, timeout=60)  # fmt: skip
    result = run_rba("scan", "--no-cache", str(programs["good"]), str(programs["bad"]), str(lib))
    assert result.returncode == 0, result.stderr
    rows = {line.split()[-1]: line for line in result.stdout.splitlines()[1:-1]}
    assert "Canary found" in rows[str(programs["good"])]
    assert "No canary" in rows[str(programs["bad"])]
    assert "Not needed" in rows[str(lib)]
    (item,) = _json(str(lib))
    assert item["stack_cookies"] is None
    notes = item["notes"]
    assert isinstance(notes, dict)
    assert str(notes["stack_cookies"]).startswith("nothing to protect: 0 of ")


def test_named_non_binary_is_listed(programs: dict[str, Path]) -> None:
    (item,) = _json(str(programs["script"]))
    assert (item["format"], item["dep"], item["error"]) == ("other", None, None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/file"], "no such file or directory: /no/such/file"),
        (["/usr"], "/usr is a directory (use --recursive)"),
        ([], "give at least one PATH, --pid PID or --all-processes"),
        (["--jobs", "0", "/usr/bin/ls"], "--jobs must be at least 1, not 0"),
        (["--pid", "999999999"], "no such process: 999999999"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    result = run_rba("scan", "--no-cache", *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"rba scan: {message}"]


@pytest.mark.root
def test_unreadable_file_reported(programs: dict[str, Path], other_user: OtherUserPython) -> None:
    """Run as 'nobody' so that permissions apply; the denied file is reported, not fatal."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rba-scan-") as top:
        _scan_as_nobody(programs, Path(top), other_user)


def _scan_as_nobody(programs: dict[str, Path], top: Path, other_user: OtherUserPython) -> None:
    def scan(*args: str) -> subprocess.CompletedProcess[str]:
        argv = other_user.argv("-m", "behavior", "scan", *args)
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            cwd="/",
            env=other_user.env(),
            timeout=300,
            check=False,
        )

    tree = top / "tree"
    tree.mkdir()
    for name in ("good", "bad"):
        (tree / name).write_bytes(programs[name].read_bytes())
    (tree / "bad").chmod(0)
    for p in (top, tree, tree / "good"):
        p.chmod(0o755)
    denied = top / "denied"
    denied.mkdir(mode=0o700)
    hidden = scan(str(denied / "x"))
    assert hidden.returncode == 2
    assert hidden.stderr == f"rba scan: cannot access {denied / 'x'}: Permission denied\n"
    result = scan("--no-cache", "-r", str(tree))
    assert result.returncode == 0, result.stderr
    assert f"unreadable: cannot open: Permission denied  {tree / 'bad'}" in result.stdout
    assert "1 ELF/PE files" in result.stdout and "1 unreadable" in result.stdout


def test_pid_scan_lists_exe_and_libraries() -> None:
    with subprocess.Popen(["sleep", "30"]) as sleeper:
        try:
            items = _json("--pid", str(sleeper.pid))
        finally:
            sleeper.kill()
    paths = {str(i["path"]): i for i in items}
    exe = os.path.realpath("/usr/bin/sleep")
    assert paths[exe]["pids"] == [sleeper.pid]
    assert any("libc.so" in p for p in paths)
    assert all(i["format"] == "elf" for i in items)


def test_all_processes_includes_a_live_process() -> None:
    with subprocess.Popen(["sleep", "30"]) as sleeper:
        try:
            items = _json("--all-processes")
        finally:
            sleeper.kill()
    by_path = {str(i["path"]): i for i in items}
    pids = by_path[os.path.realpath("/usr/bin/sleep")]["pids"]
    assert isinstance(pids, list) and sleeper.pid in pids
    assert len(by_path) > 5


def test_persistent_cache(programs: dict[str, Path], tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    default = tmp_path / "xdg" / "rba" / "binary-facts.json"
    first = run_rba("scan", "--format", "json", "-r", str(programs["tree"]), env=env)
    assert first.returncode == 0 and default.exists()
    assert oct(default.stat().st_mode & 0o777) == "0o600"
    entries = json.loads(default.read_text())["entries"]
    assert len(entries) == 3  # good, bad and the script (non-ELF answers are cached too)
    second = run_rba("scan", "--format", "json", "-r", str(programs["tree"]), env=env)
    assert second.stdout == first.stdout
    default.write_text(default.read_text()[:100])  # truncated: no longer JSON
    third = run_rba("scan", "--format", "json", "-r", str(programs["tree"]), env=env)
    assert third.returncode == 0 and third.stdout == first.stdout
    assert f"rba: ignoring cache {default}: not valid JSON" in third.stderr
    assert len(json.loads(default.read_text())["entries"]) == 3  # rewritten, valid


def test_old_cache_version_is_ignored_with_a_notice(
    programs: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 12: version 6 caches had no ctime in their keys: ignored, said, rewritten."""
    cache = tmp_path / "facts.json"
    st = programs["good"].stat()
    old = {"format": "rba-binary-facts", "version": 6, "facts": [],
           "entries": [[st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, 0]]}  # fmt: skip
    cache.write_text(json.dumps(old))
    result = run_rba("scan", "--cache", str(cache), "--format", "json", str(programs["good"]))
    assert result.returncode == 0, result.stderr
    assert "cache version 6, this one reads 7" in result.stderr
    assert json.loads(result.stdout)[0]["stack_cookies"] is True
    assert json.loads(cache.read_text())["version"] == 7


def test_no_cache_writes_nothing(programs: dict[str, Path], tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    result = run_rba("scan", "--no-cache", str(programs["good"]), env=env)
    assert result.returncode == 0
    assert not (tmp_path / "xdg").exists()
    explicit = tmp_path / "mine.json"
    run_rba("scan", "--cache", str(explicit), str(programs["good"]), env=env)
    assert explicit.exists()


def test_colour_only_on_a_terminal(programs: dict[str, Path]) -> None:
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "behavior", "scan", "--no-cache", str(programs["good"]),
             str(programs["bad"])],
            check=False, stdout=follower, stderr=subprocess.PIPE, timeout=60, cwd=REPO,
            env={k: v for k, v in os.environ.items() if k != "NO_COLOR"},
        )  # fmt: skip
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
    assert proc.returncode == 0
    assert b"\x1b[32mFull RELRO" in output and b"\x1b[31mNo canary" in output


def _kernel_thread() -> int | None:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                os.readlink(f"/proc/{name}/exe")
            except FileNotFoundError:
                return int(name)
            except OSError:
                continue
    return None


def test_kernel_thread_pid_is_stated_not_fatal() -> None:
    pid = _kernel_thread()
    if pid is None:
        pytest.skip("no kernel thread visible in /proc")
    result = run_rba("scan", "--no-cache", "--pid", str(pid))
    assert result.returncode == 0
    assert f"rba: pid {pid}: no executable (a kernel thread, or exiting)" in result.stderr


SLEEPER = r"""
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) { char b[64]; strcpy(b, argv[0]); sleep(30); return b[0]; }
"""


@pytest.mark.root
def test_process_in_another_mount_namespace(tmp_path: Path) -> None:
    """A container's /x is not the host's /x: its files are read through /proc/PID/root."""
    import time

    source, built = tmp_path / "sleeper.c", tmp_path / "sleeper"
    source.write_text(SLEEPER)
    flags = ["-fno-stack-protector", "-Wl,-z,execstack"]
    subprocess.run(["gcc", *flags, str(source), "-o", str(built)], check=True, timeout=60)
    inside = tmp_path / "inside"
    inside.mkdir()  # empty on the host; a tmpfs holding the program in the namespace
    script = f"mount -t tmpfs tmpfs {inside} && cp {built} {inside}/prog && exec {inside}/prog"
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    with subprocess.Popen(cmd) as proc:
        try:
            for _ in range(200):
                try:
                    if os.readlink(f"/proc/{proc.pid}/exe").endswith("/prog"):
                        break
                except OSError:
                    pass
                time.sleep(0.02)
            items = _json("--pid", str(proc.pid))
        finally:
            proc.kill()
    assert not (inside / "prog").exists()
    by_path = {str(i["path"]): i for i in items}
    row = by_path[f"/proc/{proc.pid}/root{inside}/prog"]
    assert (row["dep"], row["stack_cookies"], row["error"]) == (False, False, None)
    assert row["pids"] == [proc.pid]
    assert any(p.startswith(f"/proc/{proc.pid}/root/") and "libc.so" in p for p in by_path)


@pytest.mark.root
def test_files_deleted_while_mapped_are_still_read(tmp_path: Path) -> None:
    """An upgraded library shows as '(deleted)' in maps: read it through /proc/PID/map_files."""
    import time

    from tests.binanalysis.conftest import LIBRARY

    (tmp_path / "sleeper.c").write_text(SLEEPER)
    (tmp_path / "lib.c").write_text(LIBRARY)
    prog, lib = tmp_path / "prog", tmp_path / "libgone.so"
    subprocess.run(["gcc", "-fstack-protector-strong", str(tmp_path / "sleeper.c"), "-o",
                    str(prog)], check=True, timeout=60)  # fmt: skip
    subprocess.run(["gcc", "-fno-stack-protector", "-fPIC", "-shared", str(tmp_path / "lib.c"),
                    "-o", str(lib)], check=True, timeout=60)  # fmt: skip
    with subprocess.Popen([str(prog)], env={"LD_PRELOAD": str(lib)}) as proc:
        try:
            for _ in range(200):
                with open(f"/proc/{proc.pid}/maps") as f:
                    if "libgone.so" in f.read():
                        break
                time.sleep(0.02)
            prog.unlink()
            lib.unlink()
            items = _json("--pid", str(proc.pid))
        finally:
            proc.kill()
    by_path = {str(i["path"]): i for i in items}
    gone_lib = by_path[f"{lib} (deleted)"]
    gone_exe = by_path[f"{prog} (deleted)"]
    assert (gone_lib["error"], gone_lib["stack_cookies"]) == (None, False)
    assert (gone_exe["error"], gone_exe["stack_cookies"]) == (None, True)


@pytest.mark.root
def test_recursive_skips_mounted_pseudo_filesystems(
    programs: dict[str, Path], tmp_path: Path
) -> None:
    """A /proc mounted inside the tree is skipped with a notice, not walked."""
    tree = tmp_path / "tree"
    (tree / "proc").mkdir(parents=True)
    (tree / "good").write_bytes(programs["good"].read_bytes())
    rba = " ".join([sys.executable, "-m", "behavior", "scan", "--no-cache", "-r", str(tree)])
    script = f"mount -t proc proc {tree / 'proc'} && exec {rba}"
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"rba: skipped {tree / 'proc'}: a kernel pseudo-filesystem" in result.stderr
    assert "1 ELF/PE files" in result.stdout and "0 skipped (not ELF/PE)" in result.stdout


def test_warm_scan_imports_no_parser(programs: dict[str, Path], tmp_path: Path) -> None:
    """The warm path is stat + cache lookup: no pefile, no ELF parser, no numpy."""
    cache = tmp_path / "facts.json"
    assert run_rba("scan", "--cache", str(cache), "-r", str(programs["tree"])).returncode == 0
    probe = (
        "import sys; from behavior.commands.cli import main; "
        f"main(['scan', '--cache', {str(cache)!r}, '--output', '/dev/null', '-r', "
        f"{str(programs['tree'])!r}]); "
        "print(sorted(m for m in ('numpy', 'pefile', 'elftools', 'binanalysis.elf', "
        "'binanalysis.pe', 'multiprocessing') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO,
        check=True,
    )  # fmt: skip
    assert result.stdout.strip() == "[]", result.stderr
