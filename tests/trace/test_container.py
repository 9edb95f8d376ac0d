"""The trace container: round trip, privacy, versioning, crash safety, hostile input."""

from __future__ import annotations

import os
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from probes.events import EVENT_DTYPE, Kind, Source, StringTable, empty
from probes.replay import ReplaySource
from probes.trace import (
    CmdlineRedactor,
    NotATraceError,
    TraceError,
    TraceVersionError,
    TraceWriter,
    open_trace,
    read_events,
)
from probes.trace.format import CHUNK_HEADER, FILE_HEADER, MAGIC
from tests.support.timing import bounded, cpu_time_of

REPO = Path(__file__).resolve().parents[2]


def _events(strings: StringTable, n: int, *, t0: int = 1_000) -> np.ndarray:
    ev = empty(n)
    ev["ts_wall"] = t0 + np.arange(n) * 1000
    ev["ts_mono"] = ev["ts_wall"]
    ev["kind"] = np.where(np.arange(n) % 2, Kind.EXEC, Kind.TCP_CONNECT)
    ev["pid"] = 100 + np.arange(n)
    ev["dport"] = 23
    ev["str_a"] = strings.intern("/usr/bin/telnet")
    ev["str_b"] = np.where(ev["kind"] == Kind.EXEC, strings.intern("telnet -l root db1"), 0)
    ev["comm"] = b"telnet"
    ev["source"] = Source.EBPF
    return ev


def _small_trace(path: Path) -> tuple[StringTable, np.ndarray]:
    strings = StringTable()
    ev = _events(strings, 40)
    w = TraceWriter(str(path), {"kind": "test"}, strings, flush_interval=60)
    w.add_events(ev[:20])
    w.add_record({"type": "notice", "message": "first half"})
    w.flush()
    w.add_events(ev[20:])
    w.close({"ended_at_ns": 99})
    return strings, ev


def _all_events(trace_path: str) -> np.ndarray:
    index = open_trace(trace_path)
    batches = list(read_events(index))
    return np.concatenate(batches) if batches else empty()


def test_round_trip_keeps_events_strings_records_and_end(tmp_path: Path) -> None:
    path = tmp_path / "t.rbt"
    strings, ev = _small_trace(path)
    index = open_trace(str(path))
    assert index.damage is None and index.ended_cleanly
    assert index.start == {"kind": "test"}
    assert index.end == {"ended_at_ns": 99}
    assert index.records == [{"type": "notice", "message": "first half"}]
    assert index.strings == strings.since(0)
    assert index.events == 40
    got = _all_events(str(path))
    assert got.dtype == EVENT_DTYPE and got.tobytes() == ev.tobytes()


def test_event_chunks_are_compact(tmp_path: Path) -> None:
    """Repetitive connection and exec records compress far below their 120-byte size."""
    strings = StringTable()
    path = tmp_path / "t.rbt"
    w = TraceWriter(str(path), {"kind": "test"}, strings, flush_interval=60)
    w.add_events(_events(strings, 20_000))
    w.close({"ended_at_ns": 99})
    assert path.stat().st_size / 20_000 <= 32  # the target in BENCHMARKS.md (Traces)


def test_file_is_private_even_when_it_existed(tmp_path: Path) -> None:
    path = tmp_path / "t.rbt"
    path.write_text("old")
    path.chmod(0o644)
    _small_trace(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_redaction_hashes_arguments_but_keeps_the_program(tmp_path: Path) -> None:
    path = tmp_path / "t.rbt"
    strings = StringTable()
    ev = _events(strings, 10)
    w = TraceWriter(str(path), {}, strings, redact=CmdlineRedactor(b"k"))
    w.add_events(ev)
    w.close({})
    index = open_trace(str(path))
    assert "telnet -l root db1" not in index.strings
    assert not any("root" in s for s in index.strings)
    got = _all_events(str(path))
    cmd = {index.strings[i] for i in got["str_b"][got["kind"] == Kind.EXEC]}
    assert cmd == {CmdlineRedactor(b"k")("telnet -l root db1")}
    assert next(iter(cmd)).startswith("telnet #")
    # Paths are not command lines: they stay.
    assert {index.strings[i] for i in got["str_a"]} == {"/usr/bin/telnet"}
    assert b"root" not in path.read_bytes()


def test_newer_major_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.rbt"
    _small_trace(path)
    data = bytearray(path.read_bytes())
    data[: FILE_HEADER.size] = FILE_HEADER.pack(MAGIC, 2, 0, 0)
    path.write_bytes(bytes(data))
    with pytest.raises(TraceVersionError, match=r"format 2\.0, newer than this rba reads"):
        open_trace(str(path))


def test_not_a_trace(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"\x7fELF" + bytes(100))
    with pytest.raises(NotATraceError, match="not an rba trace"):
        open_trace(str(path))
    with pytest.raises(TraceError, match="cannot read trace"):
        open_trace(str(tmp_path / "missing"))


def test_unknown_chunk_types_of_a_newer_minor_version_are_skipped(tmp_path: Path) -> None:
    import zlib

    path = tmp_path / "t.rbt"
    _small_trace(path)
    data = path.read_bytes()
    # Insert a chunk of an unknown type just before the end marker.
    index = open_trace(str(path))
    end_at = index.valid_bytes - (CHUNK_HEADER.size + len(b'{"ended_at_ns":99}'))
    payload = b"future"
    head = CHUNK_HEADER.pack(77, 0, 0, len(payload), len(payload), 0)[:12]
    chunk = head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload
    path.write_bytes(data[:end_at] + chunk + data[end_at:])
    again = open_trace(str(path))
    assert again.skipped_chunks == 1 and again.damage is None and again.ended_cleanly
    assert again.events == 40


def _check_reads_cleanly(path: str) -> tuple[int, str | None]:
    """Open and drain a (possibly damaged) trace the way replay does; return (events
    delivered, damage). Only TraceError may escape."""
    source = ReplaySource(path)
    source.start(StringTable())
    n = 0
    while not source.exhausted:
        batch = source.read(0)
        for f in ("str_a", "str_b", "str_c"):
            assert (batch[f] < len(source.trace.strings)).all()
        n += len(batch)
    source.stop()
    return n, source.trace.damage


def test_truncation_at_every_offset_gives_an_error_or_a_stated_partial_read(
    tmp_path: Path,
) -> None:
    full = tmp_path / "full.rbt"
    _small_trace(full)
    data = full.read_bytes()
    _, whole_cpu_s = cpu_time_of(lambda: _check_reads_cleanly(str(full)))
    cut = tmp_path / "cut.rbt"
    recovered_at_least: list[int] = []
    for size in range(len(data)):
        cut.write_bytes(data[:size])
        with bounded(whole_cpu_s):
            try:
                n, damage = _check_reads_cleanly(str(cut))
            except TraceError as e:
                assert str(e) and "\n" not in str(e)
                n = -1
            else:
                index = open_trace(str(cut))
                # A cut file never reads as whole: either the end marker is missing or
                # the damage says where reading stopped.
                assert not index.ended_cleanly or damage is not None
        recovered_at_least.append(n)
    # Events come back in whole flushed chunks as the cut moves past them.
    assert recovered_at_least[-1] == 40
    assert 20 in recovered_at_least
    assert recovered_at_least == sorted(recovered_at_least)


def test_random_byte_flips_never_crash_or_hang(tmp_path: Path) -> None:
    full = tmp_path / "full.rbt"
    _small_trace(full)
    data = full.read_bytes()
    _, whole_cpu_s = cpu_time_of(lambda: _check_reads_cleanly(str(full)))
    rng = np.random.default_rng(1234)
    bad = tmp_path / "bad.rbt"
    outcomes = {"error": 0, "partial": 0, "whole": 0}
    for _ in range(600):
        mutated = bytearray(data)
        for pos in rng.integers(0, len(data), rng.integers(1, 4)):
            mutated[pos] ^= int(rng.integers(1, 256))
        bad.write_bytes(bytes(mutated))
        with bounded(whole_cpu_s):
            try:
                n, damage = _check_reads_cleanly(str(bad))
            except TraceError as e:
                assert str(e) and "\n" not in str(e)
                outcomes["error"] += 1
            else:
                if damage is None:
                    # Flips in the 4 reserved header bytes are harmless; anything else is
                    # caught.
                    assert n == 40
                    outcomes["whole"] += 1
                else:
                    assert n <= 40
                    outcomes["partial"] += 1
    assert outcomes["error"] and outcomes["partial"]


def test_hostile_chunk_lengths_do_not_allocate_or_hang(tmp_path: Path) -> None:
    path = tmp_path / "t.rbt"
    _small_trace(path)
    data = bytearray(path.read_bytes())
    first_chunk = FILE_HEADER.size
    struct.pack_into("<I", data, first_chunk + 4, 0xFFFFFFF0)  # stored_len
    path.write_bytes(bytes(data))
    with pytest.raises(TraceError, match="nothing recovered"):
        open_trace(str(path))


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from probes.events import StringTable, empty, Kind
    from probes.trace import TraceWriter

    added = 0  # events whose add_events call has returned

    class ReportingWriter(TraceWriter):
        def flush(self, *, sync=True):
            before = added  # all of these are queued or written: this flush covers them
            super().flush(sync=sync)
            if sync:  # only the background flusher syncs: close is never called
                print("flushed", before, flush=True)

    strings = StringTable()
    w = ReportingWriter(sys.argv[1], {"kind": "kill-test"}, strings, flush_interval=0.5)
    while True:
        ev = empty(100)
        ev["kind"] = Kind.EXEC
        ev["ts_mono"] = time.monotonic_ns()
        ev["pid"] = np.arange(added, added + 100)
        ev["str_a"] = strings.intern(f"/bin/prog{added // 1000}")
        w.add_events(ev)
        added += 100
        time.sleep(0.001)
    """
)
KILL_AFTER_S = 2.5  # of writing, and at least this many completed background flushes:
KILL_AFTER_FLUSHES = 3


def test_sigkilled_writer_leaves_everything_flushed_before_the_kill(tmp_path: Path) -> None:
    path = tmp_path / "killed.rbt"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    # The writer says when a background flush (with its fsync) has completed, and how
    # many events it covered; whatever it said before the kill must survive the kill.
    flushed: list[int] = []
    started = time.monotonic()
    while time.monotonic() - started < KILL_AFTER_S or len(flushed) < KILL_AFTER_FLUSHES:
        line = proc.stdout.readline()
        assert line, "writer died"
        word, count = line.split()
        assert word == "flushed"
        flushed.append(int(count))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    index = open_trace(str(path))
    assert not index.ended_cleanly
    events = _all_events(str(path))
    # Every event covered by a flush reported before the kill is in the file ...
    assert flushed[-1] > 0
    assert len(events) >= flushed[-1], f"{len(events)} events read, {flushed[-1]} flushed"
    # ... in order, with its strings.
    assert (events["pid"] == np.arange(len(events))).all()
    assert max(events["str_a"]) < len(index.strings)


@pytest.mark.root
def test_disk_full_is_a_clear_error_and_the_written_part_stays_readable(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        strings = StringTable()
        w = TraceWriter(str(mount / "t.rbt"), {}, strings, compress=False, flush_interval=60)
        with pytest.raises(TraceError, match=r"cannot write trace .*No space left on device"):
            for _ in range(100):
                w.add_events(_events(strings, 1000))
                w.flush()
        w.close(None)
        index = open_trace(str(mount / "t.rbt"))
        assert index.events > 0 and not index.ended_cleanly
        assert len(_all_events(str(mount / "t.rbt"))) == index.events
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def _chunk(ctype: int, payload: bytes) -> bytes:
    import zlib

    head = CHUNK_HEADER.pack(ctype, 0, 0, len(payload), len(payload), 0)[:12]
    return head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload


def test_hostile_but_well_framed_chunks(tmp_path: Path) -> None:
    """Chunks with valid CRCs that no rba writes: deep JSON, empty or ragged events."""
    header = FILE_HEADER.pack(MAGIC, 1, 0, 0)
    path = tmp_path / "t.rbt"
    path.write_bytes(header + _chunk(1, b"[" * 100_000 + b"]" * 100_000))
    with pytest.raises(TraceError, match="nothing recovered"):
        open_trace(str(path))
    start = _chunk(1, b"{}")
    one = empty(1)
    one["kind"] = Kind.EXIT
    one["source"] = Source.POLL
    zero_kind = bytes(EVENT_DTYPE.itemsize)  # kind 0 exists in no rba: dropped, counted
    path.write_bytes(
        header + start + _chunk(3, b"") + _chunk(3, one.tobytes()) + _chunk(3, zero_kind)
    )
    assert _check_reads_cleanly(str(path)) == (1, None)
    source = ReplaySource(str(path))
    source.start(StringTable())
    while not source.exhausted:
        source.read(0)
    assert source.stats().lost == 1 and "1 malformed events dropped" in source.stats().gaps[-1]
    path.write_bytes(header + start + _chunk(3, bytes(7)))
    n, damage = _check_reads_cleanly(str(path))
    assert n == 0 and damage is not None and "not a whole number of events" in damage
    path.write_bytes(header + start + _chunk(4, b"[" * 100_000))
    n, damage = _check_reads_cleanly(str(path))
    assert damage is not None and "malformed chunk" in damage
