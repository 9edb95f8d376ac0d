"""Report formats: pure functions ``(Report) -> str``, selected by :class:`Format`."""

from __future__ import annotations

import enum
from collections.abc import Callable

from behavior.formats.asff import render_asff
from behavior.formats.html import render_html
from behavior.formats.json_format import render_json
from behavior.formats.ocsf import render_ocsf, render_ocsf_jsonl
from behavior.formats.text import render_text
from behavior.report import Report


class Format(enum.StrEnum):
    """The ``--format`` choices of commands that produce a report."""

    TEXT = "text"
    JSON = "json"
    OCSF = "ocsf"
    OCSF_JSONL = "ocsf-jsonl"
    ASFF = "asff"
    HTML = "html"


RENDERERS: dict[Format, Callable[[Report], str]] = {
    Format.TEXT: render_text,
    Format.JSON: render_json,
    Format.OCSF: render_ocsf,
    Format.OCSF_JSONL: render_ocsf_jsonl,
    Format.ASFF: render_asff,  # placeholder account and region; see render_asff
    Format.HTML: render_html,
}


def render(fmt: Format, report: Report) -> str:
    """``report`` rendered in ``fmt``."""
    return RENDERERS[fmt](report)
