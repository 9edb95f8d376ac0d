"""Daemon logging: journald priority prefixes under systemd, timestamps elsewhere."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from behavior.daemon.logs import setup_logging


def test_journal_stream_gets_priority_prefixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal"
    with open(path, "w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        log = setup_logging(stream)
        log.info("run r1 started")
        log.error("config reload refused: x")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("evaluation failed")
    lines = path.read_text().splitlines()
    assert lines[:2] == ["<6>run r1 started", "<3>config reload refused: x"]
    assert (
        lines[2].startswith("<3>evaluation failed | Traceback") and "ValueError: boom" in lines[2]
    )
    assert len(lines) == 3  # a traceback stays one journal entry


def test_plain_stream_gets_timestamps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    path = tmp_path / "plain"
    with open(path, "w") as stream:
        setup_logging(stream, level=logging.INFO).warning("retention: removed 2 old run(s)")
    line = path.read_text().strip()
    assert line.endswith(f"rba[{os.getpid()}] WARNING retention: removed 2 old run(s)")
    assert line[:4].isdigit() and line[19] == "Z"
