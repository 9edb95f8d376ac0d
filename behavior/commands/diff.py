"""``rba diff OLD NEW``: what appeared, disappeared and stayed between two reports.

OLD and NEW are JSON reports (``rba assess --format json``), or run ids of the daemon
(fetched as JSON over its socket). The exit status applies ``--fail-on`` to the new
findings only, so a cron job or CI alerts on regressions, not on known findings."""

from __future__ import annotations

import argparse
import json
import os

from behavior.interface import Finding, Report, Severity, UsageError

DIFF_FORMATS = ("text", "json", "asff")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rba diff``."""
    from behavior.daemon.client import add_socket_argument
    from behavior.formats.asff import PLACEHOLDER_ACCOUNT_ID, PLACEHOLDER_REGION

    parser.add_argument("old", metavar="OLD", help="the earlier JSON report, or a daemon run id")
    parser.add_argument("new", metavar="NEW", help="the later JSON report, or a daemon run id")
    parser.add_argument("--format", choices=DIFF_FORMATS, type=str.lower, default="text")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE (mode 0600)")
    parser.add_argument(
        "--fail-on",
        metavar="SEVERITY",
        help="exit 1 when a NEW finding is at or above SEVERITY (high, medium, low, info)",
    )
    parser.add_argument(
        "--aws-account-id",
        metavar="ID",
        help=f"with --format asff (default {PLACEHOLDER_ACCOUNT_ID})",
    )
    parser.add_argument(
        "--aws-region", metavar="REGION", help=f"with --format asff (default {PLACEHOLDER_REGION})"
    )
    add_socket_argument(parser)


def load(source: str, socket_path: str) -> Report:
    """The report in file ``source``, or of the daemon's run ``source``."""
    from behavior.formats.json_format import report_from_dict

    if os.path.exists(source) or os.sep in source or source.endswith(".json"):
        try:
            with open(source, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read {source}: {getattr(e, 'strerror', None) or e}") from None
    else:
        text = _from_daemon(source, socket_path)
    try:
        return report_from_dict(json.loads(text))
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise UsageError(f"{source}: {str(e).splitlines()[0]}") from None


def _from_daemon(run_id: str, socket_path: str) -> str:
    from behavior.daemon.client import call
    from behavior.daemon.protocol import FindingsRequest

    text = call(socket_path, FindingsRequest(run=run_id, format="json"))
    if not isinstance(text, str):
        raise UsageError(f"the daemon sent no JSON report for run {run_id}")
    return text


def run(args: argparse.Namespace) -> int:
    """Print (or write) the diff; 1 when a new finding reaches ``--fail-on``."""
    from behavior.formats.asff import (
        PLACEHOLDER_ACCOUNT_ID,
        PLACEHOLDER_REGION,
        check_account_id,
        check_region,
    )
    from behavior.formats.output import check_writable, emit

    try:
        fail_on = Severity.parse(args.fail_on) if args.fail_on else None
        account = check_account_id(args.aws_account_id or PLACEHOLDER_ACCOUNT_ID)
        region = check_region(args.aws_region or PLACEHOLDER_REGION)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.output and args.output != "-":
        check_writable(args.output, "diff")
    text, appeared = compare(
        args.old, args.new, args.socket, args.format, account=account, region=region
    )
    emit(text, args.output)
    if fail_on is not None and any(f.severity.rank >= fail_on.rank for f in appeared):
        return 1
    return 0


def compare(
    old: str,
    new: str,
    socket_path: str,
    fmt: str,
    *,
    account: str | None = None,
    region: str | None = None,
) -> tuple[str, tuple[Finding, ...]]:
    """The diff of reports (files or daemon run ids) ``old`` and ``new`` rendered in
    ``fmt`` (text, json or asff; ASFF's placeholders without ``account``, ``region``),
    and the new findings."""
    from behavior.formats.asff import PLACEHOLDER_ACCOUNT_ID, PLACEHOLDER_REGION
    from behavior.formats.diff import (
        DiffError,
        diff_reports,
        render_diff_asff,
        render_diff_json,
        render_diff_text,
    )

    try:
        diff = diff_reports(load(old, socket_path), load(new, socket_path))
    except DiffError as e:
        raise UsageError(str(e)) from None
    if fmt == "json":
        text = render_diff_json(diff)
    elif fmt == "asff":
        text = render_diff_asff(
            diff, account or PLACEHOLDER_ACCOUNT_ID, region or PLACEHOLDER_REGION
        )
    else:
        text = render_diff_text(diff)
    return text, diff.appeared
