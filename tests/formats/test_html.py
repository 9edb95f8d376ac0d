"""The HTML report: self-contained (nothing to fetch), complete, and rendered for real in
headless Chromium with a screenshot, no console error and no request but the file."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from behavior.formats import Format, render
from behavior.interface import Report
from tests.formats.chromium import CHROMIUM, open_page

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (scripts/install-test.sh installs it)"
)


def test_self_contained_nothing_to_fetch(suppressed_report: Report) -> None:
    page = render(Format.HTML, suppressed_report)
    assert "default-src 'none'" in page  # the browser may not fetch anything
    assert not re.search(r"<(script|link|iframe|img|object|embed)\b", page, re.I)
    assert not re.search(r"\b(src|href)\s*=", page, re.I)
    assert "url(" not in page and "@import" not in page
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace name, not a fetch


def test_page_holds_summary_findings_timeline_and_run_facts(suppressed_report: Report) -> None:
    page = render(Format.HTML, suppressed_report)
    summary = page[page.index("Summary by severity") : page.index("Timeline of the window")]
    assert re.findall(r"<b>(\d+)</b>(\w+)", summary) == [
        ("1", "High"),
        ("3", "Medium"),
        ("1", "Low"),
        ("1", "Informational"),
        ("1", "Suppressed"),
    ]
    for finding in suppressed_report.findings:
        assert f"<code>{finding.rule_id}</code>" in page
    assert page.count("<svg ") == 3
    assert "TCP out (connects) (17)" in page and "UDP out (sends) (5)" in page
    assert "accepted at +12s" in page and "accepted at +40s" in page
    assert "/opt/app/bin/app pid 11 at +44s" in page
    assert '<td class="k">remote.address</td><td class="v">198.51.100.7</td>' in page
    assert '<td class="k">lost events</td><td>0</td>' in page
    assert "Run facts" in page and "<code>insecure-login-accepted</code>" in page


def test_text_is_escaped(report: Report) -> None:
    finding = report.findings[0]
    hostile = finding.__class__(
        **{**finding.__dict__, "title": "<script>alert(1)</script>", "evidence": {"x": "<b>"}}
    )
    page = render(Format.HTML, Report(run=report.run, findings=(hostile,)))
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;" in page


def test_no_timeline_is_stated(report: Report) -> None:
    page = render(Format.HTML, Report(run=report.run, findings=()))
    assert "This report carries no timeline." in page and "No findings." in page


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


@needs_chromium
def test_renders_in_headless_chromium(suppressed_report: Report, tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    html.write_text(render(Format.HTML, suppressed_report), encoding="utf-8")
    result = open_page(
        html,
        tmp_path / "profile",
        (
            "[...document.querySelectorAll('svg')].map(s => Math.round(s.getBoundingClientRect()"
            ".width))",
            "document.querySelectorAll('svg rect[fill]').length",
            "document.querySelectorAll('svg line.accept').length",
            "document.querySelectorAll('svg circle.exec').length",
            "document.querySelectorAll('details.finding').length",
        ),
    )
    shot = tmp_path / "report.png"
    shot.write_bytes(result.screenshot)
    assert result.errors == []
    assert result.requests == [html.as_uri()]
    width, height = _png_size(result.screenshot)
    assert width >= 1000 and height > 2000  # the whole page, timeline and findings
    assert len(result.screenshot) > 50_000  # a blank page compresses to a few kB
    values = list(result.values.values())
    assert values[0] == [960, 960, 960]  # three charts laid out at full width
    assert values[1] >= 3 + 23  # legend squares + one bar per non-empty bucket and series
    assert values[2] == 3 and values[3] == 4  # vsftpd's accepts, four flagged execs
    assert values[4] == 7  # 6 findings + 1 suppressed


@needs_chromium
def test_the_harness_sees_blocked_fetches_and_console_errors(tmp_path: Path) -> None:
    """The checks above can fail: a page that tries a fetch and logs an error is caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
        "<img src='http://203.0.113.1/x.png'><script>console.error('boom')</script></body></html>"
    )
    result = open_page(page, tmp_path / "profile")
    assert "http://203.0.113.1/x.png" in result.requests
    assert any("Content Security Policy" in e for e in result.errors)
    assert any("boom" in e for e in result.errors)
