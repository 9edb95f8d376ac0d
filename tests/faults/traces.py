"""Traces for the fault tests: a small valid one, and chunks framed by hand (CRC-valid)
so a test can say exactly what a hostile file holds."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

from behavior.facts.interface import HostFact
from behavior.recording.recorder import TraceRecorder
from behavior.window.assess import AssessConfig, WindowEnd
from probes.events import Kind, StringTable, empty
from probes.interface import SourceStats
from probes.trace.format import CHUNK_HEADER, FILE_HEADER, FLAG_ZLIB, MAGIC, ChunkType

HOST = HostFact(hostname="db1", kernel="6.1.0", netns=4026531840)
STARTED_NS = 10**18


def record_trace(path: Path, *, comm: str = "mysql", end: bool = True) -> Path:
    """A real trace of a 30 s window with three EXEC events of ``comm``."""
    strings = StringTable()
    recorder = TraceRecorder(str(path), purpose="capture")
    recorder.begin(
        run_id="r1", host=HOST, started_at_ns=STARTED_NS, sources=("poll",), strings=strings,
        config=AssessConfig(duration_s=30),
    )  # fmt: skip
    batch = empty(3)
    batch["kind"] = Kind.EXEC
    batch["pid"] = [100, 101, 102]
    batch["ts_wall"] = STARTED_NS + 2 * 10**9
    batch["comm"] = comm.encode()[:16]
    batch["str_a"] = strings.intern(f"/usr/bin/{comm}")
    batch["str_b"] = strings.intern(f"{comm} -u root")
    recorder.events(batch)
    if end:
        recorder.end(WindowEnd(
            ended_at_ns=STARTED_NS + 30 * 10**9, partial=False, notices=(),
            source_stats={"poll": SourceStats(3, 0, ())}, sources=("poll",),
        ))  # fmt: skip
    recorder.close()
    return path


def start_record(**window: Any) -> dict[str, Any]:
    """A start record as the recorder writes it, with ``window`` values overridden."""
    return {
        "format": "rba-trace", "purpose": "capture", "rba_version": "0", "run_id": "r1",
        "host": {"hostname": "db1"}, "kernel": {"release": "6.1.0"},
        "window": {"started_at_ns": STARTED_NS, "duration_s": 30.0, **window},
        "sources": ["poll"],
        "options": {"probes": "poll", "poll_interval": 1.0, "rules": None},
    }  # fmt: skip


def chunk(ctype: int, raw: bytes, *, stored: bytes | None = None) -> bytes:
    """One CRC-valid chunk; ``stored`` (zlib bytes of ``raw``) makes it compressed."""
    payload = raw if stored is None else stored
    flags = 0 if stored is None else FLAG_ZLIB
    head = CHUNK_HEADER.pack(ctype, flags, 0, len(payload), len(raw), 0)[:12]
    return head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload


def json_chunk(ctype: int, obj: object) -> bytes:
    """A JSON chunk as the writer frames it (NaN allowed: Python's json writes it)."""
    return chunk(ctype, json.dumps(obj).encode())


def trace_bytes(start: dict[str, Any], *chunks: bytes) -> bytes:
    """A file header, a START chunk holding ``start``, then ``chunks``."""
    return FILE_HEADER.pack(MAGIC, 1, 1, 0) + json_chunk(ChunkType.START, start) + b"".join(chunks)
