"""Standard streams that fail loudly: a report that cannot reach stdout (closed, a full
disk, ``/dev/full``) is a one-line error and exit 2, never a traceback or a silent 0.

:func:`guarded_stdio` is entered by :func:`behavior.commands.cli.main` around a command.
It first gives any closed standard fd a placeholder (``/dev/null``), so no file rba opens
later lands on fd 1 and receives the report; a closed stdout then fails on first write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO, cast


class StdoutError(Exception):
    """Standard output could not be written; the message is one line."""


class _GuardedStdout:
    """Delegates to the real stdout; turns its OSErrors into :class:`StdoutError`."""

    def __init__(self, real: TextIO | None) -> None:
        self._real = real

    def write(self, text: str) -> int:
        written: int = self._call("write", text)
        return written

    def flush(self) -> None:
        if self._real is not None:  # nothing written to a closed stdout is nothing lost
            self._call("flush")

    def _call(self, name: str, *args: Any) -> Any:
        if self._real is None:
            raise StdoutError("cannot write to standard output: it is closed")
        try:
            return getattr(self._real, name)(*args)
        except BrokenPipeError:
            raise  # the reader went away (| head): not an error of ours
        except OSError as e:
            raise StdoutError(f"cannot write to standard output: {e.strerror or e}") from e

    def isatty(self) -> bool:
        return self._real is not None and self._real.isatty()

    def __getattr__(self, name: str) -> Any:
        if self._real is None:
            raise StdoutError("cannot write to standard output: it is closed")
        return getattr(self._real, name)


def _fill_closed_fds() -> set[int]:
    closed = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError as e:
            if e.errno != errno.EBADF:
                raise
            closed.add(fd)
    for fd in sorted(closed):
        placeholder = os.open(os.devnull, os.O_RDWR)
        if placeholder != fd:
            os.dup2(placeholder, fd)
            os.close(placeholder)
    return closed


def silence_stdout() -> None:
    """Point fd 1 at /dev/null, so the interpreter's last flush of what could not be
    written does not print a second error at exit."""
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)


@contextlib.contextmanager
def guarded_stdio() -> Iterator[None]:
    """While a command runs, its stdout raises :class:`StdoutError` on failure; on leaving
    it is flushed (a short report sits in the buffer until then)."""
    closed = _fill_closed_fds()
    real_out, real_err = sys.stdout, sys.stderr
    if 2 in closed or real_err is None:
        # O_WRONLY without O_CREAT: never make a regular file where /dev/null should be.
        sys.stderr = os.fdopen(os.open(os.devnull, os.O_WRONLY), "w", encoding="utf-8")
    guard = _GuardedStdout(None if 1 in closed or real_out is None else real_out)
    sys.stdout = cast(TextIO, guard)
    try:
        yield
        guard.flush()
    finally:
        sys.stdout, sys.stderr = real_out, real_err
