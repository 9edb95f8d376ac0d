"""``rba rules``: list the rule catalogue (ids, titles, severities, what they find)."""

from __future__ import annotations

import argparse
import json
import textwrap

from behavior.interface import UsageError

WIDTH = 80


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rba rules``."""
    parser.add_argument("--format", default="text", help="text or json")


def run(args: argparse.Namespace) -> int:
    """Print the catalogue."""
    from behavior.rules import RULES

    if args.format == "json":
        entries = [
            {
                "id": r.info.id,
                "title": r.info.title,
                "severity": r.info.severity.value,
                "description": r.info.description,
                "recommendation": r.info.recommendation,
                "extended": r.info.extended,
            }
            for r in RULES
        ]
        print(json.dumps(entries, indent=2))
        return 0
    if args.format != "text":
        raise UsageError(f"unknown format {args.format!r}: use text or json")
    for extended in (False, True):
        print("Extended rules" if extended else "Core rules (Inspector parity)")
        for rule in (r for r in RULES if r.info.extended == extended):
            info = rule.info
            print(f"  {info.id}  [{info.severity.value}]")
            print(textwrap.fill(info.title, WIDTH, initial_indent="    "))
            print(
                textwrap.fill(
                    info.description, WIDTH, initial_indent="    ", subsequent_indent="    "
                )
            )
        print()
    return 0
