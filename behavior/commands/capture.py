"""``rba capture``: record a window into a trace file and judge nothing.

The window runs through the same path as ``rba assess --record`` (the same probes, the
same fact gathering, so the trace holds every fact a replay needs); only the report is
not produced. Ctrl-C or SIGTERM ends the window early: the trace is closed properly and
marked partial.
"""

from __future__ import annotations

import argparse
import sys
import threading

from behavior.commands.window import add_probe_options

EXIT_OK = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rba capture``."""
    parser.add_argument("--duration", default="15m", help="window length (default 15m)")
    parser.add_argument("--output", "-o", required=True, metavar="TRACE", help="trace file")
    add_probe_options(parser)
    parser.add_argument(
        "--redact-cmdline", action="store_true",
        help="replace command-line arguments with keyed hashes (for sharing the trace)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run ``rba capture``."""
    from behavior.commands.progress import TerminalObserver
    from behavior.commands.window import interrupts_end_window
    from behavior.durations import parse_duration
    from behavior.interface import RbaError, UsageError
    from behavior.recording.recorder import TraceRecorder
    from behavior.window.assess import AssessConfig, run_assessment

    config = AssessConfig(
        duration_s=parse_duration(args.duration, minimum=1),
        probes=args.probes,
        poll_interval=parse_duration(args.poll_interval, minimum=0.05, maximum=60),
        content=args.content,
    )
    observer = TerminalObserver(quiet=args.quiet)
    if args.output == "-":
        raise UsageError("a trace is a file (appended to and fsynced), not standard output")
    recorder = TraceRecorder(args.output, purpose="capture", redact=args.redact_cmdline)
    stop = threading.Event()
    try:
        with interrupts_end_window(stop), recorder:
            report = run_assessment(config, observer, stop, recorder=recorder)
    except RbaError as e:
        raise UsageError(str(e)) from e
    observer.clear()
    run = report.run
    state = "ended early, partial" if run.partial else "complete"
    if args.quiet:
        return EXIT_OK
    print(
        f"rba capture: {recorder.path}: {recorder.events_written} events, "
        f"{run.lost_events} lost, sources {', '.join(run.sources)} ({state})",
        file=sys.stderr,
    )
    return EXIT_OK
