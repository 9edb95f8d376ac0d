"""Report options shared by ``rba assess`` and ``rba replay``: ``--format``, ``--output``,
``--fail-on``, ``--min-severity``, ``--suppressions FILE`` and the ASFF account and
region. They are validated before any window opens, so a typo costs a second, not a
15-minute window."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, replace

from behavior.formats import Format, render
from behavior.formats.asff import (
    PLACEHOLDER_ACCOUNT_ID,
    PLACEHOLDER_REGION,
    check_account_id,
    check_region,
    render_asff,
)
from behavior.formats.output import check_writable, emit
from behavior.formats.suppressions import Suppression, apply_suppressions, load_suppressions
from behavior.formats.text import render_text
from behavior.interface import Report, Severity, UsageError

FORMAT_CHOICES = tuple(f.value for f in Format)


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--format``, ``--output``, ``--fail-on``, ``--suppressions``,
    ``--aws-account-id`` and ``--aws-region``."""
    parser.add_argument(
        "--format",
        default="text",
        type=str.lower,
        help=f"report format: {', '.join(FORMAT_CHOICES)} (any case)",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the report to FILE (mode 0600)"
    )
    parser.add_argument(
        "--fail-on",
        metavar="SEVERITY",
        help="exit 1 when a finding is at or above SEVERITY (high, medium, low, info)",
    )
    parser.add_argument(
        "--min-severity",
        metavar="SEVERITY",
        help="leave out findings below SEVERITY (high, medium, low, info); the report "
        "notes how many were left out",
    )
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

    format: Format
    output: str | None
    fail_on: Severity | None
    suppressions: tuple[Suppression, ...]
    account_id: str
    region: str
    min_severity: Severity | None = None

    def finish(self, report: Report, *, color: bool = False) -> tuple[Report, str]:
        """The report with the suppressions and ``--min-severity`` applied, and its
        rendering (a text report painted by severity with ``color``)."""
        report = at_least(apply_suppressions(report, self.suppressions), self.min_severity)
        if self.format is Format.ASFF:
            return report, render_asff(report, self.account_id, self.region)
        if self.format is Format.TEXT:
            return report, render_text(report, color=color)
        return report, render(self.format, report)

    def colors(self) -> bool:
        """Paint the text report: stdout is a terminal and NO_COLOR is unset."""
        to_stdout = not self.output or self.output == "-"
        return (
            self.format is Format.TEXT
            and to_stdout
            and sys.stdout.isatty()
            and "NO_COLOR" not in os.environ
        )

    def deliver(self, report: Report, command: str) -> int:
        """Apply the suppressions, write the report, and return the exit status: 1 when
        a finding is at or above ``--fail-on``, 2 when the output could not be written
        (the report then goes to stdout: a finished window cannot be run again)."""
        color = self.colors()
        report, text = self.finish(report, color=color)
        try:
            emit(text, self.output, colors=color)
        except UsageError as e:
            print(f"rba {command}: {e}; the report follows on stdout", file=sys.stderr)
            emit(text, None, colors=color)
            return 2
        limit = self.fail_on
        if limit is not None and any(f.severity.rank >= limit.rank for f in report.findings):
            return 1
        return 0


def report_options(args: argparse.Namespace) -> ReportOptions:
    """Validate the options (UsageError with a one-line reason)."""
    from behavior.rules import RULE_IDS

    try:
        fmt = Format(args.format)
    except ValueError:
        raise UsageError(
            f"unknown format {args.format!r}: use {', '.join(FORMAT_CHOICES)}"
        ) from None
    try:
        fail_on = Severity.parse(args.fail_on) if args.fail_on else None
        minimum = Severity.parse(args.min_severity) if args.min_severity else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.output and args.output != "-":
        check_writable(args.output, "report")
    suppressions: tuple[Suppression, ...] = ()
    if args.suppressions:
        suppressions = load_suppressions(args.suppressions, frozenset(RULE_IDS))
    try:
        account = check_account_id(args.aws_account_id or PLACEHOLDER_ACCOUNT_ID)
        region = check_region(args.aws_region or PLACEHOLDER_REGION)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return ReportOptions(fmt, args.output, fail_on, suppressions, account, region, minimum)


def at_least(report: Report, minimum: Severity | None) -> Report:
    """The report without its findings below ``minimum``, with a run note saying how
    many were left out, so a reader knows the report was cut on purpose."""
    if minimum is None:
        return report
    kept = tuple(f for f in report.findings if f.severity.rank >= minimum.rank)
    left_out = len(report.findings) - len(kept)
    note = (
        f"--min-severity {minimum.value}: {left_out} finding(s) below {minimum.value} "
        "left out of this report"
    )
    run = replace(report.run, notes=(*report.run.notes, note))
    return replace(report, run=run, findings=kept)
