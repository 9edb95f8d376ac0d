"""The HTML report: self-contained (nothing to fetch), complete, and rendered for real in
headless Chromium with screenshots at 1280 and 390 px, no console error and no request
but the file, and printed to PDF. ``RBA_HTML_SHOTS=DIR`` keeps the screenshots and PDFs
in DIR, to look at them."""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path

import pytest

from behavior.formats import Format, render
from behavior.formats.svg import tick_step, ticks
from behavior.interface import Report, Severity
from tests.formats.busy import busy_window
from tests.formats.chromium import CHROMIUM, open_page, print_to_pdf

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
    summary = page[page.index("What to do first") : page.index("<h2>Findings</h2>")]
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
    assert "<tr><th>address</th><td>198.51.100.7</td></tr>" in page  # a small table
    assert ".0." not in " ".join(re.findall(r'<td class="k">([^<]*)</td>', page))
    assert '<td class="k">lost events</td><td>0</td>' in page
    assert "Coverage" in page and "<code>insecure-login-accepted</code>" in page


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


def _keep(path: Path) -> None:
    """Copy a screenshot or PDF to $RBA_HTML_SHOTS, when set, for a person to look at."""
    keep = os.environ.get("RBA_HTML_SHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def test_host_header_gives_os_kernel_rba_and_machine_id(report: Report) -> None:
    page = render(Format.HTML, busy_window(report))
    header = page[page.index("<h1>") : page.index("What to do first")]
    for key, value in (
        ("OS", "Debian GNU/Linux 12"),
        ("kernel", "6.1.0-28-amd64"),
        ("rba", report.run.rba_version),
        ("machine id", "0123456789abcdef0123456789abcdef"),
    ):
        assert f'<td class="k">{key}</td><td><code>{value}</code></td>' in header


def test_summary_lines_name_the_subject_and_low_starts_collapsed(
    suppressed_report: Report,
) -> None:
    page = render(Format.HTML, suppressed_report)
    blocks = re.findall(r'<details class="finding (\w+)"( open)?><summary>(.*?)</summary>', page)
    assert len(blocks) == 7
    opened = {css: bool(flag) for css, flag, _ in blocks if css != "supp"}
    assert opened == {"high": True, "medium": True, "low": False, "info": False}
    subjects = [re.search(r"<b>(.*?)</b>", line) for _, _, line in blocks]
    assert all(subjects)
    assert "/usr/bin/telnet to 198.51.100.7:23/tcp" in [m.group(1) for m in subjects if m]
    assert "port 8080/tcp on 0.0.0.0 (python3)" in [m.group(1) for m in subjects if m]


def test_a_rule_with_many_findings_lists_them_in_one_collapsed_block(report: Report) -> None:
    page = render(Format.HTML, busy_window(report))
    assert page.count('<details class="many">') == 2  # 48 stack cookies, 10 plain HTTP
    assert page.count('<details class="finding high" open>') == 2
    assert page.count('<details class="finding medium" open>') == 4  # the 4 DEP findings
    assert page.count('<details class="finding info">') == 3  # few, but collapsed


def test_plot_marks_take_their_findings_severity(suppressed_report: Report) -> None:
    page = render(Format.HTML, suppressed_report)
    # vsftpd's port 21 is named by an Informational finding; 8080's finding is suppressed.
    assert re.search(r'<rect class="bar sev-info"[^>]*><title>0\.0\.0\.0:21 ', page)
    assert re.search(r'<rect class="bar"[^>]*><title>0\.0\.0\.0:8080 ', page)
    circles = re.findall(r'<circle class="exec sev-(\w+)"[^>]*><title>(\S+) pid', page)
    assert set(circles) == {
        ("high", "/opt/tool/bin/tool"),  # the root process's module
        ("medium", "/opt/app/bin/app"),  # without DEP and stack cookies
        ("medium", "/usr/bin/telnet"),  # a cleartext login client
    }


@pytest.mark.parametrize(
    ("window_s", "step", "first_ticks"),
    [
        (20, 5, [0, 5, 10, 15, 20]),
        (21, 5, [0, 5, 10, 15, 20]),
        (60, 10, [0, 10, 20, 30, 40, 50, 60]),
        (0.5, 0.1, [0, 0.1, 0.2, 0.3, 0.4, 0.5]),
        (900, 300, [0, 300, 600, 900]),
        (7 * 3600, 7200, [0, 7200, 14400, 21600]),
    ],
)
def test_ticks_fall_on_round_numbers(
    window_s: float, step: float, first_ticks: list[float]
) -> None:
    assert tick_step(window_s) == step
    assert ticks(window_s) == first_ticks


def test_print_css_keeps_findings_whole() -> None:
    from behavior.formats.html import STYLE

    print_css = STYLE[STYLE.index("@media print") :]
    assert ".finding" in print_css.split("{break-inside:avoid}")[0]


@needs_chromium
@pytest.mark.parametrize("width", [1280, 390])
def test_renders_in_headless_chromium(
    suppressed_report: Report, tmp_path: Path, width: int
) -> None:
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
            "document.querySelectorAll('details.finding[open]').length",
            "document.documentElement.scrollWidth",
            "getComputedStyle(document.querySelector('circle.sev-high')).fill",
        ),
        width=width,
    )
    shot = tmp_path / f"report-{width}.png"
    shot.write_bytes(result.screenshot)
    _keep(shot)
    assert result.errors == []
    assert result.requests == [html.as_uri()]
    shot_width, height = _png_size(result.screenshot)
    assert shot_width <= width and height > 2000  # the whole page, findings and timeline
    assert len(result.screenshot) > 50_000  # a blank page compresses to a few kB
    values = list(result.values.values())
    if width == 1280:
        assert values[0] == [720, 720, 720]  # three charts at their natural width
    else:  # scaled down to the phone's width, nothing sticking out
        assert all(300 <= w <= width - 16 for w in values[0]), values[0]
    assert values[1] >= 3 + 23  # legend squares + one bar per non-empty bucket and series
    assert values[2] == 3 and values[3] == 4  # vsftpd's accepts, four flagged execs
    assert values[4] == 7  # 6 findings + 1 suppressed
    assert values[5] == 4  # High and Medium open; Low, Informational, suppressed closed
    assert values[6] <= width  # no horizontal scrolling, on a phone either
    assert values[7] == "rgb(180, 35, 24)"  # the High finding's red


@needs_chromium
def test_a_20s_window_prints_in_a_few_pages(report: Report, tmp_path: Path) -> None:
    busy = busy_window(report)
    assert busy.run.duration_s == 20 and len(busy.findings) == 67
    html = tmp_path / "busy.html"
    html.write_text(render(Format.HTML, busy), encoding="utf-8")
    pdf = tmp_path / "busy-20s.pdf"
    pages = print_to_pdf(html, tmp_path / "profile", pdf)
    _keep(pdf)
    assert 2 <= pages <= 5, pages  # 67 findings; the issue measured 37 pages for 21 s
    severities = {f.severity for f in busy.findings}
    assert severities == set(Severity)


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
