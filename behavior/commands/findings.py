"""``rba findings RUN``: fetch a finished run's findings from the daemon."""

from __future__ import annotations

import argparse
import datetime as dt

from behavior.daemon.client import add_socket_argument, call
from behavior.daemon.protocol import REQUEST_FORMATS, FindingsRequest
from behavior.durations import parse_duration
from behavior.formats.output import emit
from behavior.interface import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rba findings``."""
    parser.add_argument("run", metavar="RUN", help="run id (see `rba status`)")
    parser.add_argument("--format", choices=REQUEST_FORMATS, type=str.lower, default="text")
    parser.add_argument("-o", "--output", help="write to FILE (atomically, mode 0600)")
    parser.add_argument(
        "--new-since",
        metavar="RUN|DURATION",
        help="only what is new since run RUN, or since the last completed run that started "
        "DURATION (e.g. 24h) before this one: an rba diff (text, json or asff)",
    )
    add_socket_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Print (or write) the run's report."""
    if args.new_since:
        from behavior.commands.diff import compare

        if args.format not in ("text", "json", "asff"):
            raise UsageError("--new-since gives a diff: use --format text, json or asff")
        baseline = _baseline(args.socket, args.run, args.new_since)
        text, _new = compare(baseline, args.run, args.socket, args.format)
        emit(text, args.output)
        return 0
    text = call(args.socket, FindingsRequest(run=args.run, format=args.format))
    emit(text, args.output)
    return 0


def _baseline(socket_path: str, run_id: str, since: str) -> str:
    """The run to compare ``run_id`` with: ``since`` itself, or, for a duration, the
    latest completed run that started at least that long before ``run_id`` did."""
    try:
        seconds = parse_duration(since, maximum=366 * 24 * 3600)
    except UsageError:
        return since  # a run id
    from behavior.daemon.protocol import StatusRequest

    runs = call(socket_path, StatusRequest())["runs"]
    this = next((r for r in runs if r["id"] == run_id), None)
    if this is None:
        raise UsageError(f"no run {run_id!r} (see rba status)")
    cutoff = dt.datetime.fromisoformat(str(this["started_at"]).replace("Z", "+00:00"))
    cutoff -= dt.timedelta(seconds=seconds)
    earlier = [
        r
        for r in runs
        if r["state"] == "completed"
        and dt.datetime.fromisoformat(str(r["started_at"]).replace("Z", "+00:00")) <= cutoff
    ]
    if not earlier:
        raise UsageError(f"no completed run started {since} or more before {run_id}")
    found: str = max(earlier, key=lambda r: (r["started_at"], r["id"]))["id"]
    return found
