"""The one sanitizer for text on its way to a terminal.

Strings from the observed system (a process's comm, command line and exe path, file
names, a trace's header) are chosen by whoever runs those processes or names those
files, and rba shows them to root. Raw ESC, OSC or BEL in them would let an unprivileged
user drive root's terminal (retitle it, rewrite lines, on some terminals answer back).

Every C0 control (U+0000..U+001F), DEL and every C1 control (U+0080..U+009F), and every
lone surrogate (an undecodable byte kept from /proc), is written as ``\\u00XX`` (or
``\\udcXX``): visible, and in JSON the very escape that decodes back to the same
character, so a JSON document passed through :func:`for_terminal` stays lossless.

- :func:`for_terminal` keeps newlines and tabs: for whole documents (a report, ``trace
  info``, ``scan`` text, a line of ``events``);
- :func:`visible` escapes them too: for one value (a notice, an error message), so an
  observed newline cannot forge a line of its own.
"""

from __future__ import annotations

import re

# C0 but tab and newline, DEL, C1, and lone surrogates.
_DOCUMENT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_VALUE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    return "".join(f"\\u{ord(c):04x}" if _VALUE.match(c) else c for c in match.group())


# The colours rba's own renderers paint with (``rba scan`` and text reports on a terminal).
COLORS = frozenset({"\x1b[0m", "\x1b[2m", "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[36m"})
_PAINTED = re.compile("\x1b\\[3?[0-6]m|[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape_but_colors(match: re.Match[str]) -> str:
    found = match.group()
    return found if found in COLORS else _escape(match)


def for_terminal(text: str, *, colors: bool = False) -> str:
    """``text`` with every control character but newline and tab escaped visibly; with
    ``colors``, the four colour codes of :data:`COLORS` are kept as they are."""
    if colors:
        return _PAINTED.sub(_escape_but_colors, text)
    return _DOCUMENT.sub(_escape, text)


def visible(text: str) -> str:
    """``text`` with every control character, newlines and tabs too, escaped visibly."""
    return _VALUE.sub(_escape, text)
