"""What the OCSF, ASFF and HTML formats share: the product's name and version, stable
finding ids, epoch times, flattened evidence, and every finding of a report with its
status (active, or suppressed with the entry that matched, or active despite an expired
entry)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from behavior.interface import Finding, Report, SuppressionInfo

PRODUCT_NAME = "rba"
PRODUCT_VENDOR = "rba project"

# The four rules that judge files rather than behaviour (docs/rules.md, "File rules").
BINARY_RULES = frozenset(
    {
        "software-without-dep",
        "software-without-stack-cookies",
        "software-without-aslr",
        "software-without-relro",
    }
)


def product_version() -> str:
    """rba's version (behavior.__version__: also right in the .deb, which has no metadata)."""
    from behavior import __version__

    return __version__


def finding_uid(report: Report, finding: Finding) -> str:
    """The finding's identity across runs: its fingerprint. A finding made without a
    subject (by hand, or read from an old report) gets a digest of host, rule and
    evidence instead, stable as long as the evidence is."""
    if finding.fingerprint:
        return finding.fingerprint
    subject = json.dumps([report.run.host, finding.rule_id, finding.evidence], sort_keys=True)
    return hashlib.sha256(subject.encode()).hexdigest()[:32]


def epoch_ms(iso: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 time ('...Z'); 0 when empty or bad."""
    try:
        moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp() * 1000)


def flatten(evidence: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Evidence as flat ``{"process.exe": "/usr/bin/telnet", "pids": "4, 5"}`` strings;
    empty strings (an exe nobody could read) are left out, as the text format does."""
    flat: dict[str, str] = {}
    for key, value in evidence.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        elif isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                flat |= flatten(item if isinstance(item, Mapping) else {"": item}, f"{name}.{i}.")
        elif isinstance(value, list):
            flat[name] = ", ".join(_text(v) for v in value)
        elif value != "":
            flat[name] = _text(value)
    return {k.rstrip("."): v for k, v in flat.items()}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class Entry:
    """A finding as the ecosystem formats render it."""

    finding: Finding
    suppression: SuppressionInfo | None  # set when suppressed
    expired: tuple[SuppressionInfo, ...]  # expired entries that would have matched it

    @property
    def suppressed(self) -> bool:
        """True when a suppression applies to this finding."""
        return self.suppression is not None

    def note(self) -> str:
        """The suppression or expiry, in one sentence ("" when there is none)."""
        if self.suppression is not None:
            info = self.suppression
            until = f" until {info.expires}" if info.expires else ""
            return f"Suppressed{until} by {info.source}: {info.reason}"
        return " ".join(
            f"Suppression {e.source} expired on {e.expires} and no longer applies "
            f"(it said: {e.reason})."
            for e in self.expired
        )


def entries(report: Report) -> Iterator[Entry]:
    """Every finding of the report: the active ones, then the suppressed ones."""
    for finding in report.findings:
        expired = tuple(e.suppression for e in report.expired_suppressions if finding in e.matched)
        yield Entry(finding, None, expired)
    for item in report.suppressed:
        yield Entry(item.finding, item.suppression, ())
