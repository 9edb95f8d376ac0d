"""What to do first: the summary computed from the findings' subjects, and every format
leading with it (OCSF and ASFF carry the fields it groups by; docs/formats.md)."""

from __future__ import annotations

import json
from dataclasses import replace

from behavior.formats import Format, render
from behavior.formats.summary import UNKNOWN_OWNER, Owner, summarize
from behavior.formats.text import render_text
from behavior.interface import Finding, Report, Severity
from behavior.subjects import (
    ConnectionSubject,
    Endpoint,
    FileSubject,
    ListenerSubject,
    ProcessRef,
    Subject,
    evidence_of,
)

STDLIB = "libpython3.11-stdlib"
DYNLOAD = "/usr/lib/python3.11/lib-dynload"


def _finding(rule_id: str, severity: Severity, subject: Subject, title: str = "") -> Finding:
    return Finding(
        rule_id=rule_id,
        title=title or rule_id.replace("-", " ").capitalize(),
        severity=severity,
        description="what it is",
        recommendation="what to do",
        evidence=evidence_of(subject, {"reason": "seen"}),
        count=1,
        first_seen="2026-01-01T00:00:00.000Z",
        last_seen="2026-01-01T00:00:01.000Z",
        subject=subject,
    )


def _file(path: str, package: str | None) -> FileSubject:
    return FileSubject(path, package, "elf", (ProcessRef(7, "/usr/bin/python3.11"),), 1)


def _client(exe: str, address: str, port: int) -> ConnectionSubject:
    return ConnectionSubject(ProcessRef(9, exe, comm="x"), (9,), Endpoint(address, port), "tcp")


def busy_report(base: Report) -> Report:
    """A busy host: 9 stdlib modules and 2 unpackaged files without stack cookies, one of
    them also without DEP, 3 plain-HTTP endpoints of one program, a telnet login (High
    here, to have one), and a listener whose owner nobody saw."""
    cookies = "software-without-stack-cookies"
    findings = [
        _finding(cookies, Severity.MEDIUM, _file(f"{DYNLOAD}/_m{i}.cpython-311.so", STDLIB))
        for i in range(9)
    ]
    findings += [
        _finding(cookies, Severity.MEDIUM, _file("/opt/x/bin/x", None)),
        _finding(cookies, Severity.MEDIUM, _file("/opt/y/lib/y.so", None)),
        _finding("software-without-dep", Severity.MEDIUM, _file("/opt/x/bin/x", None)),
    ]
    findings += [
        _finding("insecure-client-general", Severity.LOW, _client("/usr/bin/wget", a, 80))
        for a in ("203.0.113.1", "203.0.113.2", "203.0.113.3")
    ]
    findings.append(
        _finding(
            "insecure-client-login",
            Severity.HIGH,
            _client("/usr/bin/telnet", "198.51.100.7", 23),
            "Insecure client protocols (login)",
        )
    )
    nobody = ProcessRef(0, user="root", uid=0)
    findings.append(
        _finding(
            "unused-listening-port",
            Severity.INFORMATIONAL,
            ListenerSubject(9090, ("0.0.0.0",), False, nobody),
        )
    )
    return Report(run=base.run, findings=tuple(findings))


def test_high_by_name_the_rest_by_rule_and_owner(report: Report) -> None:
    summary = summarize(busy_report(report))
    assert summary.total == 17
    assert dict(summary.counts) == {
        Severity.HIGH: 1,
        Severity.MEDIUM: 12,
        Severity.LOW: 3,
        Severity.INFORMATIONAL: 1,
    }
    (high,) = summary.high
    assert high.subject == "/usr/bin/telnet to 198.51.100.7:23/tcp"
    groups = {g.rule_id: g for g in summary.groups}
    assert "insecure-client-login" not in groups  # High findings are named, not grouped
    cookies = groups["software-without-stack-cookies"]
    assert cookies.count == 11
    assert [(o.owner, o.count) for o in cookies.owners] == [
        (Owner("package", STDLIB), 9),
        (Owner("unpackaged", "/opt/x/bin"), 1),  # files no package owns: by directory
        (Owner("unpackaged", "/opt/y/lib"), 1),
    ]
    assert (
        cookies.owners[0]
        .text(cookies.rule_id)
        .startswith(f"{STDLIB}: 9 files without stack cookies ({DYNLOAD}/_m0.cpython-311.so, ")
    )
    (wget,) = groups["insecure-client-general"].owners
    assert wget.text("insecure-client-general") == (
        "/usr/bin/wget: 3 cleartext endpoints (203.0.113.1:80/tcp, 203.0.113.2:80/tcp, "
        "203.0.113.3:80/tcp)"
    )
    (listener,) = groups["unused-listening-port"].owners
    assert listener.owner == Owner("program", UNKNOWN_OWNER)
    # Most severe rules first, then the larger groups.
    assert [g.severity for g in summary.groups] == sorted(
        (g.severity for g in summary.groups), key=lambda s: -s.rank
    )


def test_fix_first_is_a_greedy_cover_of_the_most_findings(report: Report) -> None:
    fix = summarize(busy_report(report)).fix_first
    assert [(x.owner, x.count) for x in fix] == [
        (Owner("package", STDLIB), 9),
        (Owner("program", "/usr/bin/wget"), 3),
        (Owner("unpackaged", "/opt/x/bin"), 2),  # stack cookies and DEP: one rebuild
    ]
    assert fix[2].rule_ids == ("software-without-stack-cookies", "software-without-dep")
    assert fix[1].severity is Severity.LOW


def test_suppressed_findings_are_counted_apart(suppressed_report: Report) -> None:
    summary = summarize(suppressed_report)
    assert summary.total == 6 and summary.suppressed == 1
    rules = {g.rule_id for g in summary.groups}
    assert "unused-listening-port" not in rules  # the suppressed one


def test_text_leads_with_the_summary_and_ends_with_the_coverage(report: Report) -> None:
    text = render(Format.TEXT, busy_report(report))
    lines = text.splitlines()
    assert lines[0].startswith("rba assessment of testhost, run ")  # which host, then:
    assert lines[2].startswith("WHAT TO DO FIRST: 17 findings (1 High, 12 Medium, 3 Low")
    flat = " ".join(text.split())
    assert "High: Insecure client protocols (login): /usr/bin/telnet to 198.51.100.7:23/tcp" in flat
    assert f"1. package {STDLIB}: clears 9 findings (software-without-stack-cookies)" in flat
    assert f"{STDLIB}: 9 files without stack cookies" in flat
    coverage = lines.index("COVERAGE")
    assert lines.index("HIGH (1)") < coverage
    assert lines[coverage + 1].startswith("window: ")
    assert lines[-1].startswith("17 findings: 1 High, 12 Medium")


def test_unknown_owner_says_unknown_not_pid_0_root(report: Report) -> None:
    busy = busy_report(report)
    text = render(Format.TEXT, busy)
    assert "pid=0" not in text and f"process: {UNKNOWN_OWNER}" in text
    assert f"port 9090/tcp on 0.0.0.0 ({UNKNOWN_OWNER})" in render(Format.HTML, busy)
    # The JSON keeps the evidence as observed: the summary names the owner unknown.
    data = json.loads(render(Format.JSON, busy))
    (listener,) = [g for g in data["summary"]["groups"] if g["rule_id"] == "unused-listening-port"]
    assert listener["owners"][0]["name"] == UNKNOWN_OWNER


def test_json_adds_a_summary_object_and_keeps_every_other_key(report: Report) -> None:
    data = json.loads(render(Format.JSON, busy_report(report)))
    assert list(data)[:3] == ["schema_version", "run", "findings"]
    summary = data["summary"]
    assert summary["total"] == 17 and summary["by_severity"]["Medium"] == 12
    assert summary["high"][0]["subject"] == "/usr/bin/telnet to 198.51.100.7:23/tcp"
    assert summary["fix_first"][0] == {
        "kind": "package",
        "name": STDLIB,
        "findings": 9,
        "rule_ids": ["software-without-stack-cookies"],
        "severity": "Medium",
    }
    cookies = next(g for g in summary["groups"] if g["rule_id"].endswith("stack-cookies"))
    assert cookies["owners"][0]["text"].startswith(f"{STDLIB}: 9 files without stack cookies")


def test_html_leads_with_the_summary(report: Report) -> None:
    page = render(Format.HTML, busy_report(report))
    first, findings = page.index("What to do first"), page.index("<h2>Findings</h2>")
    assert first < findings < page.index("Timeline of the window") < page.index("Coverage")
    summary = page[first:findings]
    assert "High findings" in summary and "/usr/bin/telnet to 198.51.100.7:23/tcp" in summary
    assert f"package <code>{STDLIB}</code>: clears 9 findings" in summary
    assert f"<code>{STDLIB}: 9 files without stack cookies" in summary


def test_ocsf_and_asff_carry_what_the_summary_groups_by(report: Report) -> None:
    """Machine formats have no summary object (docs/formats.md): each finding names its
    package or program, so a consumer groups them the same way."""
    busy = busy_report(report)
    events = json.loads(render(Format.OCSF, busy))
    packages = [
        p["name"]
        for e in events
        for v in e.get("vulnerabilities", ())
        for p in v.get("affected_packages", ())
    ]
    assert packages.count(STDLIB) == 9
    asff = json.loads(render(Format.ASFF, busy))
    assert sum(f["ProductFields"].get("rba/evidence/package") == STDLIB for f in asff) == 9
    assert len(events) == len(asff) == len(busy.findings)


def test_colour_follows_severity_only_when_asked(report: Report) -> None:
    busy = busy_report(report)
    plain = render_text(busy)
    painted = render_text(busy, color=True)
    assert "\x1b[" not in plain
    assert "\x1b[31mHIGH (1)\x1b[0m" in painted and "\x1b[33mMEDIUM (12)\x1b[0m" in painted
    assert "\x1b[36mLOW (3)\x1b[0m" in painted
    assert "\x1b[2mINFORMATIONAL (1)\x1b[0m" in painted
    stripped = painted
    for code in ("\x1b[31m", "\x1b[33m", "\x1b[36m", "\x1b[2m", "\x1b[0m"):
        stripped = stripped.replace(code, "")
    assert stripped.splitlines()[2] == plain.splitlines()[2]


def test_the_terminal_sanitizer_keeps_the_report_colours_and_nothing_else(
    report: Report,
) -> None:
    from behavior.formats.terminal import for_terminal

    hostile = replace(report.findings[0], title="evil \x1b[2J\x1b]0;owned\x07 title")
    painted = render_text(replace(report, findings=(hostile,)), color=True)
    shown = for_terminal(painted, colors=True)
    assert "\x1b[31mHIGH (1)\x1b[0m" in shown
    assert "\x1b[2J" not in shown and "\x1b]0" not in shown and "\\u001b[2J" in shown
