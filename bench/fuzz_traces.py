"""Long fuzzing of the trace reader, and the cost of the hostile trace corpus.

    .venv/bin/python bench/fuzz_traces.py [--cases 20000] [--seed 1]

Part 1 feeds ``--cases`` fixed-seed hostile traces (tests/faults/fuzz.py: CRC-valid chunk
mutations, bombs, torn, reordered and re-versioned files) to everything rba does with a
trace (index, stream, trace info, replay, text and JSON rendering); one case in 25 also
goes through the CLI onto a symlink planted in a world-writable directory. It prints the
cases tried, the refusals, the crashes (must be 0) and the files clobbered (must be 0).

Part 2 runs ``rba trace info`` and ``rba replay`` on each file of the hostile corpus (the
bombs of issue 12, and files built at every decoding limit) in a subprocess, and prints
its wall time and peak RSS (wait4), next to the same commands on a valid trace (the
peer) measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from probes.trace.format import (  # noqa: E402
    CHUNK_HEADER,
    EVENTS_PER_CHUNK,
    FILE_HEADER,
    FLAG_ZLIB,
    MAGIC,
    MAX_JSON_CHUNK,
    MAX_RATIO,
    ChunkType,
)
from tests.faults import fuzz  # noqa: E402

RBA = [sys.executable, "-m", "behavior"]
COMMANDS = (
    ("trace info", ["trace", "info", "TRACE"]),
    ("replay", ["replay", "TRACE", "--format", "json"]),
)


def _chunk(ctype: int, stored: bytes, raw_len: int, flags: int) -> bytes:
    head = CHUNK_HEADER.pack(ctype, flags, 0, len(stored), raw_len, 0)[:12]
    return head + struct.pack("<I", zlib.crc32(stored, zlib.crc32(head))) + stored


def _packed(ctype: int, raw: bytes) -> bytes:
    return _chunk(ctype, zlib.compress(raw, 9), len(raw), FLAG_ZLIB)


def _start(seed: bytes) -> bytes:
    """The file header and START chunk of the valid seed trace."""
    _, _, _, stored, _, _ = CHUNK_HEADER.unpack_from(seed, FILE_HEADER.size)
    return seed[: FILE_HEADER.size + CHUNK_HEADER.size + stored]


def _within_ratio(rng: random.Random, size: int, alphabet: bytes) -> bytes:
    """``size`` bytes drawn from ``alphabet``, noisy enough to stay under MAX_RATIO."""
    return bytes(rng.choice(alphabet) for _ in range(size))


def hostile_corpus(seed: bytes, rng: random.Random) -> dict[str, bytes]:
    """Each file is CRC-valid; only the limits stand between it and the machine."""
    start = _start(seed)
    line = b'{"type":"fact","fact":[' + b"[]," * 20000 + b"[]]}\n"
    packer, parts, raw = zlib.compressobj(9), [], 0
    while raw < (256 << 20) - len(line):
        parts.append(packer.compress(line))
        raw += len(line)
    parts.append(packer.flush())
    records_bomb = _chunk(ChunkType.RECORDS, b"".join(parts), raw, FLAG_ZLIB)
    zeros = bytes(EVENTS_PER_CHUNK * 120)
    cpu_bomb = _packed(ChunkType.EVENTS, zeros)
    # Events at the ratio limit: a 1-in-40 sprinkling of noise keeps zlib near 60:1.
    noisy = bytearray(zeros)
    for i in range(0, len(noisy), 40):
        noisy[i] = rng.randrange(256)
    at_ratio = _packed(ChunkType.EVENTS, bytes(noisy))
    # Records at the limits: containers chosen at random so they compress under 64:1.
    body = b"".join(rng.choice([b"[],", b"{},", b"[0],", b"{}, "]) for _ in range(4_000_000))
    items_line = b'{"type":"fact","fact":[' + body[: MAX_JSON_CHUNK - 64].rsplit(b",", 1)[0] + b"]}"
    records_at_limit = _packed(ChunkType.RECORDS, items_line)
    count = (MAX_JSON_CHUNK - 8) // 4 - 16
    strings_at_limit = _chunk(
        ChunkType.STRINGS, struct.pack("<II", 1, count) + bytes(4 * count), 8 + 4 * count, 0
    )
    deep = FILE_HEADER.pack(MAGIC, 1, 1, 0) + _chunk(
        ChunkType.START, b"[" * 100_000 + b"]" * 100_000, 200_000, 0
    )
    return {
        "peer: the valid seed trace": seed,
        "records bomb, 330 KB -> 256 MiB (issue)": start + records_bomb,
        "events zeros 230:1, 36 MB (issue)": start + cpu_bomb * (36_000_000 // len(cpu_bomb)),
        f"events at {MAX_RATIO}:1 limit, 36 MB": start + at_ratio * (36_000_000 // len(at_ratio)),
        "records at the value limit": start + records_at_limit * 8,
        "strings at the count limit": start + strings_at_limit * 5,
        "START nested 100,000 deep": deep,
    }


# A small launcher waits for rba: a child forked from this (large) process would report
# this process's RSS as its own peak.
LAUNCHER = """
import os, sys, time
began = time.monotonic()
quiet = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in (1, 2)]
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, file_actions=quiet)
_, status, usage = os.wait4(pid, 0)
print(time.monotonic() - began, usage.ru_maxrss // 1024, os.waitstatus_to_exitcode(status))
"""


def measure(args: list[str]) -> tuple[float, int, int]:
    """(seconds, peak RSS in MiB, exit status) of one rba run."""
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *RBA, *args], cwd=REPO, capture_output=True,
        text=True, check=True,
    ).stdout.split()  # fmt: skip
    return float(out[0]), int(out[1]), int(out[2])


def fuzz_part(cases: int, seed_value: int, work: Path) -> fuzz.Outcome:
    from behavior.commands.cli import main

    seed = fuzz.seed_trace(work / "seed.rbt")
    victim = work / "victim"
    victim.write_text("must not change")
    shared = work / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    link = shared / "report.txt"
    link.symlink_to(victim)
    if os.geteuid() == 0:
        os.lchown(link, 65534, 65534)
    rng = random.Random(seed_value)
    counter = iter(range(cases))

    def exercise(path: str) -> None:
        fuzz.exercise_trace(path)
        if next(counter) % 25 == 0:
            with contextlib.redirect_stderr(io.StringIO()):
                if main(["replay", path, "--output", str(link)]) != 2:
                    raise AssertionError("replay wrote through a planted symlink")

    cases_iter = (fuzz.mutate_trace(rng, seed) for _ in range(cases))
    return fuzz.run_corpus("trace", cases_iter, exercise, work, [victim, work / "seed.rbt"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rba-fuzz-"))
    try:
        began = time.monotonic()
        outcome = fuzz_part(args.cases, args.seed, work)
        took = time.monotonic() - began
        print(
            f"fuzz: {outcome.cases} cases in {took:.0f} s, {outcome.refused} refused in one "
            f"line, {len(outcome.crashes)} crashes, {len(outcome.clobbered)} files clobbered"
        )
        for crash in outcome.crashes[:20]:
            print(f"  crash: {crash}")
        print()
        corpus = hostile_corpus((work / "seed.rbt").read_bytes(), random.Random(args.seed))
        print(f"{'hostile trace':44} {'size':>9} {'command':>10} {'time s':>7} "
              f"{'peak RSS MiB':>12} {'rc':>3}")  # fmt: skip
        peak = 0
        for name, data in corpus.items():
            path = work / "hostile.rbt"
            path.write_bytes(data)
            for label, command in COMMANDS:
                seconds, rss, rc = measure([str(path) if a == "TRACE" else a for a in command])
                if not name.startswith("peer"):
                    peak = max(peak, rss)
                print(f"{name:44} {len(data) / 1e6:8.2f}M {label:>10} {seconds:7.2f} "
                      f"{rss:12d} {rc:3d}")  # fmt: skip
        print(f"\npeak RSS over the hostile corpus: {peak} MiB")
        return 1 if outcome.crashes or outcome.clobbered else 0
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    sys.exit(main())
