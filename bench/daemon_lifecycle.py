"""The daemon's operational latencies, on a real daemon with real probes (root).

    .venv/bin/python bench/daemon_lifecycle.py [--repeat 5] [--requests 200]

Per repeat, a fresh daemon (the systemd unit's capability set, as in the tests):
- ready: from exec to the control socket answering;
- status: round trip of a ``status`` request (median and p95 over --requests);
- first run: ``run`` until the reply, which comes once the probes are attached
  (opens the shared session: eBPF programs loaded, polling snapshot taken);
- joining run: the same while a session is already open (a fresh snapshot only);
- SIGTERM: from the signal to exit 0 with those two runs collecting (both partial
  reports written).
Prints medians over --repeat.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.daemon.daemon_proc import DaemonProcess

TEMPLATE = '[[template]]\nname = "long"\nduration = "10m"\n'


def one_daemon(workdir: Path, requests: int) -> dict[str, float]:
    daemon = DaemonProcess(workdir, TEMPLATE)
    try:
        began = time.perf_counter()
        daemon.start()
        out = {"ready_s": time.perf_counter() - began}
        rtts = []
        for _ in range(requests):
            t = time.perf_counter()
            daemon.status()
            rtts.append(time.perf_counter() - t)
        out["status_median_ms"] = statistics.median(rtts) * 1e3
        out["status_p95_ms"] = sorted(rtts)[int(0.95 * len(rtts))] * 1e3
        t = time.perf_counter()
        first = daemon.request("run", template="long")
        out["first_run_s"] = time.perf_counter() - t
        t = time.perf_counter()
        second = daemon.request("run", template="long")
        out["joining_run_s"] = time.perf_counter() - t
        time.sleep(1.0)
        t = time.perf_counter()
        daemon.signal(signal.SIGTERM)
        code = daemon.wait_exit(timeout=30)
        out["sigterm_exit_s"] = time.perf_counter() - t
        for run_id in (first, second):
            if code != 0 or not (daemon.state_dir / "runs" / run_id / "report.json").exists():
                raise SystemExit(f"no partial report for {run_id} (exit {code}): {daemon.log()}")
        return out
    finally:
        daemon.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    results: list[dict[str, float]] = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="rba-bench-daemon-") as tmp:
            results.append(one_daemon(Path(tmp), args.requests))
        print(f"repeat {i + 1}/{args.repeat} done", file=sys.stderr)
    print(f"{'measure':<22} {'median':>10}")
    for key in results[0]:
        unit = "ms" if key.endswith("_ms") else "s"
        value = statistics.median(r[key] for r in results)
        print(f"{key:<22} {value:>9.{1 if unit == 'ms' else 2}f}{unit}")


if __name__ == "__main__":
    main()
