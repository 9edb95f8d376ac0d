"""Writing reports: to stdout, or atomically to a file created with mode 0600."""

from __future__ import annotations

import os
import sys
import tempfile

from behavior.interface import UsageError


def check_writable(path: str, what: str = "") -> None:
    """Raise UsageError now if ``path`` cannot be created or replaced: long work (a window
    of minutes or hours) must not end in an unwritable location."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.access(directory, os.W_OK | os.X_OK):
        label = f"{what} " if what else ""
        raise UsageError(f"cannot write {label}{path}: not a writable file location")


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + rename) with mode 0600.

    A reader never sees a half-written report, and an existing report is replaced only
    when the new one is complete."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".rba-", dir=directory)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise UsageError(f"cannot write {path}: {e.strerror}") from e


def emit(text: str, output: str | None) -> None:
    """Send a rendered report to ``output`` (a path) or to stdout."""
    if output and output != "-":
        write_atomic(output, text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
