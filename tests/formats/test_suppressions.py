"""Suppressions: parsing (errors name the file and line), matching on every subject key,
and the effect of one that matches, one that does not and one expired, in text, json,
OCSF and ASFF; the CLI refuses a bad file before any window opens; the daemon applies
its configured entries with the same engine."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from behavior.daemon.config import parse_config
from behavior.formats import Format, render
from behavior.formats.asff import asff_findings
from behavior.formats.ocsf import ocsf_events
from behavior.formats.suppressions import apply_suppressions, load_suppressions, parse_suppressions
from behavior.interface import Finding, Report, UsageError
from behavior.rules import RULE_IDS
from tests.conftest import run_rba
from tests.formats.conftest import TODAY

KNOWN = frozenset(RULE_IDS)


# --- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[suppression]]\nrule = 'unused-listening-port'\nport = 80\n", "x.toml:1: "),
        ("[[suppression]]\nrule = 'unused-listening-port'\nport = 80\n", ".reason: required"),
        ("\n\n[[suppression]]\nrule='unused-listening-port'\nreason='r'\nport=0\n", "x.toml:3"),
        ("[[suppression]]\nrule='unused-listening-port'\nreason='r'\nport='80'\n", "port: must"),
        ("[[suppression]]\nrule='insecure-client-login'\nreason='r'\nremote='10.0.0/33'\n", "CIDR"),
        ("[[suppression]]\nrule='no-such-rule'\nreason='r'\n", "unknown rule id 'no-such-rule'"),
        ("[[suppression]]\nrule='unused-listening-port'\nreason='r'\nuser='x'\n", "user: unknown"),
        ("[[suppression]]\nrule='unused-listening-port'\nreason=' '\n", "reason: required"),
        ("[[suppression]]\nrule='unused-listening-port'\nreason='r'\nexpires='soon'\n", "expires"),
        ("[[suppression]]\nrule='unused-listening-port'\nreason='r'\nexe=''\n", "non-empty"),
        ("[[suppression]\nrule='x'\n", "not valid TOML"),
        ("[[rule]]\nid='x'\n", "unknown table or key 'rule'"),
        ("suppression = 3\n", "must be an array of tables"),
    ],
)
def test_malformed_entries_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_suppressions(text, name="x.toml", known_rules=KNOWN)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_the_error_names_the_line_of_the_bad_entry_not_the_first() -> None:
    good = "[[suppression]]\nrule = 'unused-listening-port'\nport = 22\nreason = 'ssh'\n\n"
    bad = "[[suppression]]\nrule = 'unused-listening-port'\nport = 70000\nreason = 'x'\n"
    with pytest.raises(UsageError, match=r"^x\.toml:6: suppression\[1\]\.port: must be"):
        parse_suppressions(good + bad, name="x.toml", known_rules=KNOWN)


def test_entries_know_where_they_were_defined_and_dates_parse_both_ways() -> None:
    text = (
        "[[suppression]]\nrule='unused-listening-port'\nport=8080\nreason='r'\n"
        "expires=2027-01-31\n\n[[suppression]]\nrule='software-without-dep'\n"
        "package='acme-app'\nreason='vendor'\nexpires='2027-02-01'\n"
    )
    first, second = parse_suppressions(text, name="s.toml", known_rules=KNOWN)
    assert (first.source, first.expires, first.match) == (
        "s.toml:1",
        dt.date(2027, 1, 31),
        (("port", 8080),),
    )
    assert (second.source, second.expires) == ("s.toml:7", dt.date(2027, 2, 1))


def test_load_suppressions_reports_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the suppressions"):
        load_suppressions(str(tmp_path / "missing.toml"))
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe[[suppression]]")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_suppressions(str(binary))


# --- matching --------------------------------------------------------------------------


def _one(report: Report, rule_id: str) -> Finding:
    return next(f for f in report.findings if f.rule_id == rule_id)


@pytest.mark.parametrize(
    ("rule", "match", "hits"),
    [
        ("unused-listening-port", "port = 8080", True),
        ("unused-listening-port", "port = 8081", False),
        ("insecure-client-login", "port = 23", True),  # the remote port of a client finding
        ("insecure-client-login", "exe = '/usr/bin/telnet'", True),
        ("insecure-client-login", "exe = '/usr/bin/telnetd'", False),
        ("insecure-client-login", "remote = '198.51.100.7'", True),
        ("insecure-client-login", "remote = '198.51.100.0/25'", True),
        ("insecure-client-login", "remote = '198.51.100.128/25'", False),
        ("insecure-client-login", "remote = '2001:db8::/32'", False),
        ("software-without-dep", "path = '/opt/*/bin/*'", True),
        ("software-without-dep", "path = '/usr/*'", False),
        ("software-without-dep", "package = 'acme-app'", True),
        ("software-without-dep", "package = 'acme'", False),
        ("software-without-dep", "exe = '/opt/app/bin/app'", True),  # the processes using it
        ("root-process-insecure-permissions", "path = '/opt/tool/*'", True),
        ("insecure-server-protocol", "port = 21\nexe = '/usr/sbin/vsftpd'", False),  # all keys
        ("insecure-server-protocol", "port = 21", True),
        ("insecure-server-protocol", "", True),  # no key: every finding of the rule
        ("unused-listening-port", "package = 'acme-app'", False),  # no such evidence
    ],
)
def test_each_subject_key_matches_only_its_subject(
    report: Report, rule: str, match: str, hits: bool
) -> None:
    text = f"[[suppression]]\nrule = '{rule}'\n{match}\nreason = 'because'\n"
    (entry,) = parse_suppressions(text, name="m.toml", known_rules=KNOWN)
    assert entry.matches(_one(report, rule)) is hits
    # and never a finding of another rule
    assert not any(entry.matches(f) for f in report.findings if f.rule_id != rule)


def test_expiry_day_still_applies_the_day_after_does_not(report: Report) -> None:
    text = "[[suppression]]\nrule='unused-listening-port'\nreason='r'\nexpires=2026-03-01\n"
    entries = parse_suppressions(text, name="e.toml")
    on_the_day = apply_suppressions(report, entries, today=dt.date(2026, 3, 1))
    after = apply_suppressions(report, entries, today=dt.date(2026, 3, 2))
    assert len(on_the_day.suppressed) == 1 and not on_the_day.expired_suppressions
    assert not after.suppressed and after.expired_suppressions[0].findings == 1
    assert len(after.findings) == len(report.findings)


# --- effects in every format: match, no match, expired ----------------------------------


def test_model_moves_only_the_matched_finding(report: Report, suppressed_report: Report) -> None:
    rules = {f.rule_id for f in suppressed_report.findings}
    assert "unused-listening-port" not in rules
    assert {"insecure-client-login", "insecure-client-general"} <= rules  # no match, expired
    assert len(suppressed_report.findings) + len(suppressed_report.suppressed) == len(
        report.findings
    )
    (item,) = suppressed_report.suppressed
    assert item.finding == _one(report, "unused-listening-port")
    assert item.suppression.reason.startswith("health-check endpoint")
    (expired,) = suppressed_report.expired_suppressions
    assert (expired.suppression.rule_id, expired.findings) == ("insecure-client-general", 1)
    assert expired.suppression.source == "rba-suppressions.toml:13"


def test_text_lists_the_suppressed_finding_with_its_reason(suppressed_report: Report) -> None:
    text = render(Format.TEXT, suppressed_report)
    flat = " ".join(text.split())
    head, _, suppressed = text.partition("SUPPRESSED (1)")
    assert "Unused listening TCP ports" not in head and "Unused listening TCP ports" in suppressed
    assert "suppressed (rba-suppressions.toml:2, until 2026-12-31): health-check endpoint" in flat
    assert "Insecure client protocols (login)" in head  # did not match
    assert "Insecure client protocols (general)" in head  # expired: reported again
    assert "EXPIRED SUPPRESSIONS (1)" in text
    assert "insecure-client-general (remote=203.0.113.0/24) expired 2026-01-31" in flat
    assert text.splitlines()[-1].endswith("1 Informational; 1 suppressed")
    assert "lab routers" not in text  # the entry that matched nothing is not a finding's note


def test_json_adds_suppressed_and_expired_keys(suppressed_report: Report) -> None:
    data = json.loads(render(Format.JSON, suppressed_report))
    assert [f["rule_id"] for f in data["findings"]].count("unused-listening-port") == 0
    (item,) = data["suppressed"]
    assert item["rule_id"] == "unused-listening-port" and item["evidence"]["port"] == 8080
    assert item["suppression"] == {
        "rule_id": "unused-listening-port",
        "match": {"port": 8080},
        "reason": "health-check endpoint, probed only by the load balancer",
        "expires": "2026-12-31",
        "source": "rba-suppressions.toml:2",
    }
    (expired,) = data["expired_suppressions"]
    assert expired["findings"] == 1 and expired["expires"] == "2026-01-31"
    login = next(f for f in data["findings"] if f["rule_id"] == "insecure-client-login")
    assert "suppression" not in login


def test_json_of_an_unsuppressed_report_keeps_the_contract(report: Report) -> None:
    data = json.loads(render(Format.JSON, report))
    assert list(data)[:3] == ["schema_version", "run", "findings"]
    assert data["suppressed"] == [] and data["expired_suppressions"] == []


def test_ocsf_marks_suppressed_and_expired(
    suppressed_report: Report, ocsf_errors: Callable[[dict[str, Any]], list[str]]
) -> None:
    events = ocsf_events(suppressed_report)
    assert len(events) == 7
    by_rule = {e["finding_info"]["analytic"]["uid"]: e for e in events}
    port = by_rule["unused-listening-port"]
    assert (port["status_id"], port["status"]) == (3, "Suppressed")
    assert "health-check endpoint" in port["comment"]
    assert port["unmapped"]["rba"]["suppression"]["source"] == "rba-suppressions.toml:2"
    login = by_rule["insecure-client-login"]
    assert login["status_id"] == 1 and "comment" not in login
    general = by_rule["insecure-client-general"]
    assert general["status_id"] == 1
    assert "expired on 2026-01-31" in general["comment"]
    assert events[-1] is port  # suppressed events come last
    for event in events:
        assert ocsf_errors(event) == []


def test_asff_marks_suppressed_and_expired(suppressed_report: Report) -> None:
    findings = asff_findings(suppressed_report)
    assert len(findings) == 7
    by_rule = {f["GeneratorId"].removeprefix("rba/"): f for f in findings}
    port = by_rule["unused-listening-port"]
    assert port["Workflow"]["Status"] == "SUPPRESSED"
    assert "health-check endpoint" in port["Note"]["Text"]
    assert port["ProductFields"]["rba/suppression/reason"].startswith("health-check")
    login = by_rule["insecure-client-login"]
    assert login["Workflow"]["Status"] == "NEW" and "Note" not in login
    general = by_rule["insecure-client-general"]
    assert general["Workflow"]["Status"] == "NEW"
    assert "expired on 2026-01-31" in general["Note"]["Text"]


def test_html_shows_the_reason_and_the_expired_entry(suppressed_report: Report) -> None:
    page = render(Format.HTML, suppressed_report)
    _, _, tail = page.partition("<h2>Suppressed (1)</h2>")
    assert "Unused listening TCP ports" in tail and "health-check endpoint" in tail
    assert "Expired suppressions (1)" in tail and "the package mirror had no TLS" in tail


# --- where suppressions come from: the CLI and the daemon --------------------------------


def test_cli_refuses_a_bad_suppression_file_before_the_window(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[suppression]]\nrule = 'unused-listening-port'\nport = 8080\n")
    start = time.monotonic()
    result = run_rba("assess", "--duration", "1h", "--suppressions", str(bad), "--probes", "poll")
    assert result.returncode == 2
    assert f"{bad}:1: suppression[0].reason: required" in result.stderr
    assert time.monotonic() - start < 30  # refused up front, not after the hour
    assert "window open" not in result.stderr


def test_daemon_config_entries_go_through_the_same_engine(report: Report) -> None:
    config = parse_config(
        {
            "suppression": [
                {"rule": "unused-listening-port", "port": 8080, "reason": "expected"},
                {"rule": "insecure-server-protocol", "reason": "old", "expires": "2020-01-01"},
            ]
        },
        known_rules=KNOWN,
    )
    result = apply_suppressions(report, config.suppressions)  # what the daemon calls
    assert [s.finding.rule_id for s in result.suppressed] == ["unused-listening-port"]
    assert result.suppressed[0].suppression.source == "suppression[0]"
    assert [e.suppression.rule_id for e in result.expired_suppressions] == [
        "insecure-server-protocol"
    ]
    assert len(result.findings) == len(report.findings) - 1


def test_applying_twice_keeps_earlier_suppressions(report: Report) -> None:
    text = "[[suppression]]\nrule='unused-listening-port'\nreason='r'\n"
    once = apply_suppressions(report, parse_suppressions(text, name="a"), today=TODAY)
    again = apply_suppressions(once, [], today=TODAY)
    assert again.suppressed == once.suppressed and again.findings == once.findings
    assert replace(again, timeline=None) == replace(once, timeline=None)


def test_the_documented_example_is_valid() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    entries = parse_suppressions(example, name="ops.toml", known_rules=KNOWN)
    assert [e.rule for e in entries] == ["unused-listening-port", "software-without-relro"]
