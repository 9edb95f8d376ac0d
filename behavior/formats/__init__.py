"""Report formats: pure functions ``(Report) -> str``, selected by :class:`Format`.

Renderers are imported when first used, so that modules of this package that do not
render reports (output, suppressions, scan) load without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from binanalysis.interface import StrEnum

if TYPE_CHECKING:
    from behavior.interface import Report


class Format(StrEnum):
    """The ``--format`` choices of commands that produce a report."""

    TEXT = "text"
    JSON = "json"
    OCSF = "ocsf"
    OCSF_JSONL = "ocsf-jsonl"
    ASFF = "asff"
    HTML = "html"


# format -> (module, renderer). ASFF gets the placeholder account and region here; see
# render_asff.
_RENDERERS: dict[Format, tuple[str, str]] = {
    Format.TEXT: ("behavior.formats.text", "render_text"),
    Format.JSON: ("behavior.formats.json_format", "render_json"),
    Format.OCSF: ("behavior.formats.ocsf", "render_ocsf"),
    Format.OCSF_JSONL: ("behavior.formats.ocsf", "render_ocsf_jsonl"),
    Format.ASFF: ("behavior.formats.asff", "render_asff"),
    Format.HTML: ("behavior.formats.html", "render_html"),
}


def render(fmt: Format, report: Report) -> str:
    """``report`` rendered in ``fmt``."""
    module_name, function = _RENDERERS[fmt]
    text: str = getattr(importlib.import_module(module_name), function)(report)
    return text
