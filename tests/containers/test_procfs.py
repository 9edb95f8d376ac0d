"""The one /proc reader: errors translated into two types, paths resolved in a root."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from probes import procfs


def _exited_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_gone_process_is_process_gone() -> None:
    pid = _exited_pid()
    for read in (procfs.read_exe, procfs.read_argv, procfs.read_status, procfs.read_maps):
        with pytest.raises(procfs.ProcessGoneError):
            read(pid)


def test_own_status_and_namespaces() -> None:
    status = procfs.read_status(os.getpid())
    assert (status.uid, status.euid, status.ppid) == (os.getuid(), os.geteuid(), os.getppid())
    ns = procfs.read_namespaces(os.getpid())
    assert ns.mnt == os.stat("/proc/self/ns/mnt").st_ino
    assert ns.net == os.stat("/proc/self/ns/net").st_ino


@pytest.mark.root  # another user's /proc/2/exe is a permission error, not a gone process
def test_kernel_thread_has_no_executable() -> None:
    with pytest.raises(procfs.ProcessGoneError):
        procfs.read_exe(2)  # kthreadd


def _fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/libx.so").write_text("inside")
    (root / "lib").symlink_to("/usr/lib")  # absolute: must stay in the root
    (root / "up").symlink_to("../../../../../../usr/lib")  # climbs: must stop at the root
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/libx.so").write_text("outside")
    return root


@pytest.mark.parametrize("openat2", [True, False], ids=["openat2", "walk"])
def test_symlinks_resolve_inside_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openat2: bool
) -> None:
    root = _fake_root(tmp_path)
    if not openat2:
        monkeypatch.setattr(procfs, "_openat2_state", [False])
    for name in ("/lib/libx.so", "/up/libx.so", "lib/../lib/libx.so"):
        fd = procfs.open_in_root(str(root), name, os.O_RDONLY)
        try:
            assert os.read(fd, 100) == b"inside"
        finally:
            os.close(fd)
    assert procfs.realpath_in_root(str(root), "/up/libx.so") == "/usr/lib/libx.so"
    with pytest.raises(FileNotFoundError):
        procfs.stat_in_root(str(root), "/lib/missing.so")


@pytest.mark.parametrize("openat2", [True, False], ids=["openat2", "walk"])
def test_symlink_loops_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openat2: bool) -> None:
    (tmp_path / "a").symlink_to("/b")
    (tmp_path / "b").symlink_to("a")
    if not openat2:
        monkeypatch.setattr(procfs, "_openat2_state", [False])
    with pytest.raises(OSError, match="symbolic links"):
        procfs.stat_in_root(str(tmp_path), "/a")
