"""Reading a trace: one checked pass that indexes the chunks, then streamed events.

:func:`open_trace` reads the header, verifies every chunk's CRC, decodes the strings and
JSON records, and stops at the first torn or corrupt chunk: the index then says how much
was recovered (``valid_bytes``, ``events``) and what went wrong (``damage``). Event
payloads are only located in that pass; :func:`read_events` streams them afterwards, so a
trace larger than memory replays in constant space.
"""

from __future__ import annotations

import json
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from probes.events import EVENT_DTYPE, EVENT_SIZE, EventArray
from probes.trace.format import (
    CHUNK_HEADER,
    CRC_COVERED,
    EVENT_RECORD_SIZE,
    FILE_HEADER,
    FLAG_ZLIB,
    MAGIC,
    MAJOR,
    MAX_RATIO,
    MAX_RECORD_BYTES,
    MAX_RECORD_ITEMS,
    MAX_STORED,
    MAX_STRING_BYTES,
    MAX_STRINGS,
    ChunkType,
    NotATraceError,
    TraceError,
    TraceVersionError,
    decode_strings,
    max_raw,
)


@dataclass(frozen=True)
class EventChunk:
    """Where one events chunk's payload lies in the file."""

    offset: int
    stored_len: int
    raw_len: int
    flags: int

    @property
    def count(self) -> int:
        return self.raw_len // EVENT_SIZE


@dataclass
class TraceIndex:
    """What a checked pass over a trace found. ``damage`` is None for an intact file."""

    path: str
    size: int
    version: tuple[int, int]
    start: dict[str, Any]
    end: dict[str, Any] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    strings: list[str] = field(default_factory=lambda: [""])
    event_chunks: list[EventChunk] = field(default_factory=list)
    events: int = 0
    valid_bytes: int = 0
    damage: str | None = None
    skipped_chunks: int = 0  # chunk types from a newer minor version
    record_bytes: int = 0  # inflated RECORDS bytes so far (bounded: MAX_RECORD_BYTES)
    string_bytes: int = 0  # inflated STRINGS bytes so far (bounded: MAX_STRING_BYTES)
    record_items: int = 0  # JSON values in the records so far (bounded: MAX_RECORD_ITEMS)

    @property
    def ended_cleanly(self) -> bool:
        """True when the capture wrote its end marker."""
        return self.end is not None


assert EVENT_SIZE == EVENT_RECORD_SIZE


class _DamageError(Exception):
    """Internal: the chunk at the current offset cannot be trusted."""


def inflate(payload: bytes, flags: int, raw_len: int) -> bytes:
    """A chunk's raw bytes, refusing to produce more than ``raw_len`` of them."""
    if not flags & FLAG_ZLIB:
        return payload
    try:
        d = zlib.decompressobj()
        raw = d.decompress(payload, raw_len)
    except zlib.error as e:
        raise ValueError(f"compressed payload is corrupt ({e})") from e
    if len(raw) != raw_len or d.unconsumed_tail or not d.eof:
        raise ValueError(f"compressed payload does not inflate to its stated {raw_len} bytes")
    return raw


def _read_file_header(f: BinaryIO, path: str) -> tuple[int, int]:
    head = f.read(FILE_HEADER.size)
    if len(head) < FILE_HEADER.size or not head.startswith(MAGIC):
        if MAGIC.startswith(head[: len(MAGIC)]) and head:
            raise NotATraceError(f"{path}: truncated inside the trace header, nothing recovered")
        raise NotATraceError(f"{path} is not an rba trace (no RBATRACE header)")
    _, major, minor, _ = FILE_HEADER.unpack(head)
    if major > MAJOR:
        raise TraceVersionError(
            f"{path} is trace format {major}.{minor}, newer than this rba reads "
            f"({MAJOR}.x): replay it with a newer rba"
        )
    if major < 1:
        raise TraceVersionError(f"{path} has unknown trace format version {major}.{minor}")
    return major, minor


def _read_chunk(f: BinaryIO, offset: int) -> tuple[int, int, int, int, bytes] | None:
    """(type, flags, raw_len, payload offset, payload) of the next chunk, None at a clean
    end of file; raises _DamageError when the chunk is torn or corrupt."""
    head = f.read(CHUNK_HEADER.size)
    if not head:
        return None
    if len(head) < CHUNK_HEADER.size:
        raise _DamageError(f"truncated chunk header at byte {offset}")
    ctype, flags, reserved, stored_len, raw_len, crc = CHUNK_HEADER.unpack(head)
    sane = reserved == 0 and flags & ~FLAG_ZLIB == 0 and stored_len <= MAX_STORED
    if not sane:
        raise _DamageError(f"corrupt chunk header at byte {offset}")
    # Sizes are judged before anything is read or inflated (docs/trace-format.md, Limits).
    if raw_len > max_raw(ctype):
        raise _DamageError(
            f"chunk at byte {offset} announces {raw_len} bytes, over the limit of "
            f"{max_raw(ctype)} for its type"
        )
    if flags & FLAG_ZLIB and raw_len > MAX_RATIO * stored_len:
        raise _DamageError(
            f"chunk at byte {offset} would inflate {stored_len} bytes to {raw_len}, "
            f"over the limit of {MAX_RATIO} to 1"
        )
    if not flags & FLAG_ZLIB and stored_len != raw_len:
        raise _DamageError(f"corrupt chunk header at byte {offset}")
    payload = f.read(stored_len)
    if len(payload) < stored_len:
        raise _DamageError(
            f"truncated chunk at byte {offset}: {stored_len} bytes announced, "
            f"{len(payload)} present"
        )
    if zlib.crc32(payload, zlib.crc32(head[:CRC_COVERED])) != crc:
        raise _DamageError(f"corrupt chunk at byte {offset} (CRC mismatch)")
    return ctype, flags, raw_len, offset + CHUNK_HEADER.size, payload


def _json_object(payload: bytes, flags: int, raw_len: int) -> dict[str, Any]:
    value = json.loads(inflate(payload, flags, raw_len).decode("utf-8", "surrogatepass"))
    if not isinstance(value, dict):
        raise ValueError("JSON payload is not an object")
    return value


def _absorb(index: TraceIndex, chunk: tuple[int, int, int, int, bytes]) -> None:
    """Add one CRC-valid chunk to the index; raises ValueError when it is malformed."""
    ctype, flags, raw_len, payload_at, payload = chunk
    if ctype == ChunkType.EVENTS:
        if raw_len % EVENT_SIZE:
            raise ValueError(f"{raw_len} bytes is not a whole number of events")
        index.event_chunks.append(EventChunk(payload_at, len(payload), raw_len, flags))
        index.events += raw_len // EVENT_SIZE
    elif ctype == ChunkType.STRINGS:
        index.string_bytes += raw_len
        if index.string_bytes > MAX_STRING_BYTES:
            raise ValueError(f"strings exceed the limit of {MAX_STRING_BYTES} bytes per trace")
        first, strings = decode_strings(inflate(payload, flags, raw_len))
        if first != len(index.strings):
            raise ValueError(f"strings start at id {first}, expected {len(index.strings)}")
        if len(index.strings) + len(strings) > MAX_STRINGS:
            raise ValueError(f"strings exceed the limit of {MAX_STRINGS} per trace")
        index.strings.extend(strings)
    elif ctype == ChunkType.RECORDS:
        index.record_bytes += raw_len
        if index.record_bytes > MAX_RECORD_BYTES:
            raise ValueError(f"records exceed the limit of {MAX_RECORD_BYTES} bytes per trace")
        raw = inflate(payload, flags, raw_len)
        index.record_items += sum(raw.count(c) for c in (b",", b":", b"[", b"{"))
        if index.record_items > MAX_RECORD_ITEMS:
            raise ValueError(f"records exceed the limit of {MAX_RECORD_ITEMS} JSON values")
        text = raw.decode("utf-8", "surrogatepass")
        records = [json.loads(line) for line in text.split("\n") if line]
        if not all(isinstance(r, dict) for r in records):
            raise ValueError("a record is not a JSON object")
        index.records.extend(records)
    elif ctype == ChunkType.END:
        index.end = _json_object(payload, flags, raw_len)
    elif ctype == ChunkType.START:
        raise ValueError("a second start chunk")
    else:
        index.skipped_chunks += 1


def open_trace(path: str) -> TraceIndex:
    """Index ``path``. Raises TraceError when nothing usable can be read (not a trace, a
    newer major version, no intact start chunk); otherwise returns the index, whose
    ``damage`` says where and why reading stopped early."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            version = _read_file_header(f, path)
            offset = FILE_HEADER.size
            try:
                first = _read_chunk(f, offset)
                if first is None or first[0] != ChunkType.START:
                    raise _DamageError("no start chunk")
                start = _json_object(first[4], first[1], first[2])
            except (_DamageError, ValueError, UnicodeDecodeError, RecursionError) as e:
                raise TraceError(
                    f"{path}: unreadable start of trace ({e}), nothing recovered"
                ) from e
            offset = f.tell()
            index = TraceIndex(path, size, version, start, valid_bytes=offset)
            _scan_chunks(f, index)
            return index
    except OSError as e:
        raise TraceError(f"cannot read trace {path}: {e.strerror}") from e


def _scan_chunks(f: BinaryIO, index: TraceIndex) -> None:
    offset = index.valid_bytes
    while True:
        try:
            chunk = _read_chunk(f, offset)
            if chunk is None:
                return
            _absorb(index, chunk)
        except _DamageError as e:
            index.damage = str(e)
            return
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            index.damage = f"malformed chunk at byte {offset}: {e}"
            return
        offset = f.tell()
        index.valid_bytes = offset
        if index.end is not None:
            if offset < index.size:
                index.damage = f"{index.size - offset} bytes after the end marker ignored"
            return


# Chunks inflated ahead of the consumer, on worker threads (zlib releases the GIL), so
# replay decodes on both cores while the assessment folds the previous chunk.
PREFETCH = 2


def _decode(path: str, chunk: EventChunk, payload: bytes) -> EventArray:
    try:
        raw = inflate(payload, chunk.flags, chunk.raw_len)
    except ValueError as e:
        raise TraceError(f"{path}: events at byte {chunk.offset}: {e}") from e
    return np.frombuffer(raw, dtype=EVENT_DTYPE)


def read_events(index: TraceIndex) -> Iterator[EventArray]:
    """The trace's events, one read-only batch per chunk, in file order."""
    try:
        with (
            open(index.path, "rb") as f,
            ThreadPoolExecutor(PREFETCH, thread_name_prefix="trace-inflate") as pool,
        ):
            ahead: deque[Future[EventArray]] = deque()
            for chunk in index.event_chunks:
                f.seek(chunk.offset)
                payload = f.read(chunk.stored_len)
                if len(payload) != chunk.stored_len:
                    raise TraceError(f"{index.path} shrank while being replayed")
                ahead.append(pool.submit(_decode, index.path, chunk, payload))
                if len(ahead) > PREFETCH:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
    except OSError as e:
        raise TraceError(f"cannot read trace {index.path}: {e.strerror}") from e


@dataclass(frozen=True)
class EventCounts:
    """How many events of each kind and source a trace holds, and their time span."""

    by_kind: dict[int, int]
    by_source: dict[int, int]
    first_wall_ns: int | None
    last_wall_ns: int | None


def count_events(index: TraceIndex) -> EventCounts:
    """Count the trace's events by kind and by source (streams; constant memory)."""
    kinds = np.zeros(256, dtype=np.int64)
    sources = np.zeros(256, dtype=np.int64)
    first: int | None = None
    last: int | None = None
    for batch in read_events(index):
        if not len(batch):
            continue
        kinds += np.bincount(batch["kind"], minlength=256)
        sources += np.bincount(batch["source"], minlength=256)
        wall = batch["ts_wall"]
        lo, hi = int(wall.min()), int(wall.max())
        first = lo if first is None else min(first, lo)
        last = hi if last is None else max(last, hi)
    return EventCounts(
        by_kind={int(k): int(kinds[k]) for k in np.flatnonzero(kinds)},
        by_source={int(s): int(sources[s]) for s in np.flatnonzero(sources)},
        first_wall_ns=first,
        last_wall_ns=last,
    )
