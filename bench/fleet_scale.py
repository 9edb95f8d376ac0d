"""Fleet scale: Parquet bytes per finding, ``rba lake add`` of many reports, ``rba fleet``
over 10,000 hosts x 100 findings in DuckDB (peak RSS), and 100 traces replayed serially,
on a local pool and on a Dask LocalCluster.

    .venv/bin/python bench/fleet_scale.py [--hosts 10000] [--findings 100] [--add 1000]
                                          [--traces 100] [--repeat 3]

Synthetic hosts: each report has ``--findings`` findings in the JSON contract with real
fingerprints' shape: 60% libraries without stack cookies / RELRO / DEP (from a pool of
2,000 paths in 400 packages), 25% listeners, 15% cleartext clients. The peers measured in
the same run: the same findings as rba's own JSON reports and as OCSF JSON lines (bytes),
``rba lake add`` against writing the same reports as JSON files (time), and ``rba fleet``
against DuckDB answering the per-rule question from the JSON reports (time, RSS).
Commands run as separate processes; peak RSS is the child's ``ru_maxrss``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RBA = [sys.executable, "-m", "behavior"]
T0 = 1_764_547_200  # 2025-12-01T00:00:00Z

VULN = ("software-without-stack-cookies", "software-without-relro", "software-without-dep")


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


def host_report(h: int, findings: int, day: int = 0) -> dict[str, Any]:
    """A synthetic host's JSON report (the public contract) with ``findings`` findings."""
    rng = random.Random(h)
    host = f"host{h:05d}"
    machine = hashlib.sha256(host.encode()).hexdigest()[:32]
    end = T0 + day * 86400 + 900 + h % 3600
    items = []
    for k in range(findings):
        roll = k / findings
        if roll < 0.6:
            rule = VULN[k % 3]
            lib = rng.randrange(2000)
            path = f"/usr/lib/x86_64-linux-gnu/libvendor{lib}.so.{lib % 7}"
            evidence: dict[str, Any] = {
                "path": path, "package": f"vendor-pkg{lib % 400}", "format": "elf",
                "processes": [{"pid": rng.randrange(1, 60000), "exe": "/usr/sbin/daemon"}],
                "process_count": 1, "reason": "no __stack_chk_fail reference",
            }  # fmt: skip
        elif roll < 0.85:
            rule = "unused-listening-port"
            port = 1024 + k * 37 % 60000
            evidence = {
                "port": port, "bind_addresses": ["0.0.0.0"], "loopback_only": False,
                "process": {"pid": rng.randrange(1, 60000), "exe": "/usr/bin/python3",
                            "cmdline": "python3 -m http.server", "comm": "python3",
                            "user": "app", "uid": 1000},
                "sources": ["ebpf"], "listening_s": 900.0, "window_s": 900.0, "accepted": 0,
                "confidence": "normal",
            }  # fmt: skip
        else:
            rule = "insecure-client-general"
            evidence = {
                "process": {"pid": rng.randrange(1, 60000), "exe": "/usr/bin/curl",
                            "cmdline": "curl http://198.51.100.7/", "comm": "curl",
                            "user": "app", "uid": 1000},
                "pids": [rng.randrange(1, 60000)], "remote": {"address": "198.51.100.7",
                "port": 80 + k}, "transport": "tcp", "protocol": "http", "basis": "port",
                "netns": 4026531840, "sources": ["ebpf"],
            }  # fmt: skip
        fingerprint = hashlib.sha256(f"{machine}/{rule}/{k}".encode()).hexdigest()[:32]
        items.append({
            "rule_id": rule, "fingerprint": fingerprint, "title": rule.replace("-", " "),
            "severity": "Medium" if rule in VULN else "Low",
            "description": "synthetic", "recommendation": "synthetic", "evidence": evidence,
            "count": 1 + k % 5, "first_seen": _iso(end - 800), "last_seen": _iso(end - 10),
        })  # fmt: skip
    return {
        "schema_version": 1,
        "run": {
            "id": f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(end))}-{h:06x}",
            "host": host,
            "machine_id": machine,
            "started_at": _iso(end - 900),
            "ended_at": _iso(end),
            "duration_s": 900.0,
            "partial": False,
            "replayed": False,
            "sources": ["ebpf"],
            "events": 100000,
            "lost_events": 0,
            "rules": [],
            "notes": [],
        },
        "findings": items,
        "suppressed": [],
        "expired_suppressions": [],
        "timeline": None,
    }


def timed(argv: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, stdout) of ``argv`` run as a child process; the RSS is
    the child's own (``wait4``)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"{argv[2:5]} failed: {err.read().decode()[-400:]}")
    return seconds, usage.ru_maxrss / 1024, out.decode()


def parquet_bytes(lake: Path) -> int:
    return sum(p.stat().st_size for p in lake.rglob("*.parquet"))


def bytes_per_finding(tmp: Path, findings: int) -> None:
    from behavior.fleet.lake import add_reports

    reports = [host_report(h, findings) for h in range(200)]
    lake = tmp / "bytes"
    add_reports(str(lake), reports)
    n = 200 * findings
    report_json = sum(len(json.dumps(r, indent=2)) for r in reports)
    ocsf = sum(
        len(json.dumps({"finding": f, "run": r["run"]}, separators=(",", ":")))
        for r in reports
        for f in r["findings"]
    )
    print(f"\nBytes per finding ({n:,} findings, 200 hosts x {findings}; files per host run):")
    print(f"  {'lake Parquet (zstd), finding + run files':44} {parquet_bytes(lake) / n:8.0f}")
    print(f"  {'rba JSON reports (the peer, uncompressed)':44} {report_json / n:8.0f}")
    print(f"  {'one compact JSON line per finding (peer)':44} {ocsf / n:8.0f}")


def lake_add(tmp: Path, count: int, findings: int, repeat: int) -> None:
    files = []
    for h in range(count):
        path = tmp / f"r{h:05d}.json"
        path.write_text(json.dumps(host_report(h, findings), indent=2))
        files.append(str(path))
    add, again, copy = [], [], []
    for i in range(repeat):
        lake = tmp / f"add{i}"
        add.append(timed([*RBA, "lake", "add", str(lake), *files])[0])
        again.append(timed([*RBA, "lake", "add", str(lake), *files])[0])
        target = tmp / f"copy{i}"
        target.mkdir()
        script = "import shutil,sys; [shutil.copy(f, sys.argv[1]) for f in sys.argv[2:]]"
        copy.append(timed([sys.executable, "-c", script, str(target), *files])[0])
    n = count * findings
    print(f"\nrba lake add of {count:,} reports x {findings} findings ({n:,} findings), "
          f"median of {repeat}:")  # fmt: skip
    print(f"  {'rba lake add (new lake)':36} {statistics.median(add):7.2f} s  "
          f"{n / statistics.median(add):9,.0f} findings/s")  # fmt: skip
    print(f"  {'rba lake add again (all present)':36} {statistics.median(again):7.2f} s")
    print(f"  {'peer: copying the JSON files':36} {statistics.median(copy):7.2f} s")


def build_fleet(tmp: Path, hosts: int, findings: int) -> tuple[Path, float]:
    """A lake of ``hosts`` reports of ``findings`` each, written by add_reports."""
    from behavior.fleet.lake import add_reports

    lake = tmp / "fleet"
    t0 = time.perf_counter()
    for start in range(0, hosts, 500):
        add_reports(str(lake), (host_report(h, findings) for h in range(start, start + 500)))
    return lake, time.perf_counter() - t0


def compacted(lake: Path, tmp: Path) -> Path:
    """The same rows as one zstd Parquet file per source and partition (what a
    compaction job leaves), in the same layout."""
    import duckdb

    out = tmp / "compacted"
    con = duckdb.connect()
    for source in lake.joinpath("ext").iterdir():
        for part in sorted({p.parent for p in source.rglob("*.parquet")}):
            target = out / part.relative_to(lake)
            target.mkdir(parents=True)
            con.execute(
                f"COPY (SELECT * FROM read_parquet('{part}/*.parquet') ORDER BY time) "
                f"TO '{target}/compacted.parquet' (FORMAT parquet, COMPRESSION zstd)"
            )
    return out


def fleet_query(tmp: Path, hosts: int, findings: int, repeat: int, lake: Path | None) -> None:
    built = 0.0
    if lake is None:
        lake, built = build_fleet(tmp, hosts, findings)
    rows = hosts * findings
    files = sum(1 for _ in lake.rglob("*.parquet"))
    small = tmp / "compacted"
    compact = compacted(lake, tmp) if not small.exists() else small
    print(f"\nrba fleet over {hosts:,} hosts x {findings} findings ({rows:,} rows; "
          f"{parquet_bytes(lake) / 2**20:.0f} MiB in {files:,} files"
          + (f", built by add_reports in {built:.0f} s" if built else "")
          + f"), median of {repeat}:")  # fmt: skip
    argv = ["fleet", "--since", "2025-11-30", "--format", "json"]
    for label, where in (("rba fleet, the lake as written", lake),
                         ("rba fleet, the same rows compacted", compact)):  # fmt: skip
        runs = [timed([*RBA, argv[0], str(where), *argv[1:]]) for _ in range(repeat)]
        assert json.loads(runs[0][2])["hosts"] == hosts
        print(f"  {label:38} {statistics.median(r[0] for r in runs):7.2f} s  "
              f"peak RSS {max(r[1] for r in runs):6.0f} MiB")  # fmt: skip


def replay_traces(tmp: Path, traces: int, repeat: int) -> None:
    import distributed

    from tests.fleet.traces import write_traces

    paths = [str(p) for p in write_traces(tmp, traces)]
    results: dict[str, list[float]] = {"serial (--jobs 1)": [], "local pool (--jobs 2)": [],
                                       "Dask LocalCluster, 2 workers": []}  # fmt: skip
    for i in range(repeat):
        results["serial (--jobs 1)"].append(
            timed([*RBA, "replay", *paths, "--lake", str(tmp / f"s{i}"), "--jobs", "1"])[0]
        )
        results["local pool (--jobs 2)"].append(
            timed([*RBA, "replay", *paths, "--lake", str(tmp / f"p{i}"), "--jobs", "2"])[0]
        )
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
            silence_logs=50,
        ) as cluster:  # fmt: skip
            argv = [*RBA, "replay", *paths, "--lake", str(tmp / f"d{i}"), "--dask",
                    cluster.scheduler_address]  # fmt: skip
            results["Dask LocalCluster, 2 workers"].append(timed(argv)[0])
    serial = statistics.median(results["serial (--jobs 1)"])
    print(f"\n{traces} traces replayed into a lake (whole command), median of {repeat}:")
    for label, runs in results.items():
        median = statistics.median(runs)
        print(f"  {label:32} {median:7.2f} s  {traces / median:6.1f} traces/s  "
              f"x{serial / median:4.2f} vs serial")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--findings", type=int, default=100)
    parser.add_argument("--add", type=int, default=1000)
    parser.add_argument("--traces", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("bytes", "add", "fleet", "replay"))
    parser.add_argument("--lake", type=Path, help="fleet: an already built lake of --hosts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rba-fleet-bench-") as name:
        tmp = Path(name)
        steps = {
            "bytes": lambda: bytes_per_finding(tmp, args.findings),
            "add": lambda: lake_add(tmp, args.add, args.findings, args.repeat),
            "fleet": lambda: fleet_query(tmp, args.hosts, args.findings, args.repeat, args.lake),
            "replay": lambda: replay_traces(tmp, args.traces, args.repeat),
        }
        for key, step in steps.items():
            if args.only in (None, key):
                step()


if __name__ == "__main__":
    main()
