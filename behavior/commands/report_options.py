"""Report options shared by ``rba assess`` and ``rba replay``: ``--suppressions FILE`` and
the ASFF account and region. They are validated before any window opens, so a typo in a
suppression file costs a second, not a 15-minute window."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from behavior.errors import UsageError
from behavior.formats import Format, render
from behavior.formats.asff import (
    PLACEHOLDER_ACCOUNT_ID,
    PLACEHOLDER_REGION,
    check_account_id,
    check_region,
    render_asff,
)
from behavior.report import Report
from behavior.suppressions import Suppression, apply_suppressions, load_suppressions

FORMAT_CHOICES = tuple(f.value for f in Format)


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--suppressions``, ``--aws-account-id`` and ``--aws-region``."""
    parser.add_argument(
        "--suppressions",
        metavar="FILE",
        help="TOML file of [[suppression]] entries (rule, match, reason, expires); "
        "suppressed findings are listed apart with their reason",
    )
    parser.add_argument(
        "--aws-account-id",
        metavar="ID",
        help=f"with --format asff: the 12-digit account (default {PLACEHOLDER_ACCOUNT_ID})",
    )
    parser.add_argument(
        "--aws-region",
        metavar="REGION",
        help=f"with --format asff: the region (default {PLACEHOLDER_REGION})",
    )


@dataclass(frozen=True)
class ReportOptions:
    """Validated report options."""

    suppressions: tuple[Suppression, ...]
    account_id: str
    region: str

    def finish(self, fmt: Format, report: Report) -> tuple[Report, str]:
        """The report with the suppressions applied, and its rendering in ``fmt``."""
        report = apply_suppressions(report, self.suppressions)
        if fmt is Format.ASFF:
            return report, render_asff(report, self.account_id, self.region)
        return report, render(fmt, report)


def report_options(args: argparse.Namespace) -> ReportOptions:
    """Validate the options (UsageError with a one-line reason)."""
    from behavior.rules import RULE_IDS

    suppressions: tuple[Suppression, ...] = ()
    if args.suppressions:
        suppressions = load_suppressions(args.suppressions, frozenset(RULE_IDS))
    try:
        account = check_account_id(args.aws_account_id or PLACEHOLDER_ACCOUNT_ID)
        region = check_region(args.aws_region or PLACEHOLDER_REGION)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return ReportOptions(suppressions, account, region)
