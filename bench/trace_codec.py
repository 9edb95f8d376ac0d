"""Which compression the trace's event chunks should use: size against speed.

    .venv/bin/python bench/trace_codec.py [--events 655360]

Encodes a realistic mix of events (bench/trace_workload.py) in 65,536-event chunks,
the writer's chunk size, with each candidate, and prints bytes/event, encode (capture
cost) and decode (replay cost) rates. Medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.trace_workload import generate
from probes.events import EVENT_DTYPE, EVENT_SIZE

CHUNK = 65536


def _shuffle(raw: bytes) -> bytes:
    n = len(raw) // EVENT_SIZE
    return np.ascontiguousarray(np.frombuffer(raw, np.uint8).reshape(n, EVENT_SIZE).T).tobytes()


def _unshuffle(raw: bytes) -> bytes:
    n = len(raw) // EVENT_SIZE
    cols = np.frombuffer(raw, np.uint8).reshape(EVENT_SIZE, n)
    return np.ascontiguousarray(cols.T).view(EVENT_DTYPE).tobytes()


def codecs() -> dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]]:
    out: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
        "none": (lambda b: b, lambda b: b)
    }
    for level in (1, 3, 6, 9):
        out[f"zlib-{level}"] = (lambda b, lv=level: zlib.compress(b, lv), zlib.decompress)
    out["shuffle+zlib-3"] = (
        lambda b: zlib.compress(_shuffle(b), 3),
        lambda b: _unshuffle(zlib.decompress(b)),
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10 * CHUNK)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ev = generate(args.events)
    chunks = [ev[i : i + CHUNK].tobytes() for i in range(0, len(ev), CHUNK)]
    print(f"{'codec':16s} {'bytes/event':>12s} {'encode Mev/s':>13s} {'decode Mev/s':>13s}")
    for name, (enc, dec) in codecs().items():
        enc_t, dec_t = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            packed = [enc(c) for c in chunks]
            enc_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            again = [dec(p) for p in packed]
            dec_t.append(time.perf_counter() - t0)
        assert again == chunks
        size = sum(map(len, packed)) / len(ev)
        print(
            f"{name:16s} {size:>12.1f} {len(ev) / statistics.median(enc_t) / 1e6:>13.2f} "
            f"{len(ev) / statistics.median(dec_t) / 1e6:>13.2f}"
        )


if __name__ == "__main__":
    main()
