"""Fixed-seed fuzzing of rba's inputs: traces, daemon configs, suppression files and the
scan cache. Shared by tests/faults/test_fuzz.py (a small corpus, in CI) and
bench/fuzz_traces.py (a long run).

Each case is fed to the code that reads that input the way rba does. A case passes when
it is read, or refused with rba's own one-line error; anything else (another exception,
a message of several lines) is a crash. Files that must not change (a victim behind a
planted symlink, the case itself) are hashed before and after: a change is a clobber.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probes.trace.format import CHUNK_HEADER, FILE_HEADER, FLAG_ZLIB, MAGIC, ChunkType

CONFIG = """
[daemon]
state_dir = "/srv/rba"
socket = "/srv/rba/control.sock"
probes = "poll"
poll_interval = "500ms"
max_active_runs = 3

[retention]
max_runs = 10
max_megabytes = 20

[findings]
directory = "/var/log/rba"
formats = ["json", "text"]

[[template]]
name = "nightly"
duration = "1h"
rules = ["unused-listening-port", "insecure-client-login"]
schedule = "daily 02:30"

[[suppression]]
rule = "unused-listening-port"
port = 22
reason = "reached via the bastion"
expires = 2027-01-31
"""

SUPPRESSIONS = """
[[suppression]]
rule = "unused-listening-port"
port = 22
reason = "reached via the bastion"
expires = 2027-01-31

[[suppression]]
rule = "insecure-client-login"
match = { program = "/usr/bin/telnet" }
reason = "lab"
"""

HOSTILE_TEXT = [
    "\x1b]0;owned\x07", "\udcff", "\x00", "9" * 5000, "[" * 5000, "{" * 3000, "NaN",
    "1e999", "-1", "\u202e", "", " " * 100,
]  # fmt: skip


@dataclass
class Outcome:
    """What one corpus did."""

    cases: int = 0
    refused: int = 0
    crashes: list[str] = field(default_factory=list)
    clobbered: list[str] = field(default_factory=list)


# -- traces ---------------------------------------------------------------------------


def split_chunks(data: bytes) -> tuple[bytes, list[tuple[int, int, bytes, int]]]:
    """(file header, [(type, flags, raw payload, raw_len)]) of a well-formed trace."""
    head, pos, out = data[: FILE_HEADER.size], FILE_HEADER.size, []
    while pos + CHUNK_HEADER.size <= len(data):
        ctype, flags, _, stored, raw_len, _ = CHUNK_HEADER.unpack_from(data, pos)
        payload = data[pos + CHUNK_HEADER.size : pos + CHUNK_HEADER.size + stored]
        raw = zlib.decompress(payload) if flags & FLAG_ZLIB else payload
        out.append((ctype, flags, raw, raw_len))
        pos += CHUNK_HEADER.size + stored
    return head, out


def frame(ctype: int, raw: bytes, *, compress: bool, raw_len: int | None = None) -> bytes:
    """One CRC-valid chunk (``raw_len`` may lie)."""
    payload = zlib.compress(raw, 6) if compress else raw
    flags = FLAG_ZLIB if compress else 0
    announced = len(raw) if raw_len is None else raw_len
    head = CHUNK_HEADER.pack(ctype & 0xFF, flags, 0, len(payload), announced, 0)[:12]
    return head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload


def _hostile_json(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(9)
    if pick == 0 or depth > 3:
        return rng.choice(HOSTILE_TEXT)
    if pick == 1:
        return rng.choice([None, True, 1e30, -(2**70), float("nan"), float("inf"), 0])
    if pick == 2:
        return [_hostile_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = [
        "type", "fact", "stats", "window", "started_at_ns", "duration_s", "events",
        "ended_at_ns", "partial", "notices", "pid", "path", "modules", "format", "run_id",
    ]  # fmt: skip
    return {rng.choice(keys): _hostile_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def _mutate_json(rng: random.Random, raw: bytes) -> bytes:
    try:
        value = json.loads(raw.split(b"\n")[0])
    except ValueError:
        return raw
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        value[key] = _hostile_json(rng)
        if rng.random() < 0.3 and isinstance(value.get("window"), dict):
            value["window"][rng.choice(["started_at_ns", "duration_s"])] = _hostile_json(rng)
    else:
        value = _hostile_json(rng)
    return json.dumps(value).encode("utf-8", "surrogatepass")


def _flip(rng: random.Random, raw: bytes, n: int) -> bytes:
    buf = bytearray(raw)
    for _ in range(n):
        if buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def mutate_trace(rng: random.Random, seed: bytes) -> bytes:
    """One hostile trace derived from the valid ``seed``."""
    head, chunks = split_chunks(seed)
    how = rng.randrange(10)
    if how == 0:  # raw bit damage (the CRC catches it)
        return _flip(rng, seed, rng.randrange(1, 20))
    if how == 1:  # torn anywhere
        return seed[: rng.randrange(len(seed))]
    if how == 2:  # a bomb: a lying or extreme raw_len, or a huge ratio
        ctype = rng.choice([ChunkType.RECORDS, ChunkType.EVENTS, ChunkType.STRINGS, 99])
        body = b"\0" * rng.choice([1 << 10, 1 << 20, 8 << 20])
        bomb = frame(ctype, body, compress=True, raw_len=rng.choice([None, 1 << 31, 1 << 28]))
        return head + b"".join(frame(c, r, compress=False) for c, _, r, _ in chunks[:1]) + bomb * 3
    out = []
    for original_type, flags, original, _ in chunks:
        ctype, raw, compress = original_type, original, bool(flags & FLAG_ZLIB)
        if rng.random() < 0.35:
            if how in (3, 4) and ctype in (ChunkType.START, ChunkType.END, ChunkType.RECORDS):
                raw = _mutate_json(rng, raw)
            elif how == 5:
                raw = _flip(rng, raw, rng.randrange(1, 50))  # CRC-valid nonsense
            elif how == 6:
                ctype = rng.choice([1, 2, 3, 4, 5, 0, 200])
            elif how == 7 and len(raw) >= 8 and ctype == ChunkType.STRINGS:
                first, count = struct.unpack_from("<II", raw)
                first = rng.choice([first, 0, first + 1])
                count = rng.choice([count, 0, 2**32 - 1, count + 1])
                raw = struct.pack("<II", first, count) + raw[8:]
            elif how == 8:
                out.append(frame(ctype, raw, compress=compress))  # a duplicate
        out.append(frame(ctype, raw, compress=compress))
    if how == 9:
        rng.shuffle(out)
    version = head if rng.random() < 0.9 else FILE_HEADER.pack(MAGIC, rng.choice([0, 1, 2]),
                                                               rng.randrange(9), 0)  # fmt: skip
    return version + b"".join(out)


def exercise_trace(path: str) -> None:
    """Everything rba does with a trace it is given: index, stream, describe, replay and
    render (text and JSON). Raises only RbaError/TraceError when the trace is refused."""
    from behavior.commands.trace import render_info
    from behavior.formats.json_format import render_json
    from behavior.formats.terminal import for_terminal
    from behavior.formats.text import render_text
    from behavior.recording.describe import describe
    from behavior.recording.loading import load_recording
    from behavior.recording.replay import replay
    from probes.trace import count_events, open_trace

    count_events(open_trace(path))
    for_terminal(render_info(describe(path)))
    report = replay(load_recording(path), _Quiet())
    for_terminal(render_text(report))
    for_terminal(render_json(report))


class _Quiet:
    def progress(self, done: float, total: float, detail: str) -> None:
        pass

    def notice(self, message: str) -> None:
        pass


# -- text inputs (config, suppressions, cache) ----------------------------------------------


def mutate_text(rng: random.Random, seed: str) -> bytes:
    """A hostile variant of a TOML or JSON text, as bytes (not always UTF-8)."""
    how = rng.randrange(7)
    data = seed.encode()
    if how == 0:
        return _flip(rng, data, rng.randrange(1, 30))
    if how == 1:
        return data[: rng.randrange(len(data))]
    if how == 2:
        at = rng.randrange(len(data))
        return data[:at] + rng.choice(HOSTILE_TEXT).encode("utf-8", "surrogatepass") + data[at:]
    if how == 3:  # deep nesting
        depth = rng.choice([100, 1000, 100_000])
        return data + b"\nx = " + b"[" * depth + b"]" * depth + b"\n"
    if how == 4:
        return b"\xff\xfe" + data
    if how == 5:
        lines = seed.splitlines()
        rng.shuffle(lines)
        return "\n".join(lines).encode()
    return os.urandom(0) + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))


def cache_seed() -> str:
    """A real scan cache: /bin/true and /bin/ls scanned, as rba scan saves it."""
    from binanalysis.cache import FactsCache

    cache = FactsCache()
    from binanalysis import inspect_many

    inspect_many(["/bin/true", "/bin/ls"], cache, jobs=1)
    return cache.dumps()


def exercise_config(path: str) -> None:
    from behavior.daemon.config import load_config

    load_config(path)


def exercise_suppressions(path: str) -> None:
    from behavior.formats.suppressions import load_suppressions

    load_suppressions(path, frozenset({"unused-listening-port", "insecure-client-login"}))


def exercise_cache(path: str) -> None:
    """As rba scan reads its cache: bytes that are not UTF-8 are an unreadable cache."""
    from binanalysis.cache import FactsCache

    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            text = f.read()
        except UnicodeDecodeError as e:
            raise _RefusedError(str(e)) from e
    FactsCache.loads(text)


class _RefusedError(Exception):
    """A refusal of the harness's own (standing for rba's notice)."""


def refusals() -> tuple[type[BaseException], ...]:
    """The exceptions that are rba saying no, in one line."""
    from behavior.interface import RbaError
    from binanalysis.cache import CacheFormatError
    from probes.interface import ProbeError

    return (RbaError, ProbeError, CacheFormatError, _RefusedError)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


def run_corpus(
    name: str,
    cases: Iterator[bytes],
    exercise: Callable[[str], None],
    workdir: Path,
    victims: list[Path],
) -> Outcome:
    """Feed every case to ``exercise``; count refusals, crashes and clobbered files."""
    allowed = refusals()
    outcome = Outcome()
    before = {v: _digest(v) for v in victims}
    case_path = workdir / f"case.{name}"
    for i, data in enumerate(cases):
        case_path.write_bytes(data)
        outcome.cases += 1
        try:
            exercise(str(case_path))
        except allowed as e:
            outcome.refused += 1
            if "\n" in str(e) or not str(e):
                outcome.crashes.append(f"{name} #{i}: refusal not one line: {e!r}")
        except Exception as e:
            outcome.crashes.append(f"{name} #{i}: {type(e).__name__}: {e}"[:300])
        if case_path.read_bytes() != data:
            outcome.clobbered.append(f"{name} #{i}: the input itself changed")
    outcome.clobbered += [str(v) for v in victims if _digest(v) != before[v]]
    return outcome


def seed_trace(path: Path) -> bytes:
    """A valid trace with every chunk type: host and process facts, events of several
    kinds, loss counters and an end marker."""
    from behavior.facts.interface import HostFact, ProcessFact
    from behavior.recording.recorder import TraceRecorder
    from behavior.window.assess import AssessConfig, WindowEnd
    from probes.events import Kind, StringTable, empty
    from probes.interface import SourceStats

    host = HostFact(hostname="db1", kernel="6.1.0", netns=4026531840)
    strings = StringTable()
    recorder = TraceRecorder(str(path), purpose="capture")
    recorder.fact(host)
    recorder.begin(
        run_id="r1", host=host, started_at_ns=10**18, sources=("poll",), strings=strings,
        config=AssessConfig(duration_s=30),
    )  # fmt: skip
    batch = empty(6)
    batch["kind"] = [Kind.EXEC, Kind.EXEC, Kind.TCP_LISTEN, Kind.TCP_CONNECT, Kind.EXIT, 0]
    batch["pid"] = [100, 101, 100, 101, 100, 0]
    batch["ts_wall"] = 10**18 + 10**9
    batch["sport"] = [0, 0, 23, 40000, 0, 0]
    batch["dport"] = [0, 0, 0, 23, 0, 0]
    batch["comm"] = b"telnet"
    batch["str_a"] = strings.intern("/usr/bin/telnet")
    batch["str_b"] = strings.intern("telnet 203.0.113.5")
    recorder.events(batch)
    recorder.fact(ProcessFact(
        key="100@1", pid=100, ppid=1, uid=0, euid=0, exe="/usr/bin/telnet",
        cmdline=("telnet", "203.0.113.5"), script=None, modules=("/usr/bin/telnet",),
        exec_stack=False, seen_ns=1,
    ))  # fmt: skip
    recorder.stats({"poll": SourceStats(6, 0, ())})
    recorder.end(WindowEnd(
        ended_at_ns=10**18 + 30 * 10**9, partial=False, notices=("n",),
        source_stats={"poll": SourceStats(6, 1, ("gap",))}, sources=("poll",),
    ))  # fmt: skip
    recorder.close()
    return path.read_bytes()
