"""``rba lake add LAKE REPORT...``: add rba JSON reports to a findings lake (Parquet in
Amazon Security Lake's layout; see docs/fleet.md). Adding a report twice adds nothing.
Needs the ``rba[fleet]`` extra (pyarrow)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rba lake``."""
    from behavior.formats.asff import PLACEHOLDER_ACCOUNT_ID, PLACEHOLDER_REGION

    sub = parser.add_subparsers(dest="lake_command", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="add JSON reports (rba assess/replay --format json)")
    add.add_argument("lake", metavar="LAKE", help="the lake's directory (created if missing)")
    add.add_argument("reports", metavar="REPORT", nargs="+", help="rba JSON reports")
    add.add_argument(
        "--region", default=PLACEHOLDER_REGION, help="the region= partition (default %(default)s)"
    )
    add.add_argument(
        "--account-id",
        default=PLACEHOLDER_ACCOUNT_ID,
        help="the 12-digit accountId= partition (default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``rba lake add``."""
    from behavior.fleet.interface import FleetError, require_fleet_extra
    from behavior.interface import UsageError

    try:
        require_fleet_extra("pyarrow")
        from behavior.fleet.lake import add_reports, load_report

        reports = (load_report(path) for path in args.reports)
        result = add_reports(args.lake, reports, region=args.region, account_id=args.account_id)
    except FleetError as e:
        raise UsageError(str(e)) from e
    print(
        f"{result.reports} report(s): {result.findings_added} finding(s) and "
        f"{result.runs_added} run(s) added to {args.lake}, {result.findings_present} "
        f"finding(s) already there; {len(result.files)} file(s) written"
    )
    return 0
