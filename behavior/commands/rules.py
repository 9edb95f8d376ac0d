"""``rba rules``: list the rule catalogue (ids, titles, severities, what they find)."""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING

from behavior.interface import UsageError

if TYPE_CHECKING:
    from behavior.rules.interface import RuleInfo

WIDTH = 80


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rba rules``."""
    parser.add_argument("--format", default="text", type=str.lower, help="text, json or markdown")


def run(args: argparse.Namespace) -> int:
    """Print the catalogue."""
    from behavior.rules import RULES

    render = _RENDERERS.get(str(args.format).lower())
    if render is None:
        raise UsageError(f"unknown format {args.format!r}: use text, json or markdown")
    print(render(tuple(rule.info for rule in RULES)), end="")
    return 0


def render_json(infos: tuple[RuleInfo, ...]) -> str:
    """The catalogue as a JSON list, one object per rule."""
    entries = [
        {
            "id": info.id,
            "title": info.title,
            "severity": info.severity.value,
            "description": info.description,
            "recommendation": info.recommendation,
            "extended": info.extended,
        }
        for info in infos
    ]
    return json.dumps(entries, indent=2) + "\n"


def render_text(infos: tuple[RuleInfo, ...]) -> str:
    """The catalogue for a terminal: core rules, then extended ones."""
    lines: list[str] = []
    for extended in (False, True):
        lines.append("Extended rules" if extended else "Core rules (Inspector parity)")
        for info in (i for i in infos if i.extended == extended):
            lines.append(f"  {info.id}  [{info.severity.value}]")
            lines.append(textwrap.fill(info.title, WIDTH, initial_indent="    "))
            lines.append(
                textwrap.fill(
                    info.description, WIDTH, initial_indent="    ", subsequent_indent="    "
                )
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def render_markdown(infos: tuple[RuleInfo, ...]) -> str:
    """The catalogue as the Markdown table that docs/rules.md embeds (a test keeps the
    two equal)."""
    lines = [
        "| id | title | severity | kind | what it finds | what to do |",
        "|---|---|---|---|---|---|",
    ]
    for info in infos:
        cells = (
            f"`{info.id}`",
            info.title,
            info.severity.value,
            "extended" if info.extended else "core",
            info.description,
            info.recommendation,
        )
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


_RENDERERS: dict[str, Callable[[tuple[RuleInfo, ...]], str]] = {
    "text": render_text,
    "json": render_json,
    "markdown": render_markdown,
}
