"""Issue 12 items 1 and 2: every file rba writes is a new regular file renamed into
place; devices, FIFOs and planted symlinks are refused and left exactly as they were."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from behavior.formats.output import write_atomic
from behavior.interface import UsageError
from probes.events import StringTable
from probes.files import UnsafeOutputError, write_file
from probes.trace import TraceError, TraceWriter
from tests.conftest import run_rba
from tests.faults.traces import record_trace

NOBODY = 65534


def _device(path: Path) -> os.stat_result:
    """A private /dev/null twin (char 1:3) in a test directory, never /dev/null itself."""
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(path, 0o666)
    return os.stat(path)


def _same_node(path: Path, before: os.stat_result) -> bool:
    after = os.lstat(path)
    return (after.st_ino, after.st_mode, after.st_rdev) == (
        before.st_ino, before.st_mode, before.st_rdev,
    )  # fmt: skip


def _world_writable(tmp_path: Path) -> Path:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    return shared


def _planted_symlink(shared: Path, target: Path, name: str = "out.rbt") -> Path:
    link = shared / name
    os.symlink(target, link)
    os.lchown(link, NOBODY, NOBODY)
    return link


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod and lchown need root")


@needs_root
def test_replay_output_onto_a_device_is_refused_and_the_device_kept(tmp_path: Path) -> None:
    trace = record_trace(tmp_path / "t.rbt")
    dev = tmp_path / "null"
    before = _device(dev)
    result = run_rba("replay", str(trace), "--output", str(dev), timeout=120)
    assert result.returncode == 2
    assert f"cannot write report {dev}: it is a character device" in result.stderr
    assert _same_node(dev, before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null", "t.rbt"]


@needs_root
def test_capture_onto_a_device_is_refused_before_touching_it(tmp_path: Path) -> None:
    dev = tmp_path / "null"
    before = _device(dev)
    result = run_rba(
        "capture", "--probes", "poll", "--duration", "1s", "--output", str(dev), timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"rba capture: cannot write trace {dev}: it is a character device, and rba writes "
        "only regular files (use - for standard output)"
    ]
    assert _same_node(dev, before) and stat.S_IMODE(os.stat(dev).st_mode) == 0o666


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="it is a FIFO"):
        write_atomic(str(fifo), "x")
    with pytest.raises(TraceError, match="it is a FIFO"):
        TraceWriter(str(fifo), {}, StringTable())
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@needs_root
def test_capture_through_a_planted_symlink_leaves_the_target_alone(tmp_path: Path) -> None:
    victim = tmp_path / "shadow"
    victim.write_text("root:secret\n")
    os.chmod(victim, 0o640)
    link = _planted_symlink(_world_writable(tmp_path), victim)
    result = run_rba(
        "capture", "--probes", "poll", "--duration", "1s", "--output", str(link), timeout=120
    )
    assert result.returncode == 2
    assert "it is a symlink" in result.stderr and len(result.stderr.splitlines()) == 1
    assert victim.read_text() == "root:secret\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o640
    assert os.path.islink(link)


@needs_root
def test_a_planted_directory_symlink_is_not_followed(tmp_path: Path) -> None:
    """/var/tmp/x -> /etc planted by a user: writing /var/tmp/x/passwd is refused."""
    protected = tmp_path / "etc"
    protected.mkdir()
    link = _planted_symlink(_world_writable(tmp_path), protected, "x")
    with pytest.raises(UnsafeOutputError, match="symlink owned by uid 65534 in a world-writable"):
        write_file(str(link / "passwd"), b"pwned")
    with pytest.raises(TraceError, match="does not follow it"):
        TraceWriter(str(link / "t.rbt"), {}, StringTable())
    assert list(protected.iterdir()) == []


def test_our_own_symlinked_directory_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    write_file(str(tmp_path / "alias" / "r.txt"), b"ok")
    assert (real / "r.txt").read_bytes() == b"ok"


def test_a_trace_is_a_new_0600_file_even_over_an_existing_one(tmp_path: Path) -> None:
    old = tmp_path / "t.rbt"
    old.write_text("old")
    os.chmod(old, 0o644)
    inode = old.stat().st_ino
    hard = tmp_path / "hardlink"
    os.link(old, hard)
    record_trace(old)
    assert stat.S_IMODE(old.stat().st_mode) == 0o600 and old.stat().st_ino != inode
    assert hard.read_text() == "old"  # the old inode was replaced, never written through
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hardlink", "t.rbt"]


def test_output_dash_is_standard_output(tmp_path: Path) -> None:
    trace = record_trace(tmp_path / "t.rbt")
    result = run_rba("replay", str(trace), "--format", "json", "--output", "-", timeout=120)
    assert result.returncode == 0 and result.stdout.lstrip().startswith("{")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.rbt"]


@pytest.mark.parametrize("args", [["capture", "--output", "-"], ["assess", "--record", "-"]])
def test_a_trace_to_stdout_is_refused_not_a_file_named_dash(
    args: list[str], tmp_path: Path
) -> None:
    from tests.conftest import RBA

    result = subprocess.run(
        [*RBA, *args, "--probes", "poll", "--duration", "1s"], cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert result.returncode == 2 and "not standard output" in result.stderr.replace(
        "not stdout", "not standard output"
    )
    assert list(tmp_path.iterdir()) == []


@needs_root
def test_the_scan_cache_is_not_written_through_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = _planted_symlink(_world_writable(tmp_path), victim, "cache.json")
    result = run_rba("scan", "--cache", str(link), "/bin/true", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "cache not saved" in result.stderr and "symlink" in result.stderr
    assert victim.read_text() == "keep" and os.path.islink(link)
