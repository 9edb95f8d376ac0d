"""Report formats: pure functions ``(Report) -> str``, selected by :class:`Format`."""

from __future__ import annotations

import enum
from collections.abc import Callable

from behavior.formats.json_format import render_json
from behavior.formats.text import render_text
from behavior.report import Report


class Format(enum.StrEnum):
    """The ``--format`` choices of commands that produce a report."""

    TEXT = "text"
    JSON = "json"


RENDERERS: dict[Format, Callable[[Report], str]] = {
    Format.TEXT: render_text,
    Format.JSON: render_json,
}


def render(fmt: Format, report: Report) -> str:
    """``report`` rendered in ``fmt``."""
    return RENDERERS[fmt](report)
