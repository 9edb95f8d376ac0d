"""``rba assess``: watch this host for a window, then report the findings."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading

from behavior.commands.report_options import add_report_options, report_options
from behavior.commands.window import add_probe_options, interrupts_end_window
from behavior.durations import parse_duration
from behavior.formats.terminal import visible
from behavior.interface import RbaError, UsageError

MIN_DURATION_S = 1.0
DEFAULT_DURATION = "15m"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rba assess``."""
    parser.add_argument(
        "--duration",
        default=DEFAULT_DURATION,
        help="length of the window, 1s..24h (e.g. 90s, 15m, 1h; default 15m)",
    )
    parser.add_argument(
        "--rules", metavar="IDS", help="comma-separated rule ids to run (default: all)"
    )
    parser.add_argument(
        "--record", metavar="TRACE", help="also record the window into TRACE for rba replay"
    )
    parser.add_argument(
        "--redact-cmdline",
        action="store_true",
        help="with --record: replace command-line arguments in the trace with keyed hashes",
    )
    add_probe_options(parser)
    add_report_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``rba assess``; returns the exit status."""
    if args.probes != "poll":
        from probes.ebpf_program import preload

        preload(args.content)  # compiles while the imports below run
    from behavior.commands.progress import TerminalObserver
    from behavior.recording.recorder import recorder_for
    from behavior.rules import RULE_IDS
    from behavior.window.assess import AssessConfig, run_assessment

    duration = parse_duration(args.duration, minimum=MIN_DURATION_S)
    poll_interval = parse_duration(args.poll_interval, minimum=0.05, maximum=60)
    rules = None
    if args.rules:
        rules = frozenset(r.strip() for r in args.rules.split(",") if r.strip())
        unknown = sorted(rules - set(RULE_IDS))
        if unknown:
            raise UsageError(f"unknown rule id(s): {', '.join(unknown)} (see rba rules)")
    options = report_options(args)
    config = AssessConfig(duration, rules, args.probes, poll_interval, args.content)
    if args.record == "-":
        raise UsageError("--record: a trace is a file (appended to and fsynced), not stdout")
    recorder = recorder_for(args.record, purpose="assess", redact=args.redact_cmdline)
    observer = TerminalObserver(quiet=args.quiet)
    stop = threading.Event()
    try:
        with interrupts_end_window(stop), recorder or contextlib.nullcontext():
            report = run_assessment(config, observer, stop, recorder=recorder)
    except UsageError:
        raise
    except RbaError as e:
        observer.clear()
        print(f"rba assess: {visible(str(e))}", file=sys.stderr)
        return 2
    observer.clear()
    if report.run.partial:
        observer.notice("window ended early: the report is partial")
    return options.deliver(report, "assess")
