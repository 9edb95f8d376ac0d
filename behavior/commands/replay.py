"""``rba replay``: the findings of a recorded window, on any machine, without root.

Reads only the trace (no kernel, no /proc; bcc and psutil are never imported). A damaged
or early-ended trace is replayed as far as it goes; the report says what was lost and is
marked partial.
"""

from __future__ import annotations

import argparse

from behavior.commands.fleet import add_lake_options, replay_into_lake
from behavior.commands.report_options import add_report_options, report_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rba replay``."""
    parser.add_argument(
        "trace", metavar="TRACE", nargs="+", help="a trace from rba capture or --record "
        "(several with --lake)",
    )  # fmt: skip
    add_report_options(parser)
    add_lake_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``rba replay``."""
    from behavior.commands.progress import TerminalObserver
    from behavior.interface import UsageError
    from behavior.recording.header import RecordingError
    from behavior.recording.loading import load_recording
    from behavior.recording.replay import replay

    options = report_options(args)
    observer = TerminalObserver(quiet=args.quiet)
    if args.lake:
        return replay_into_lake(args, options, observer)
    if len(args.trace) > 1:
        raise UsageError("several traces are replayed into a lake: add --lake LAKE")
    try:
        recording = load_recording(args.trace[0])
        for problem in recording.problems:
            observer.notice(problem)
        report = replay(recording, observer)
    except RecordingError as e:
        raise UsageError(str(e)) from e
    observer.clear()
    return options.deliver(report, "replay")
