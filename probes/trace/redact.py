"""Command-line redaction for traces that must be shared (``--redact-cmdline``)."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable


def cmdline_redactor(key: bytes | None = None) -> Callable[[str], str]:
    """A function that keeps a command line's program (first word) and replaces each
    argument with ``#`` and 12 hex digits of an HMAC-SHA256 under ``key``.

    The key is random per trace and never stored, so equal arguments stay recognisably
    equal within one trace while short secrets cannot be recovered by hashing guesses."""
    secret = key if key is not None else os.urandom(32)

    def redact(cmdline: str) -> str:
        words = cmdline.split(" ")
        return " ".join([words[0], *(_digest(secret, w) for w in words[1:])])

    return redact


def _digest(secret: bytes, word: str) -> str:
    mac = hmac.new(secret, word.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "#" + mac.hexdigest()[:12]
