"""Writing reports and other files: to stdout, or to a file through
:mod:`probes.files` (regular files only, no planted symlinks, O_EXCL next to the target
then rename, mode 0600, fsync). Every file rba writes goes through here or, in the
probes layer, through :mod:`probes.files` directly.

``-`` as a path means standard output, deliberately; a device, FIFO, socket, directory
or symlink as a target is refused with a one-line reason.
"""

from __future__ import annotations

import sys

from behavior.formats.terminal import for_terminal
from behavior.interface import UsageError
from probes.files import FileWriteError, check_target, write_file

STDOUT = "-"


def check_writable(path: str, what: str = "") -> None:
    """Raise UsageError now if ``path`` cannot be created or replaced: long work (a window
    of minutes or hours) must not end in an unwritable location."""
    try:
        check_target(path)
    except FileWriteError as e:
        raise UsageError(_labelled(str(e), what)) from e


def write_atomic(path: str, text: str | bytes) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600: a reader never sees a
    half-written file, and an existing one is replaced only when the new one is complete.
    Raises UsageError (one line) when the path is refused or the write fails."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    try:
        write_file(path, data)
    except FileWriteError as e:
        raise UsageError(str(e)) from e


def emit(text: str, output: str | None, *, colors: bool = False) -> None:
    """Send a rendered document to ``output`` (a path) or to stdout (None or ``-``).

    Control characters are escaped on the way (:func:`behavior.formats.terminal.
    for_terminal`): a text report is read on a terminal, from stdout or later with
    ``cat``, and JSON documents stay lossless through that escaping. ``colors`` keeps
    the renderers' own colour codes (:data:`behavior.formats.terminal.COLORS`)."""
    text = for_terminal(text, colors=colors)
    if output and output != STDOUT:
        write_atomic(output, text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _labelled(message: str, what: str) -> str:
    return message.replace("cannot write ", f"cannot write {what} ", 1) if what else message
