"""Which OS package owns a file: the dpkg database (and rpm's, where present), read once.

dpkg lists each package's files in ``/var/lib/dpkg/info/<pkg>[:arch].list``. Those paths
are as packaged (``/lib/x86_64-linux-gnu/libc.so.6``) while the kernel reports real
paths (``/usr/lib/...`` on merged-/usr systems), so entries are indexed under the real
path of their directory. Where rpm is installed and has a database, one ``rpm -qa``
lists every file of every package: one process for the whole host, never one per file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from probes import procfs

DPKG_INFO = Path("/var/lib/dpkg/info")
RPM_DB_DIRS = (Path("/var/lib/rpm"), Path("/usr/lib/sysimage/rpm"))
RPM_TIMEOUT_S = 120


class PackageIndex:
    """A map from a file's real path to the name of the package that owns it."""

    def __init__(self, owners: dict[str, str] | None = None) -> None:
        self._owners = owners or {}

    def __len__(self) -> int:
        return len(self._owners)

    def owner(self, path: str) -> str | None:
        """The owning package of ``path`` (a real path), or None when unpackaged."""
        found = self._owners.get(path)
        if found is None:
            found = self._owners.get(_canonical(path, {}))
        return found

    @classmethod
    def load(cls, dpkg_info: Path = DPKG_INFO, *, with_rpm: bool = True) -> PackageIndex:
        """Read the dpkg database (and rpm's when present). Unreadable parts are skipped."""
        owners: dict[str, str] = {}
        real_dirs: dict[str, str] = {}
        for package, path in _dpkg_entries(dpkg_info):
            owners.setdefault(_canonical(path, real_dirs), package)
        if with_rpm:
            for package, path in _rpm_entries():
                owners.setdefault(_canonical(path, real_dirs), package)
        return cls(owners)

    @classmethod
    def load_in_root(cls, root: str) -> PackageIndex:
        """The dpkg database of another root (a container's ``/proc/PID/root``), its
        paths resolved inside that root. An image without dpkg gives an empty index."""
        owners: dict[str, str] = {}
        real_dirs: dict[str, str] = {}
        try:
            info = root + procfs.realpath_in_root(root, str(DPKG_INFO))
        except (OSError, procfs.ProcfsError):
            return cls(owners)
        for package, path in _dpkg_entries(Path(info)):
            owners.setdefault(_canonical(path, real_dirs, root), package)
        return cls(owners)


def _canonical(path: str, real_dirs: dict[str, str], root: str = "") -> str:
    """``path`` with its directory resolved through symlinks (cached per directory),
    inside ``root`` when one is given."""
    directory, name = os.path.split(path)
    real = real_dirs.get(directory)
    if real is None:
        real = _real_dir(directory, root) if directory else directory
        real_dirs[directory] = real
    return os.path.join(real, name)


def _real_dir(directory: str, root: str) -> str:
    if not root:
        return os.path.realpath(directory)
    try:
        return procfs.realpath_in_root(root, directory)
    except (OSError, procfs.ProcfsError):
        return directory


def _dpkg_entries(info: Path) -> Iterator[tuple[str, str]]:
    try:
        lists = sorted(info.glob("*.list"))
    except OSError:
        return
    for list_file in lists:
        package = list_file.name[: -len(".list")].split(":", 1)[0]
        try:
            text = list_file.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("/") and line != "/.":
                yield package, line


def _rpm_entries() -> Iterator[tuple[str, str]]:
    rpm = shutil.which("rpm")
    if rpm is None or not any(d.is_dir() and any(d.iterdir()) for d in RPM_DB_DIRS if d.exists()):
        return
    try:
        out = subprocess.run(
            [rpm, "-qa", "--qf", "[%{FILENAMES}\\t%{NAME}\\n]"],
            capture_output=True,
            text=True,
            timeout=RPM_TIMEOUT_S,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return
    for line in out.splitlines():
        path, _, package = line.partition("\t")
        if path.startswith("/") and package:
            yield package, path
