"""What every window-running command (assess, capture) shares on the command line."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def interrupts_end_window(stop: threading.Event) -> Iterator[None]:
    """While the window runs, Ctrl-C and SIGTERM end it early instead of killing rba."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def add_content_option(parser: argparse.ArgumentParser) -> None:
    """``--no-content``: never read payload bytes, even the first ones."""
    parser.add_argument(
        "--no-content",
        dest="content",
        action="store_false",
        help="do not capture first payloads to identify protocols (eBPF); identify them "
        "by port and program only",
    )
