"""The terminal progress line shared by every long command (assess, capture, scan, replay).

It draws on stderr, only when stderr is a terminal, and at most a few times a second;
notices are printed one line each. With ``quiet`` (``-q``) it prints neither: only errors
reach stderr."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from behavior.formats.terminal import visible


class TerminalObserver:
    """An :class:`behavior.interface.Observer` that draws one updating line on a TTY."""

    def __init__(
        self, stream: TextIO | None = None, *, min_interval: float = 0.2, quiet: bool = False
    ) -> None:
        self._stream = stream or sys.stderr
        self.quiet = quiet
        self._live = self._stream.isatty() and not quiet
        self._min_interval = min_interval
        self._last_draw = 0.0
        self._drawn = False

    def progress(self, done: float, total: float, detail: str) -> None:
        if not self._live:
            return
        now = time.monotonic()
        if now - self._last_draw < self._min_interval and done < total:
            return
        self._last_draw = now
        pct = 100.0 * done / total if total else 100.0
        line = f"[{pct:5.1f}%] {visible(detail)}"[:79]
        self._stream.write("\r\x1b[K" + line)
        self._stream.flush()
        self._drawn = True

    def notice(self, message: str) -> None:
        if self.quiet:
            return
        self.clear()
        self._stream.write(f"rba: {visible(message)}\n")
        self._stream.flush()

    def clear(self) -> None:
        """Erase the progress line (call before printing the report)."""
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False
