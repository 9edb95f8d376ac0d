"""Logging for the daemon: one line per record on stderr, journald-friendly.

Under systemd (stderr connected to the journal, as ``$JOURNAL_STREAM`` says) each line
starts with the ``<N>`` syslog priority prefix that journald turns into the entry's
priority, and carries no timestamp (the journal adds its own). Elsewhere lines get a UTC
timestamp and the level name.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TextIO

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    """``<priority>message``, exception text folded onto the same line."""

    def format(self, record: logging.LogRecord) -> str:
        text = _one_line(super().format(record))
        return f"<{_PRIORITY.get(record.levelno, 6)}>{text}"


class PlainFormatter(logging.Formatter):
    """``2026-01-31T02:00:00Z rba[PID] LEVEL message`` in UTC."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s rba[%(process)d] %(levelname)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))

    def format(self, record: logging.LogRecord) -> str:
        return _one_line(super().format(record))


def _one_line(text: str) -> str:
    # A multi-line record (a traceback) stays one journal entry.
    return text.replace("\n", " | ")


def stream_is_journal(stream: TextIO) -> bool:
    """True when ``stream`` is the journal stream systemd gave us ($JOURNAL_STREAM)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def setup_logging(stream: TextIO | None = None, level: int = logging.INFO) -> logging.Logger:
    """Configure and return the ``rba.daemon`` logger."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JournalFormatter() if stream_is_journal(stream) else PlainFormatter())
    logger = logging.getLogger("rba.daemon")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    return logger
