"""Progress reporting from the core to whoever runs it: the CLI draws a progress line,
the daemon logs, tests record. The core never prints."""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    """Receives progress from long work. All methods must be cheap and must not raise."""

    def progress(self, done: float, total: float, detail: str) -> None:
        """``done`` of ``total`` units (seconds of a window, files of a scan) finished."""

    def notice(self, message: str) -> None:
        """A one-line statement worth showing (fallbacks, gaps, skipped inputs)."""


class NullObserver:
    """An observer that ignores everything."""

    def progress(self, done: float, total: float, detail: str) -> None:
        pass

    def notice(self, message: str) -> None:
        pass
