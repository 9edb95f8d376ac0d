"""unused-listening-port: a TCP port listened during the window but accepted nothing."""

from __future__ import annotations

from behavior.interface import Severity
from behavior.rules.interface import Rule, RuleInfo, RuleInput, RuleResult, finding
from behavior.rules.listener_common import (
    host_listeners_by_port,
    listener_sources,
    listener_subject,
)

INFO = RuleInfo(
    id="unused-listening-port",
    title="Unused listening TCP ports",
    severity=Severity.INFORMATIONAL,
    description=(
        "A TCP port was listening during the assessment window, but no inbound connection "
        "to it completed during the window."
    ),
    recommendation="Disable the service, or restrict it by firewall or bind address.",
)

LOWER_CONFIDENCE = (
    "lower confidence: polling only, connections shorter than the poll interval can be missed"
)


def evaluate(inp: RuleInput) -> RuleResult:
    """Ports that listened for at least half the window and accepted no connection."""
    window_ns = inp.obs.window_ns
    findings = []
    for listeners in host_listeners_by_port(inp).values():
        listening_ns = max(s.listening_ns for s in listeners)
        if window_ns <= 0 or 2 * listening_ns < window_ns:
            continue  # listened for less than half the window: not judged
        if any(s.accepted for s in listeners):
            continue
        details = {
            "sources": listener_sources(listeners),
            "listening_s": round(listening_ns / 1e9, 3),
            "window_s": round(window_ns / 1e9, 3),
            "accepted": 0,
            "confidence": "lower" if inp.polling_only else "normal",
        }
        start = min(s.started_ns for s in listeners)
        subject = listener_subject(inp, listeners)
        findings.append(
            finding(INFO, subject, details, count=1, first_ns=start, last_ns=start + listening_ns)
        )
    return RuleResult(tuple(findings), LOWER_CONFIDENCE if inp.polling_only else "")


RULE = Rule(INFO, evaluate)
