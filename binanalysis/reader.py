"""The one read path for binaries: every byte binanalysis looks at comes through here.

:class:`FileBytes` opens a file read-only (never executes it), refuses what is not a regular
file or is larger than :data:`MAX_FILE_SIZE`, and serves bounded reads. Any read outside the
file, any read larger than :data:`MAX_READ`, and any OS error becomes
:class:`~binanalysis.interface.BinaryParseError` (or its subclass ``BinaryReadError`` when the
file cannot be opened at all), so hostile offsets and counts can never cause an unbounded
allocation or a crash.
"""

from __future__ import annotations

import os
import stat
import struct
from types import TracebackType

from binanalysis.interface import BinaryParseError, BinaryReadError

MAX_FILE_SIZE = 1 << 30  # files above 1 GiB get an error verdict
MAX_READ = 256 << 20  # no single read (code scan, PE image) above 256 MiB
MAGIC_SIZE = 4 << 10  # read up front: enough to tell ELF/PE from anything else
HEAD_SIZE = 64 << 10  # read once when needed: headers and, mostly, the dynamic tables

CacheKey = tuple[int, int, int, int, int]  # (st_dev, st_ino, st_size, mtime_ns, ctime_ns)


def stat_key(st: os.stat_result) -> CacheKey:
    """The identity of a file's content for caching: device, inode, size, mtime_ns and
    ctime_ns. Anyone can set a file's mtime back after rewriting it (``touch -r``,
    ``os.utime``); only the kernel sets ctime, and any write moves it."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileBytes:
    """Bounded random access to one file's bytes. Use as a context manager."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise BinaryReadError(f"cannot open: {e.strerror or e}") from e
        try:
            st = os.fstat(self._fd)
            if not stat.S_ISREG(st.st_mode):
                raise BinaryReadError("not a regular file")
            self.key: CacheKey = stat_key(st)
            self.size = st.st_size
            self._head = os.pread(self._fd, min(MAGIC_SIZE, self.size), 0)
        except BaseException as e:
            os.close(self._fd)
            if isinstance(e, OSError):
                raise BinaryReadError(f"cannot read: {e.strerror or e}") from e
            raise

    def check_size(self) -> None:
        """Refuse files above :data:`MAX_FILE_SIZE` (a parse error: it is about the file)."""
        if self.size > MAX_FILE_SIZE:
            raise BinaryParseError(
                f"file is {self.size} bytes, above the {MAX_FILE_SIZE >> 20} MiB limit"
            )

    @property
    def head(self) -> bytes:
        """The first bytes of the file: at least :data:`MAGIC_SIZE` (fewer if it is small)."""
        return self._head

    def read(self, offset: int, length: int, what: str) -> bytes:
        """Exactly ``length`` bytes at ``offset``; ``what`` names them in the error."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise BinaryParseError(
                f"{what} at {offset:#x}+{length:#x} lies outside the file ({self.size} bytes)"
            )
        if length > MAX_READ:
            raise BinaryParseError(
                f"{what} is {length} bytes, above the {MAX_READ >> 20} MiB limit"
            )
        end = offset + length
        if end > len(self._head) and end <= HEAD_SIZE and len(self._head) < self.size:
            self._head = self._pread(min(HEAD_SIZE, self.size), 0, "file head")
        if end <= len(self._head):
            return self._head[offset:end]
        return self._pread(length, offset, what)

    def _pread(self, length: int, offset: int, what: str) -> bytes:
        try:
            data = os.pread(self._fd, length, offset)
        except OSError as e:
            raise BinaryParseError(f"cannot read {what}: {e.strerror or e}") from e
        if len(data) != length:
            raise BinaryParseError(f"file shrank while reading {what}")
        return data

    def unpack(self, fmt: struct.Struct, offset: int, what: str) -> tuple[int, ...]:
        """One struct at ``offset``, bounds-checked like :meth:`read`."""
        values: tuple[int, ...] = fmt.unpack(self.read(offset, fmt.size, what))
        return values

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> FileBytes:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
