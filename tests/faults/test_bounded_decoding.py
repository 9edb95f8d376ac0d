"""Issue 12 items 7 and 8: a hostile trace costs bounded memory and CPU, and absurd start
values are one-line errors. Each file here is CRC-valid: only the limits stop it."""

from __future__ import annotations

import json
import math
import resource
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from probes.events import EVENT_SIZE, StringTable, empty
from probes.trace import ChunkType, TraceWriter, open_trace, read_events
from probes.trace.format import CHUNK_HEADER, FLAG_ZLIB, MAX_JSON_CHUNK, MAX_RATIO
from tests.conftest import RBA, REPO
from tests.faults.traces import chunk, json_chunk, start_record, trace_bytes

MEMORY_LIMIT = 1 << 30  # each rba below must stay well under it


def _limited(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """rba with its address space capped at 1 GiB (the bombs used to want ~6 GB)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    return subprocess.run(
        [*RBA, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
        preexec_fn=cap, check=False,
    )  # fmt: skip


def _no_crash(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    assert result.returncode in (0, 2), result.stderr
    if result.returncode == 2:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def _records_bomb() -> bytes:
    """One zlib RECORDS chunk of about 560 KB announcing 256 MiB of JSON lines (the
    reported bomb: old readers inflated it all, then parsed it into ~6 GB of objects)."""
    line = b'{"type":"fact","fact":[' + b"[]," * 20000 + b"[]]}\n"
    packer = zlib.compressobj(9)
    parts, raw = [], 0
    while raw < (256 << 20) - len(line):
        parts.append(packer.compress(line))
        raw += len(line)
    parts.append(packer.flush())
    return _framed(ChunkType.RECORDS, b"".join(parts), raw)


def _framed(ctype: int, stored: bytes, raw_len: int) -> bytes:
    """A CRC-valid compressed chunk that announces ``raw_len`` (true or not)."""
    head = CHUNK_HEADER.pack(ctype, FLAG_ZLIB, 0, len(stored), raw_len, 0)[:12]
    return head + struct.pack("<I", zlib.crc32(stored, zlib.crc32(head))) + stored


@pytest.mark.parametrize("command", [("trace", "info"), ("replay",)])
def test_a_records_bomb_is_refused_before_inflating(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    trace = tmp_path / "bomb.rbt"
    trace.write_bytes(trace_bytes(start_record(), _records_bomb()))
    assert trace.stat().st_size < 1 << 20
    began = time.monotonic()
    result = _limited(*command, str(trace))
    assert time.monotonic() - began < 30
    _no_crash(result)
    assert "over the limit" in result.stdout + result.stderr


def test_events_chunks_cannot_amplify_cpu(tmp_path: Path) -> None:
    """Two thousand events chunks of zeros at ~230:1: the first one stops the reader."""
    zeros = bytes(65536 * EVENT_SIZE)
    bomb = _framed(ChunkType.EVENTS, zlib.compress(zeros, 9), len(zeros))
    trace = tmp_path / "cpu.rbt"
    trace.write_bytes(trace_bytes(start_record(), bomb * 2000))
    index = open_trace(str(trace))
    assert index.events == 0 and index.damage is not None
    assert f"over the limit of {MAX_RATIO} to 1" in index.damage
    began = time.monotonic()
    _no_crash(_limited("replay", str(trace)))
    assert time.monotonic() - began < 30


def test_strings_and_records_budgets(tmp_path: Path) -> None:
    count = (1 << 22) - 16
    strings = struct.pack("<II", 1, count) + bytes(4 * count)  # four million empty strings
    many = tmp_path / "strings.rbt"
    many.write_bytes(trace_bytes(start_record(), chunk(ChunkType.STRINGS, strings)))
    assert len(open_trace(str(many)).strings) == count + 1  # within the limit: read
    huge = tmp_path / "announced.rbt"
    huge.write_bytes(trace_bytes(start_record(), _framed(ChunkType.STRINGS, b"x", 1 << 30)))
    assert "over the limit" in (open_trace(str(huge)).damage or "")


def test_the_writer_never_writes_what_the_reader_refuses(tmp_path: Path) -> None:
    """Zeros compress past the ratio limit: stored raw. Records past a chunk's limit:
    split. Both read back whole."""
    table = StringTable()
    path = tmp_path / "t.rbt"
    writer = TraceWriter(str(path), {"format": "x"}, table, flush_interval=3600)
    writer.add_events(empty(65536))
    big = "x" * 1000
    for i in range(20000):  # ~20 MB of records in one flush
        writer.add_record({"type": "notice", "i": i, "pad": big})
    writer.close({"ended_at_ns": 1})
    index = open_trace(str(path))
    assert index.damage is None and index.events == 65536
    assert len(index.records) == 20000 and index.record_bytes > MAX_JSON_CHUNK
    assert sum(len(b) for b in read_events(index)) == 65536


def _one_line_error(*args: str) -> str:
    result = _limited(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "window",
    [
        {"started_at_ns": 1e30},
        {"started_at_ns": -5},
        {"duration_s": math.nan},
        {"duration_s": math.inf},
        {"duration_s": "soon"},
    ],
)
def test_absurd_start_values_are_one_line_errors(window: dict[str, object], tmp_path: Path) -> None:
    trace = tmp_path / "t.rbt"
    end = json_chunk(ChunkType.END, {"ended_at_ns": 10**18 + 1, "partial": False})
    trace.write_bytes(trace_bytes(start_record(**window), end))
    json.dumps(window)  # CRC-valid and what Python's own json writes (NaN included)
    assert "malformed start record" in _one_line_error("replay", str(trace))
    info = _limited("trace", "info", str(trace))
    _no_crash(info)
    assert "malformed start record" in info.stdout + info.stderr


def test_random_bytes_after_a_valid_start_never_crash(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    for i in range(5):
        tail = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
        trace = tmp_path / f"r{i}.rbt"
        trace.write_bytes(trace_bytes(start_record(), tail))
        _no_crash(_limited("replay", str(trace)))


@pytest.mark.parametrize(
    "end",
    [
        {"ended_at_ns": math.inf, "partial": False, "stats": {}, "notices": []},
        {"ended_at_ns": -(10**30), "partial": False, "stats": {}, "notices": []},
        {"ended_at_ns": 2**64, "partial": False, "stats": {}, "notices": []},
        {"ended_at_ns": 10**18, "partial": False, "notices": [],
         "stats": {"poll": {"events": math.inf, "lost": 0, "gaps": []}}},
    ],
)  # fmt: skip
def test_absurd_end_values_are_reported_not_crashed_on(
    end: dict[str, object], tmp_path: Path
) -> None:
    """Found by bench/fuzz_traces.py: an END (or stats record) with an infinite or
    out-of-range time gave OverflowError in trace info and replay."""
    from behavior.commands.trace import render_info
    from behavior.recording.describe import describe
    from behavior.recording.loading import load_recording

    stats = json_chunk(ChunkType.RECORDS, {"type": "stats", "at_ns": 1, "stats": end["stats"]})
    trace = tmp_path / "t.rbt"
    trace.write_bytes(trace_bytes(start_record(), stats, json_chunk(ChunkType.END, end)))
    text = render_info(describe(str(trace)))
    assert "malformed end record" in text or "malformed" in " ".join(
        load_recording(str(trace)).problems
    )
    _no_crash(_limited("replay", str(trace)))
    _no_crash(_limited("trace", "info", str(trace)))
