"""``rba scan``: DEP, stack cookies, ASLR and RELRO of ELF/PE files or running processes.

Start-up matters here (a warm scan of /usr/bin takes ~70 ms), so this module imports only
light standard modules at load time; everything else is imported inside :func:`run`
(probes.procfs only for ``--pid`` and ``--all-processes``). A warm scan never imports the
parsers (nor multiprocessing, nor numpy): it stats each file and finds it in the
persistent cache.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from behavior.formats.scan import ScanReport, Target, render_json, render_text

if TYPE_CHECKING:
    from behavior.interface import Observer
    from binanalysis import BinaryFacts, BinaryReadError, FactsCache

CACHE_FILE_NAME = "binary-facts.json"
MAX_CACHE_BYTES = 256 * 1024 * 1024  # 200,000 entries of a few hundred bytes, with room


def default_cache_path() -> str:
    """``$XDG_CACHE_HOME/rba/binary-facts.json``, else ``~/.cache/rba/binary-facts.json``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rba", CACHE_FILE_NAME)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rba scan``."""
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files (or, with -r, dirs)")
    parser.add_argument("-r", "--recursive", action="store_true", help="descend directories")
    parser.add_argument(
        "--format", choices=("text", "json"), type=str.lower, default="text", help="report format"
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report here (mode 0600)")
    parser.add_argument(
        "--jobs", type=int, default=None, metavar="N", help="worker processes (default: CPUs)"
    )
    parser.add_argument(
        "--pid", type=int, action="append", default=[], metavar="PID",
        help="scan this process's executable and mapped files (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--all-processes", action="store_true", help="scan every running process (like "
        "checksec --proc-all)",
    )  # fmt: skip
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache", metavar="FILE", default=None,
        help=f"persistent facts cache (default: {default_cache_path()})",
    )  # fmt: skip
    cache.add_argument("--no-cache", action="store_true", help="use no persistent cache")


@dataclass
class Collected:
    """What the inputs expanded to, plus what could not be looked at."""

    targets: list[Target] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    explicit: set[str] = field(default_factory=set)  # paths named on the command line
    gaps: list[str] = field(default_factory=list)  # processes we could not read
    by_path: dict[str, Target] = field(default_factory=dict)  # process targets, deduplicated
    own_mount_ns: int | None = None


def run(args: argparse.Namespace) -> int:
    """Run ``rba scan``."""
    from behavior.commands.progress import TerminalObserver
    from behavior.formats.output import emit
    from behavior.interface import UsageError
    from binanalysis import inspect_many

    if not args.paths and not args.pid and not args.all_processes:
        raise UsageError("give at least one PATH, --pid PID or --all-processes")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {args.jobs}")
    observer = TerminalObserver(quiet=args.quiet)
    collected = Collected()
    for path in args.paths:
        _collect_path(path, args.recursive, collected)
    pids: list[int] = []
    if args.all_processes or args.pid:  # only process scans pay for probes.procfs
        from probes import procfs

        pids = procfs.pids() if args.all_processes else args.pid
        collected.own_mount_ns = _mount_ns("self")
    for pid in pids:
        _collect_process(pid, collected, explicit=not args.all_processes)
    cache_path = None if args.no_cache else (args.cache or default_cache_path())
    cache = _load_cache(cache_path, observer)

    def progress(done: int, total: int) -> None:
        observer.progress(done, total, f"scanned {done}/{total} files")

    open_paths = [t.open_path for t in collected.targets]
    results = inspect_many(open_paths, cache, jobs=args.jobs, progress=progress)
    observer.clear()
    if cache_path and cache.changed:
        _save_cache(cache, cache_path, observer)
    for gap in collected.gaps:
        observer.notice(gap)
    report = build_report(collected, results)
    to_tty = not args.output and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    text = render_json(report) if args.format == "json" else render_text(report, color=to_tty)
    emit(text, args.output, colors=to_tty)
    return 0


# ---------------------------------------------------------------- inputs


def _collect_path(path: str, recursive: bool, out: Collected) -> None:
    from behavior.interface import UsageError

    try:
        os.lstat(path)
    except FileNotFoundError as e:
        raise UsageError(f"no such file or directory: {path}") from e
    except OSError as e:
        raise UsageError(f"cannot access {path}: {e.strerror}") from e
    if os.path.isdir(path):
        if not recursive:
            raise UsageError(f"{path} is a directory (use --recursive)")
        _walk(path, out)
        return
    out.explicit.add(path)
    out.targets.append(Target(path, path))


# Kernel pseudo-filesystems hold no programs, and walking them is slow or endless.
PSEUDO_FS = {
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs",
    "securityfs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs",
    "binfmt_misc", "efivarfs", "rpc_pipefs", "nsfs",
}  # fmt: skip


def _pseudo_mounts() -> set[str]:
    """Mount points of kernel pseudo-filesystems, from /proc/self/mountinfo."""
    found: set[str] = set()
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        before, _sep, after = line.partition(" - ")
        fields = before.split()
        if len(fields) >= 5 and after.split(" ", 1)[0] in PSEUDO_FS:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            found.add(point)
    return found


def _walk(top: str, out: Collected) -> None:
    """Regular files below ``top`` (symlinks to files included, symlinked dirs not followed).

    Mounted pseudo-filesystems (/proc, /sys, /dev, ...) below ``top`` are skipped with a
    notice; name one as ``top`` to scan it anyway."""
    pseudo = _pseudo_mounts()
    stack = [top]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as e:
            out.unreadable.append((directory, f"cannot list: {e.strerror or e}"))
            continue
        subdirs = []
        dir_dev = _device(directory)
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if os.path.abspath(entry.path) in pseudo:
                        out.gaps.append(f"skipped {entry.path}: a kernel pseudo-filesystem")
                        continue
                    subdirs.append(entry.path)
                elif entry.is_file():
                    identity = _identity(entry, dir_dev)
                    out.targets.append(Target(entry.path, entry.path, identity=identity))
            except OSError as e:
                out.unreadable.append((entry.path, f"cannot stat: {e.strerror or e}"))
        stack.extend(reversed(subdirs))


def _device(directory: str) -> int | None:
    try:
        return os.stat(directory).st_dev
    except OSError:
        return None


def _identity(entry: os.DirEntry[str], dir_dev: int | None) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file an entry names, at no extra system call: readdir gives
    the inode, and is_file() already stat()ed what a symlink points to."""
    if entry.is_symlink():
        st = entry.stat()
        return st.st_dev, st.st_ino
    return None if dir_dev is None else (dir_dev, entry.inode())


def _collect_process(pid: int, out: Collected, *, explicit: bool) -> None:
    """The executable and file-backed mappings of ``pid``. Vanished processes are skipped
    (an error only for a pid the user named); denied reads are stated as gaps."""
    from behavior.interface import UsageError
    from probes import procfs

    try:
        exe = procfs.read_exe(pid)
        mapped = procfs.read_mapped_files(pid)
    except procfs.AccessDeniedError:
        out.gaps.append(f"pid {pid}: executable and maps not readable (permission denied)")
        return
    except procfs.ProcfsError as e:
        if not explicit:
            return  # gone meanwhile, or a kernel thread (no exe)
        if not os.path.exists(f"{procfs.PROC}/{pid}"):
            raise UsageError(f"no such process: {pid}") from e
        out.gaps.append(f"pid {pid}: no executable (a kernel thread, or exiting)")
        return
    files = {exe: f"{procfs.PROC}/{pid}/exe"}  # name -> a /proc link reaching the file
    for name, link in mapped.items():
        files.setdefault(name, link)
    # In another mount namespace (a container) the same path names another file: go
    # through the process's own root, and show that path so the rows stay distinct.
    root = procfs.process_root(pid) if _mount_ns(pid) not in (None, out.own_mount_ns) else ""
    for name, link in files.items():
        shown = root + name
        # A file replaced on disk (an upgraded library) is still readable through /proc.
        open_path = link if name.endswith(" (deleted)") or (root and name == exe) else shown
        target = out.by_path.get(shown)
        if target is None:
            target = out.by_path[shown] = Target(shown, open_path)
            out.targets.append(target)
        target.pids.append(pid)


def _mount_ns(pid: int | str) -> int | None:
    from probes import procfs

    try:
        return procfs.namespace_inode(pid, "mnt")
    except procfs.ProcfsError:
        return None


# ---------------------------------------------------------------- cache file


def _load_cache(path: str | None, observer: Observer) -> FactsCache:
    from binanalysis import CacheFormatError, FactsCache

    if path is None:
        return FactsCache()
    from probes.reading import FileReadError, read_small_file

    try:
        text = read_small_file(path, MAX_CACHE_BYTES).decode("utf-8")
    except FileReadError as e:
        if not e.missing:
            observer.notice(f"ignoring unreadable cache {e}")
        return FactsCache()
    except UnicodeDecodeError as e:
        observer.notice(f"ignoring unreadable cache {path}: {e}")
        return FactsCache()
    try:
        return FactsCache.loads(text)
    except CacheFormatError as e:
        observer.notice(f"ignoring cache {path}: {e}")
        return FactsCache()


def _save_cache(cache: FactsCache, path: str, observer: Observer) -> None:
    from behavior.formats.output import write_atomic
    from behavior.interface import UsageError

    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        write_atomic(path, cache.dumps())
    except (OSError, UsageError) as e:
        observer.notice(f"cache not saved: {e}")


def build_report(collected: Collected, results: list[BinaryFacts | BinaryReadError]) -> ScanReport:
    """Pair targets with results; non-ELF/PE files found by walking or in maps are skipped."""
    from binanalysis import BinaryReadError, FileFormat

    report = ScanReport()
    report.unreadable = [(Target(p, p), reason) for p, reason in collected.unreadable]
    for target, result in zip(collected.targets, results):
        if isinstance(result, BinaryReadError):
            report.unreadable.append((target, str(result)))
        elif result.format is FileFormat.OTHER and target.path not in collected.explicit:
            report.skipped_other += 1
        else:
            report.rows.append((target, result.with_path(target.path)))
    return report
