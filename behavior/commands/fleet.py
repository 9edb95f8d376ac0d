"""``rba fleet LAKE [--since D] [--format text|json|html]``: what a findings lake says
about the fleet, with DuckDB embedded: per rule the hosts and findings, the top subjects
across hosts, the fingerprints new since D and the hosts silent since D. Needs the
``rba[fleet]`` extra (duckdb)."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from behavior.commands.progress import TerminalObserver as Observer
    from behavior.commands.report_options import ReportOptions

FORMATS = ("text", "json", "html")
MAX_SINCE_S = 3660 * 24 * 3600


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rba fleet``."""
    parser.add_argument("lake", metavar="LAKE", help="a lake written by rba lake add")
    parser.add_argument(
        "--since",
        metavar="D",
        help="a date or time (2026-11-30, 2026-11-30T12:00Z) or a duration before now "
        "(36h); default: 24h before the newest run in the lake",
    )
    parser.add_argument("--format", default="text", type=str.lower, help=", ".join(FORMATS))
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE (mode 0600)")


def run(args: argparse.Namespace) -> int:
    """Run ``rba fleet``."""
    from behavior.fleet.interface import FleetError, require_fleet_extra
    from behavior.formats.output import check_writable, emit
    from behavior.interface import UsageError

    if args.format not in FORMATS:
        raise UsageError(f"unknown format {args.format!r}: use {', '.join(FORMATS)}")
    since = parse_since(args.since) if args.since else None
    if args.output and args.output != "-":
        check_writable(args.output, "fleet report")
    try:
        require_fleet_extra("duckdb")
        from behavior.fleet import render
        from behavior.fleet.query import fleet_summary

        summary = fleet_summary(args.lake, since)
    except FleetError as e:
        raise UsageError(str(e)) from e
    renderer = {
        "text": render.render_fleet_text,
        "json": render.render_fleet_json,
        "html": render.render_fleet_html,
    }[args.format]
    emit(renderer(summary), args.output)
    return 0


def parse_since(text: str) -> int:
    """Epoch ms of ``--since``: an ISO date or time (UTC unless it says), or a duration
    before now. Raises UsageError."""
    from behavior.durations import parse_duration
    from behavior.interface import UsageError

    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        if not text.strip()[:1].isdigit() or "-" in text:
            raise UsageError(
                f"invalid --since {text!r}: use a date (2026-11-30), a time "
                "(2026-11-30T12:00Z) or a duration before now (36h)"
            ) from None
        return int((time.time() - parse_duration(text, maximum=MAX_SINCE_S)) * 1000)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp() * 1000)


def add_lake_options(parser: argparse.ArgumentParser) -> None:
    """``rba replay``'s many-traces options: ``--lake``, ``--jobs`` and ``--dask``."""
    parser.add_argument(
        "--lake",
        metavar="LAKE",
        help="replay every TRACE and add the reports to LAKE instead of printing one "
        "(--aws-region and --aws-account-id name its partition)",
    )
    parser.add_argument(
        "--jobs", type=int, metavar="N", help="with --lake: local worker processes (default: CPUs)"
    )
    parser.add_argument(
        "--dask",
        metavar="SCHEDULER",
        help="with --lake: replay on this Dask distributed scheduler (tcp://HOST:PORT); "
        "the traces and the lake must be at the same paths on every worker",
    )


def replay_into_lake(args: argparse.Namespace, options: ReportOptions, observer: Observer) -> int:
    """``rba replay TRACE... --lake LAKE``: 2 if a trace failed, 1 if a finding is at or
    above ``--fail-on``, else 0."""
    import sys

    from behavior.fleet.interface import FleetError
    from behavior.fleet.replay import ReplayTask, replay_many
    from behavior.interface import UsageError

    if options.output:
        raise UsageError("--output does not apply with --lake: the reports go into the lake")
    if options.min_severity is not None:
        raise UsageError("--min-severity does not apply with --lake: the lake keeps every finding")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be 1 or more")
    task = ReplayTask(args.lake, options.region, options.account_id, options.suppressions)
    try:
        outcomes = replay_many(
            task, args.trace, jobs=args.jobs, scheduler=args.dask, observer=observer
        )
    except FleetError as e:
        raise UsageError(str(e)) from e
    finally:
        observer.clear()
    failed = [o for o in outcomes if o.error]
    for outcome in failed:
        print(f"rba replay: {outcome.trace}: {outcome.error}", file=sys.stderr)
    print(
        f"{len(outcomes) - len(failed)} of {len(outcomes)} trace(s) replayed into {args.lake}: "
        f"{sum(o.added for o in outcomes)} finding(s) added, "
        f"{sum(o.present for o in outcomes)} already there"
    )
    if failed:
        return 2
    limit = options.fail_on
    return 1 if limit is not None and any(o.worst_rank >= limit.rank for o in outcomes) else 0
