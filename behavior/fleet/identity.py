"""TEMPORARY: a finding's fingerprint for reports that do not carry one yet.

Issue 17 gives every JSON finding a ``fingerprint`` (host identity, rule, normalised
subject); the lake reads that field. Until every report has it, :func:`provisional_fingerprint`
stands in, built the same way from what this layer can see (hostname, rule id and the
lake's one-line subject, which holds no pids, times or counts). It is used only when a
finding has no ``fingerprint``, and goes away once reports always carry one.
"""

from __future__ import annotations

import hashlib


def provisional_fingerprint(host: str, rule_id: str, subject: str) -> str:
    """A stable stand-in fingerprint: ``rba1p:`` and a digest of host, rule and subject."""
    digest = hashlib.sha256("\0".join((host, rule_id, subject)).encode()).hexdigest()[:24]
    return f"rba1p:{digest}"
