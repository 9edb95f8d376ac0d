"""The one bounded reader for small files rba is told to read (configs, suppression
files, the scan cache): regular files only, and never more than a cap.

A path given to rba may name a FIFO (opening it would block until a writer comes), a
device (``/dev/zero`` never ends) or a huge file. Here the file is opened with
``O_NONBLOCK`` (so a FIFO cannot hang the open), checked with ``fstat`` to be a regular
file no larger than the cap, and read up to one byte past the cap (a file growing while
read is refused too). Errors are :class:`FileReadError` with a one-line message naming
the path. Like :mod:`probes.files`, this module imports nothing else of rba.
"""

from __future__ import annotations

import errno
import os
import stat

from probes.files import file_kind


class FileReadError(Exception):
    """A file could not be read, or was refused; ``missing`` when it does not exist."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def read_small_file(path: str, limit: int) -> bytes:
    """The whole content of the regular file ``path``, at most ``limit`` bytes."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise FileReadError(
            f"{path}: cannot read: {e.strerror}", missing=e.errno == errno.ENOENT
        ) from None
    try:
        st = os.fstat(fd)
        kind = file_kind(st.st_mode)
        if not stat.S_ISREG(st.st_mode):
            raise FileReadError(f"{path}: is {kind or 'not a regular file'}; give a regular file")
        if st.st_size > limit:
            raise FileReadError(f"{path}: {st.st_size} bytes, more than the {limit} allowed")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise FileReadError(f"{path}: more than the {limit} bytes allowed")
        return b"".join(chunks)
    except OSError as e:
        raise FileReadError(f"{path}: cannot read: {e.strerror}") from None
    finally:
        os.close(fd)
