"""Real small and failing filesystems for the fault tests: a tmpfs of a few hundred KB
(ENOSPC) and an ext4 on a loop device that can be shut down (every I/O then fails with
EIO, as when a disk dies). Each is unmounted and removed on exit."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

# EXT4_IOC_SHUTDOWN = _IOR('X', 125, __u32); NOLOGFLUSH: drop what is not yet on disk.
EXT4_IOC_SHUTDOWN = 0x8004587D
EXT4_GOING_FLAGS_NOLOGFLUSH = 2


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. "512k") mounted at ``where``."""
    need_root()
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                   check=True)  # fmt: skip
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)
        where.rmdir()


def fill(mount: Path) -> int:
    """Fill ``mount`` to the last byte; returns the bytes the filler took."""
    written = 0
    with open(mount / "filler", "wb", buffering=0) as f:
        block = b"\xff" * 4096
        while True:
            try:
                written += f.write(block)
            except OSError:
                break
        with contextlib.suppress(OSError):
            while f.write(b"\xff"):
                written += 1
    return written


@contextlib.contextmanager
def ext4_on_loop(where: Path, size_mb: int = 32) -> Iterator[Path]:
    """An ext4 filesystem in an image file, mounted through a loop device at ``where``."""
    need_root()
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed (e2fsprogs)")
    image = where.with_suffix(".img")
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    where.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        where.rmdir()
        image.unlink()


def shut_down(mount: Path) -> None:
    """Make every further I/O on ``mount`` fail with EIO (the ext4 'going down' ioctl)."""
    fd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
    finally:
        os.close(fd)


def remount(mount: Path) -> None:
    """Unmount a shut-down filesystem and mount it again (what survives is on disk)."""
    image = mount.with_suffix(".img")
    subprocess.run(["umount", str(mount)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
