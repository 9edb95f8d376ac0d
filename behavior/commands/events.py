"""``rba events``: print the merged event stream as it happens (debugging and demos).

Text lines or JSON lines on stdout; notices (such as the fallback to polling) on stderr;
a summary of sources, coverage, counts, losses and gaps at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from behavior.commands.window import add_probe_options
from behavior.formats.terminal import visible

if TYPE_CHECKING:
    from probes.backend import ProbeSession
    from probes.events import EventArray, StringTable

EXIT_OK = 0
EXIT_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rba events``."""
    parser.add_argument("--duration", default="10s", help="how long to watch (default 10s)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    add_probe_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``rba events``."""
    from behavior.commands.progress import TerminalObserver
    from behavior.durations import parse_duration
    from probes.backend import open_session
    from probes.events import StringTable
    from probes.interface import ProbeError

    duration = parse_duration(args.duration, minimum=0.1)
    interval = parse_duration(args.poll_interval, minimum=0.05, maximum=3600)
    observer = TerminalObserver(quiet=args.quiet)
    try:
        session = open_session(args.probes, poll_interval=interval, content=args.content)
    except ProbeError as e:
        print(f"rba events: {e}", file=sys.stderr)
        return EXIT_ERROR
    for notice in session.notices:
        observer.notice(notice)
    strings = StringTable()
    try:
        session.start(strings)
    except ProbeError as e:
        print(f"rba events: {e}", file=sys.stderr)
        return EXIT_ERROR
    interrupted = False
    try:
        _watch(session, strings, duration, args.json)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        session.stop()
    _summary(session, args.json, interrupted)
    return EXIT_OK


def _watch(session: ProbeSession, strings: StringTable, duration: float, as_json: bool) -> None:
    deadline = time.monotonic() + duration
    while (left := deadline - time.monotonic()) > 0:
        _print_batch(session.read(min(0.2, left)), strings, as_json)
    _print_batch(session.read(0.0), strings, as_json)


def _print_batch(batch: EventArray, strings: StringTable, as_json: bool) -> None:
    from probes.describe import event_dict, event_line

    if not len(batch):
        return
    if as_json:
        lines = [json.dumps(event_dict(e, strings)) for e in batch]
    else:
        lines = [visible(event_line(e, strings)) for e in batch]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _summary(session: ProbeSession, as_json: bool, interrupted: bool) -> None:
    stats = session.stats()
    if as_json:
        summary = {
            "sources": list(session.sources),
            "coverage": session.coverage(),
            "notices": list(session.notices),
            "interrupted": interrupted,
            "stats": {
                name: {"events": s.events, "lost": s.lost, "gaps": list(s.gaps)}
                for name, s in stats.items()
            },
        }
        print(json.dumps({"summary": summary}))
        return
    print(f"-- sources: {', '.join(session.sources)}{' (interrupted)' if interrupted else ''}")
    print(f"-- coverage: {session.coverage()}")
    for name, s in stats.items():
        print(f"-- {name}: {s.events} events, {s.lost} lost")
        for gap in s.gaps:
            print(f"--   gap: {visible(gap)}")
