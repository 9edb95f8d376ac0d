"""The one way rba creates a file: reports, traces, the scan cache and the daemon store.

rba runs as root, often writing into world-writable directories (/tmp, /var/tmp), so a
path given to it is hostile until checked. Every write here:

- resolves the directory one component at a time (``openat``), and refuses a symlink
  that lives in a world-writable directory and is not owned by us (an unprivileged user
  may have planted it), whatever ``fs.protected_symlinks`` says;
- refuses a target that exists and is not a regular file (a device, a FIFO, a socket, a
  directory or a symlink) with a one-line reason: writing a report to ``/dev/null`` must
  not replace /dev/null. Standard output is asked for as ``-`` by the commands;
- creates a fresh file with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600 in the
  target's own directory, writes and fsyncs it, then renames it over the target (the
  rename replaces a directory entry, never writes through one), and fsyncs the directory.

:func:`write_file` does all of it for a whole content; :class:`NewFile` does it for a
file that grows (a trace): it is published under its name as soon as its first bytes
are synced, and appended to afterwards, so a crash leaves the trace under its name.

Errors are :class:`UnsafeOutputError` (refused before anything was written) and
:class:`FileWriteError` (the system refused); both carry a one-line message.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections import deque
from typing import BinaryIO

MODE = 0o600
MAX_SYMLINK_HOPS = 40  # as the kernel's own limit (ELOOP)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symlink"),
)


class FileWriteError(Exception):
    """A file could not be written; the message is one line and names the path. (Not a
    ProbeError: this module imports nothing, so ``rba scan`` can save its cache without
    loading the event model.)"""


class UnsafeOutputError(FileWriteError):
    """A target was refused before anything was written (not a regular file, or reached
    through a symlink someone else planted in a world-writable directory)."""


def file_kind(mode: int) -> str | None:
    """What a ``st_mode`` that is not a regular file is ("a FIFO", "a symlink"...); None
    for a regular file. For messages that say why a path was refused."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return None


def _fail(path: str, e: OSError) -> FileWriteError:
    return FileWriteError(f"cannot write {path}: {e.strerror or e}")


def open_directory(path: str, directory: str) -> int:
    """An fd of ``directory``, resolved component by component; raises
    UnsafeOutputError for a planted symlink (see the module docstring)."""
    absolute = directory.startswith("/")
    fd = os.open("/" if absolute else ".", _DIR_FLAGS)
    pending = deque(directory.split("/"))
    hops = 0
    try:
        while pending:
            part = pending.popleft()
            if part in ("", "."):
                continue
            st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
                here = os.fstat(fd)
                if here.st_mode & stat.S_IWOTH and st.st_uid != os.geteuid():
                    raise UnsafeOutputError(
                        f"cannot write {path}: {part!r} is a symlink owned by uid "
                        f"{st.st_uid} in a world-writable directory; rba does not follow it"
                    )
                target = os.readlink(part, dir_fd=fd)
                if target.startswith("/"):
                    os.close(fd)
                    fd = os.open("/", _DIR_FLAGS)
                pending.extendleft(reversed(target.split("/")))
                continue
            # O_NOFOLLOW: a symlink swapped in since the stat fails instead of being followed.
            nfd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _split(path: str) -> tuple[str, str]:
    directory, name = os.path.split(path)
    if not name or name in (".", ".."):
        raise UnsafeOutputError(f"cannot write {path}: not a file name")
    return directory or ".", name


def _check_target(path: str, dfd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    kind = file_kind(st.st_mode)
    if kind is not None:
        raise UnsafeOutputError(
            f"cannot write {path}: it is {kind}, and rba writes only regular files"
            + (" (use - for standard output)" if kind != "a directory" else "")
        )


def check_target(path: str) -> None:
    """Raise FileWriteError now when ``path`` could not be written later: its directory
    is missing, unwritable or reached unsafely, or the target is not a regular file.
    Long work (a window of hours) must not end at an unwritable location."""
    directory, name = _split(path)
    try:
        dfd = open_directory(path, directory)
    except OSError as e:
        raise _fail(path, e) from e
    try:
        _check_target(path, dfd, name)
        if not os.access(f"/proc/self/fd/{dfd}", os.W_OK | os.X_OK):
            raise FileWriteError(f"cannot write {path}: its directory is not writable")
    finally:
        os.close(dfd)


class NewFile:
    """A new file being written under a temporary name next to its target, then
    published (renamed over the target). Use :func:`write_file` for a whole content."""

    def __init__(self, path: str) -> None:
        self.path = path
        directory, self._name = _split(path)
        try:
            self._dfd = open_directory(path, directory)
        except OSError as e:
            raise _fail(path, e) from e
        try:
            _check_target(path, self._dfd, self._name)
            self._tmp = f".{self._name[:64]}.rba-{secrets.token_hex(6)}"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(self._tmp, flags, MODE, dir_fd=self._dfd)
        except OSError as e:
            os.close(self._dfd)
            raise _fail(path, e) from e
        except BaseException:
            os.close(self._dfd)
            raise
        os.fchmod(fd, MODE)  # the umask may have taken bits away; never added any
        self.file: BinaryIO = os.fdopen(fd, "wb")
        self.published = False

    def sync(self) -> None:
        """Flush and fsync the content written so far (raises OSError)."""
        self.file.flush()
        os.fsync(self.file.fileno())

    def publish(self) -> None:
        """fsync, then rename over the target and fsync the directory. The target is
        checked again just before: only a regular file (or nothing) is ever replaced."""
        try:
            self.sync()
            _check_target(self.path, self._dfd, self._name)
            os.rename(self._tmp, self._name, src_dir_fd=self._dfd, dst_dir_fd=self._dfd)
            self.published = True
            os.fsync(self._dfd)
        except FileWriteError:
            self.discard()
            raise
        except OSError as e:
            if not self.published:
                self.discard()
            raise _fail(self.path, e) from e

    def close(self) -> None:
        """Close the file (and the directory). An unpublished file is removed."""
        if not self.published:
            self.discard()
            return
        try:
            self.file.close()
        finally:
            self._close_dir()

    def discard(self) -> None:
        """Close and remove the unpublished temporary file."""
        with contextlib.suppress(OSError):  # its content is being thrown away
            self.file.close()
        if not self.published and self._dfd >= 0:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp, dir_fd=self._dfd)
        self._close_dir()

    def _close_dir(self) -> None:
        if self._dfd >= 0:
            os.close(self._dfd)
            self._dfd = -1


def write_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600: a reader sees the old file
    or the complete new one, never a part. Raises FileWriteError (one line)."""
    new = NewFile(path)
    try:
        new.file.write(data)
        new.publish()
    except OSError as e:
        new.discard()
        raise _fail(path, e) from e
    except BaseException:
        new.discard()
        raise
    new.close()
