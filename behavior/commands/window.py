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


def add_probe_options(parser: argparse.ArgumentParser) -> None:
    """``--probes``, ``--poll-interval`` and ``--no-content``: how a window observes."""
    parser.add_argument(
        "--probes",
        choices=("auto", "ebpf", "poll"),
        default="auto",
        help="event sources: auto (eBPF + polling, else polling), ebpf (required), poll",
    )
    parser.add_argument(
        "--poll-interval", default="1s", metavar="D", help="polling period (default 1s)"
    )
    parser.add_argument(
        "--no-content",
        dest="content",
        action="store_false",
        help="do not capture first payloads to identify protocols (eBPF); identify them "
        "by port and program only",
    )
