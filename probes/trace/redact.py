"""Command-line redaction for traces that must be shared (``--redact-cmdline``)."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence


class CmdlineRedactor:
    """Keeps a command line's program (first word) and replaces each argument with ``#``
    and 12 hex digits of an HMAC-SHA256 under a key.

    The key is random per trace and never stored, so equal arguments stay recognisably
    equal within one trace while short secrets cannot be recovered by hashing guesses."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else os.urandom(32)

    def __call__(self, cmdline: str) -> str:
        """Redact a space-joined command line (the form events carry)."""
        return " ".join(self.argv(cmdline.split(" ")))

    def argv(self, args: Sequence[str]) -> list[str]:
        """Redact an argument vector: the program stays, each argument is hashed."""
        return [*args[:1], *(self._digest(a) for a in args[1:])]

    def _digest(self, word: str) -> str:
        mac = hmac.new(self._key, word.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return "#" + mac.hexdigest()[:12]
