"""``rba replay``: the findings of a recorded window, on any machine, without root.

Reads only the trace (no kernel, no /proc; bcc and psutil are never imported). A damaged
or early-ended trace is replayed as far as it goes; the report says what was lost and is
marked partial.
"""

from __future__ import annotations

import argparse

from behavior.commands.report_options import FORMAT_CHOICES, add_report_options, report_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rba replay``."""
    parser.add_argument("trace", metavar="TRACE", help="a trace from rba capture or --record")
    parser.add_argument("--format", choices=FORMAT_CHOICES, default="text")
    parser.add_argument("--output", metavar="FILE", help="write the report here (mode 0600)")
    parser.add_argument(
        "--fail-on", metavar="SEVERITY", default=None,
        help="exit 1 when a finding is at or above this severity (default: never)",
    )  # fmt: skip
    add_report_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``rba replay``."""
    from behavior.errors import UsageError
    from behavior.formats import Format
    from behavior.output import emit
    from behavior.progress import TerminalObserver
    from behavior.record import RecordingError, load_recording, replay
    from behavior.report import Severity

    try:
        fail_on = Severity.parse(args.fail_on) if args.fail_on else None
    except ValueError as e:
        raise UsageError(str(e)) from e
    options = report_options(args)
    observer = TerminalObserver()
    try:
        recording = load_recording(args.trace)
        for problem in recording.problems:
            observer.notice(problem)
        report = replay(recording, observer)
    except RecordingError as e:
        raise UsageError(str(e)) from e
    observer.clear()
    report, text = options.finish(Format(args.format), report)
    emit(text, args.output)
    if fail_on is not None and any(f.severity.rank >= fail_on.rank for f in report.findings):
        return 1
    return 0
