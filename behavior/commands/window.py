"""What every window-running command (assess, capture) shares on the command line."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

WINDOW_ENDING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def interrupts_end_window(stop: threading.Event) -> Iterator[None]:
    """While the window runs, Ctrl-C, SIGTERM and SIGHUP (a dropped SSH session) end it
    early instead of killing rba: the partial window is still reported or recorded."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in WINDOW_ENDING_SIGNALS}
    try:
        yield
    finally:
        _window.over = True
        for sig, old in previous.items():
            signal.signal(sig, old)


class _WindowState:
    over = False


_window = _WindowState()


@contextlib.contextmanager
def window_command_signals(*, until_exit: bool) -> Iterator[None]:
    """Around a whole window command (``rba assess``, ``rba capture``): before the window
    opens, a window-ending signal interrupts the command (KeyboardInterrupt); once it has
    closed, further signals are ignored while the report and the trace are finished, so
    a storm of them cannot lose what the window saw. With ``until_exit`` (rba run as a
    program) they stay ignored after the command, while the interpreter exits."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if not _window.over:
            raise KeyboardInterrupt

    _window.over = False
    previous = {sig: signal.signal(sig, handler) for sig in WINDOW_ENDING_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_IGN if until_exit and _window.over else old)


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
