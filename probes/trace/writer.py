"""Appending a trace: buffered events, strings and JSON records, flushed and fsynced by a
background thread at least every ``flush_interval`` seconds, so a capture killed at any
moment leaves a readable trace of everything up to its last flush."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from probes.events import EVENT_SIZE, EventArray, Kind, StringTable
from probes.files import FileWriteError, NewFile
from probes.trace.format import (
    EVENT_RECORD_SIZE,
    EVENTS_PER_CHUNK,
    FILE_HEADER,
    MAGIC,
    MAJOR,
    MAX_JSON_CHUNK,
    MINOR,
    ChunkType,
    TraceError,
    encode_chunk,
    encode_strings,
)

# Kinds whose str_b is a command line (see probes.events.Kind).
CMDLINE_KINDS = (Kind.EXEC, Kind.PROC_SNAPSHOT)
# An events chunk is cut at this many events even between timed flushes.
CHUNK_EVENTS = EVENTS_PER_CHUNK
assert EVENT_SIZE == EVENT_RECORD_SIZE
# A string longer than this is cut (no comm, path or command line comes near it).
MAX_STRING = 1 << 20


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )


class TraceWriter:
    """Writes one trace file. Thread-safe: sources may add events while facts arrive.

    ``redact`` (when given) maps a command line to its shareable form; it is applied to
    the strings that events use as command lines before they reach the file.
    """

    def __init__(
        self,
        path: str,
        start: dict[str, Any],
        strings: StringTable,
        *,
        compress: bool = True,
        flush_interval: float = 0.5,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self._strings = strings
        self._compress = compress
        self._redact = redact
        self._pending_events: list[EventArray] = []
        self._pending_count = 0
        self._pending_records: list[bytes] = []
        self._strings_written = 1  # id 0 is always the empty string
        # With redaction the trace has its own string table (ids mapped from the live one).
        self._own = StringTable()
        self._plain_ids: dict[int, int] = {}
        self._cmdline_ids: dict[int, int] = {}
        self.events_written = 0
        self.bytes_written = 0
        self._synced = -1
        self._error: OSError | None = None
        self._buf_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = threading.Event()
        try:
            self._new = NewFile(path)  # O_EXCL next to the target; refuses devices, symlinks
        except FileWriteError as e:
            raise TraceError(str(e).replace("cannot write", "cannot create trace", 1)) from e
        self._file = self._new.file
        self._path = path
        try:
            self._write(FILE_HEADER.pack(MAGIC, MAJOR, MINOR, 0))
            self._write(encode_chunk(ChunkType.START, _dumps(start), compress=compress))
            # Published under its name once the start is synced: a capture killed at any
            # later moment leaves a readable trace there.
            self._new.publish()
        except FileWriteError as e:
            raise TraceError(str(e).replace("cannot write", "cannot write trace", 1)) from e
        except OSError as e:
            self._new.discard()
            raise TraceError(f"cannot write trace {path}: {e.strerror}") from e
        self._synced = self.bytes_written
        self._flusher = threading.Thread(
            target=self._flush_loop, args=(flush_interval,), name="trace-flush", daemon=True
        )
        self._flusher.start()

    @property
    def path(self) -> str:
        return self._path

    def add_events(self, batch: EventArray) -> None:
        """Queue a batch (copied: sources may reuse their buffers)."""
        if not len(batch):
            return
        self._raise_pending_error()
        with self._buf_lock:
            self._pending_events.append(np.array(batch, copy=True))
            self._pending_count += len(batch)
            full = self._pending_count >= CHUNK_EVENTS
        if full:
            self.flush(sync=False)

    def add_record(self, record: dict[str, Any]) -> None:
        """Queue one JSON record (a fact, a notice, loss counters...)."""
        self._raise_pending_error()
        line = _dumps(record)
        with self._buf_lock:
            self._pending_records.append(line)

    def flush(self, *, sync: bool = True) -> None:
        """Write everything queued as chunks (strings first, so every id is defined
        before an event uses it), then fsync when ``sync``."""
        with self._write_lock:
            if self._file.closed:
                return
            with self._buf_lock:
                events, self._pending_events, self._pending_count = self._pending_events, [], 0
                records, self._pending_records = self._pending_records, []
            batch = np.concatenate(events) if events else None
            if batch is not None and self._redact is not None:
                batch = self._redacted(batch)
            try:
                self._write_strings(self._strings if self._redact is None else self._own)
                if batch is not None:
                    self._write_events(batch)
                for raw in _record_chunks(records):
                    self._write(encode_chunk(ChunkType.RECORDS, raw, compress=self._compress))
                if sync:
                    self._sync()
            except OSError as e:
                self._error = e
                raise TraceError(f"cannot write trace {self._path}: {e.strerror}") from e

    def close(self, end: dict[str, Any] | None) -> None:
        """Flush, write the end marker (unless ``end`` is None: the trace then reads as
        ended early), fsync and close. Safe to call twice."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._flusher.join()
        try:
            self.flush(sync=False)
            with self._write_lock:
                try:
                    if end is not None:
                        self._write(encode_chunk(ChunkType.END, _dumps(end), compress=False))
                    self._sync()
                except OSError as e:
                    self._error = e
                    raise TraceError(f"cannot write trace {self._path}: {e.strerror}") from e
        finally:
            with self._write_lock:
                try:
                    self._new.close()
                except OSError as e:
                    # Reported only when nothing was yet (else that error is propagating).
                    if self._error is None:
                        self._error = e
                        raise TraceError(f"cannot write trace {self._path}: {e.strerror}") from e

    def _write_strings(self, table: StringTable) -> None:
        new = table.since(self._strings_written)
        if not new:
            return
        for part in _string_groups(new):
            raw = encode_strings(self._strings_written, part)
            self._write(encode_chunk(ChunkType.STRINGS, raw, compress=self._compress))
            self._strings_written += len(part)

    def _redacted(self, batch: EventArray) -> EventArray:
        """``batch`` with its string ids moved to the trace's own table, where command
        lines appear only in redacted form."""
        assert self._redact is not None
        out = batch.copy()
        is_cmd = np.isin(batch["kind"], CMDLINE_KINDS)
        for field in ("str_a", "str_b", "str_c"):
            ids = batch[field]
            plain = ~is_cmd if field == "str_b" else np.ones(len(batch), dtype=bool)
            for mask, cache, transform in (
                (plain, self._plain_ids, None),
                (~plain, self._cmdline_ids, self._redact),
            ):
                if not mask.any():
                    continue
                uniq, inverse = np.unique(ids[mask], return_inverse=True)
                mapped = np.array(
                    [self._map_string(int(u), cache, transform) for u in uniq], dtype=np.uint32
                )
                out[field][mask] = mapped[inverse]
        return out

    def _map_string(
        self, live_id: int, cache: dict[int, int], transform: Callable[[str], str] | None
    ) -> int:
        found = cache.get(live_id)
        if found is None:
            text = self._strings.get(live_id)
            found = cache[live_id] = self._own.intern(transform(text) if transform else text)
        return found

    def _write_events(self, batch: EventArray) -> None:
        for i in range(0, len(batch), CHUNK_EVENTS):
            part = batch[i : i + CHUNK_EVENTS]
            raw = part.tobytes()
            assert len(raw) == len(part) * EVENT_SIZE
            self._write(encode_chunk(ChunkType.EVENTS, raw, compress=self._compress))
            self.events_written += len(part)

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self.bytes_written += len(data)

    def _sync(self) -> None:
        if self.bytes_written == self._synced:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._synced = self.bytes_written

    def _flush_loop(self, interval: float) -> None:
        while not self._closed.wait(interval):
            try:
                self.flush()
            except TraceError:
                return  # kept in self._error; the next add_* or close reports it

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            raise TraceError(f"cannot write trace {self._path}: {self._error.strerror}")


def _record_chunks(records: list[bytes]) -> list[bytes]:
    """Records as RECORDS payloads of at most MAX_JSON_CHUNK bytes each. A record that
    alone exceeds it is replaced by a notice saying so (readers would refuse it)."""
    chunks: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for record in records:
        line = record
        if len(line) >= MAX_JSON_CHUNK:
            line = _dumps({"type": "notice", "message": f"a {len(line)}-byte record was too "
                           "large for a trace and was left out"})  # fmt: skip
        if group and size + len(line) + 1 > MAX_JSON_CHUNK:
            chunks.append(b"\n".join(group))
            group, size = [], 0
        group.append(line)
        size += len(line) + 1
    if group:
        chunks.append(b"\n".join(group))
    return chunks


def _string_groups(strings: list[str]) -> list[list[str]]:
    """Strings in groups whose STRINGS payload stays under MAX_JSON_CHUNK, each string cut
    at MAX_STRING characters."""
    groups: list[list[str]] = [[]]
    size = 8
    for whole in strings:
        text = whole[:MAX_STRING]
        cost = 4 + 4 * len(text)  # a length, and at most 4 UTF-8 bytes per character
        if groups[-1] and size + cost > MAX_JSON_CHUNK:
            groups.append([])
            size = 8
        groups[-1].append(text)
        size += cost
    return groups
