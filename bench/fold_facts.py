"""Memory of a long window's process facts: many short-lived images of few programs
(a busy host execs all day). Each size runs in a fresh process; prints peak RSS and the
cost per image. Module lists are shared between images of one program.

    .venv/bin/python bench/fold_facts.py [--images 1e5,1e6]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from behavior.facts.interface import FactSet, ProcessFact

PROGRAMS = 50
LIBS_PER_PROGRAM = 30


def run_one(images: int) -> dict[str, float]:
    """Add ``images`` process facts (as the live gatherer or a replay would)."""
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    programs = [
        (f"/usr/bin/prog{i}", tuple(f"/usr/lib/lib{i}_{j}.so" for j in range(LIBS_PER_PROGRAM)))
        for i in range(PROGRAMS)
    ]
    facts = FactSet()
    start = time.perf_counter()
    for n in range(images):
        exe, libs = programs[n % PROGRAMS]
        # Built afresh per image, as /proc reads or trace records produce them.
        modules = tuple(sorted((exe, *(lib for lib in libs))))
        facts.add(
            ProcessFact(f"{n}@{n}", n, 1, 1000, 1000, exe, (exe, str(n)), None, modules, False, n)
        )
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"images": images, "seconds": seconds, "rss_mb": rss, "base_mb": base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", default="1e5,1e6")
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(int(args.child))))
        return
    print(f"{'images':>10} {'peak RSS MB':>12} {'bytes/image':>12} {'images/s':>10}")
    for size in (float(s) for s in args.images.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout)
        per_image = (r["rss_mb"] - r["base_mb"]) * 2**20 / r["images"]
        print(
            f"{int(r['images']):>10,} {r['rss_mb']:>12.0f} {per_image:>12.0f} "
            f"{r['images'] / r['seconds']:>10,.0f}"
        )


if __name__ == "__main__":
    main()
