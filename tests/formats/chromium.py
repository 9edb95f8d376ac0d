"""A real headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4),
so no port is opened and no driver package is needed.

:func:`open_page` loads a file, waits for the load event, and returns what a person
would check: a full-page screenshot, the console messages and errors, the URLs the page
requested, and the values of a few JavaScript expressions evaluated in the page.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-pipe",
)
TIMEOUT_S = 30.0


@dataclass
class PageResult:
    """What the page did while it loaded."""

    screenshot: bytes
    console: list[dict[str, Any]] = field(default_factory=list)  # Runtime.consoleAPICalled
    exceptions: list[dict[str, Any]] = field(default_factory=list)  # Runtime.exceptionThrown
    log_entries: list[dict[str, Any]] = field(default_factory=list)  # Log.entryAdded
    requests: list[str] = field(default_factory=list)  # Network.requestWillBeSent URLs
    values: dict[str, Any] = field(default_factory=dict)  # expression -> value

    @property
    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (CSP refusals too)."""
        out = [json.dumps(c.get("args")) for c in self.console if c.get("type") == "error"]
        out += [json.dumps(e.get("exceptionDetails")) for e in self.exceptions]
        out += [e["entry"]["text"] for e in self.log_entries if e["entry"]["level"] == "error"]
        return out


class _Pipe:
    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds_3_and_4() -> None:
            # Move both out of the way first: either may already be fd 3 or 4.
            reading = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            writing = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(reading, 3)
            os.dup2(writing, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=fds_3_and_4,  # noqa: PLW1509 (single-threaded test process)
            pass_fds=(3, 4),  # kept after preexec_fn, which puts the pipe ends there
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read()
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("chromium did not answer within 30 s")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(raw)
        return parsed

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError, TimeoutError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def open_page(
    html: Path, profile: Path, expressions: tuple[str, ...] = (), *, width: int = 1100
) -> PageResult:
    """Load ``html`` in a fresh headless Chromium profile, ``width`` CSS pixels wide (a
    phone's viewport below 500), and report what happened."""
    pipe = _Pipe(profile)
    try:
        targets = pipe.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        session = pipe.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.call(f"{domain}.enable", session)
        pipe.call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=900,
            deviceScaleFactor=1,
            mobile=width < 500,
        )
        pipe.events.clear()
        pipe.call("Page.navigate", session, url=html.as_uri())
        pipe.wait_for("Page.loadEventFired")
        values = {
            expr: pipe.call("Runtime.evaluate", session, expression=expr, returnByValue=True)[
                "result"
            ].get("value")
            for expr in expressions
        }
        shot = pipe.call(
            "Page.captureScreenshot", session, format="png", captureBeyondViewport=True
        )
        result = PageResult(screenshot=base64.b64decode(shot["data"]), values=values)
        for event in pipe.events:
            params = event.get("params", {})
            method = event.get("method")
            if method == "Runtime.consoleAPICalled":
                result.console.append(params)
            elif method == "Runtime.exceptionThrown":
                result.exceptions.append(params)
            elif method == "Log.entryAdded":
                result.log_entries.append(params)
            elif method == "Network.requestWillBeSent":
                result.requests.append(params["request"]["url"])
        return result
    finally:
        pipe.close()


def print_to_pdf(html: Path, profile: Path, pdf: Path) -> int:
    """Print ``html`` with ``chromium --print-to-pdf`` (A4/Letter default, no header or
    footer) and return the number of pages of the PDF it wrote."""
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            *(f for f in FLAGS if f != "--remote-debugging-pipe"),
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            html.as_uri(),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=TIMEOUT_S * 2,
        check=True,
    )
    return pdf_pages(pdf.read_bytes())


def pdf_pages(data: bytes) -> int:
    """The page count of a PDF: its ``/Type /Page`` objects (not ``/Pages``)."""
    import re

    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))
