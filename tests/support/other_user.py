"""Running rba's code as another user (``nobody``) wherever the clone lives.

A clone in ``/root`` (mode 0700) is unreadable by other users, and so is a venv inside it.
:class:`OtherUserPython` copies what such a user needs into a world-readable temporary
directory: rba's packages, and every dependency installed in the venv or where that user
cannot read it; the interpreter is the real one the venv links to (``/usr/bin/python3`` on
Debian), so the copy is what the venv's Python would import.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tests.conftest import REPO

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
PACKAGES = ("behavior", "probes", "binanalysis")
DEPENDENCIES = ("numpy", "psutil", "pyelftools", "pefile", "tomli")


def world_readable(path: Path) -> bool:
    """Whether any user can reach ``path``: every parent searchable, the path readable."""
    path = path.resolve()
    for parent in path.parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IROTH)


class OtherUserPython:
    """A copy of rba (and its hidden dependencies) another user can import; remove with
    :meth:`close`."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rba-other-user-"))
        self.root.chmod(0o755)
        self.interpreter = os.path.realpath(sys.executable)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name in PACKAGES:
            shutil.copytree(REPO / name, self.root / name, ignore=ignore)
        self.copied = [name for name in DEPENDENCIES if self._copy_if_hidden(name)]
        for dirpath, dirnames, filenames in os.walk(self.root):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o644)

    def _copy_if_hidden(self, distribution: str) -> bool:
        try:
            dist = importlib.metadata.distribution(distribution)
        except importlib.metadata.PackageNotFoundError:
            return False
        base = Path(str(dist.locate_file(""))).resolve()
        in_venv = sys.prefix != sys.base_prefix and base.is_relative_to(Path(sys.prefix).resolve())
        if world_readable(base) and not in_venv:  # the plain interpreter finds it
            return False
        for entry in dist.files or []:
            source = Path(str(dist.locate_file(entry)))
            if source.is_file() and ".." not in entry.parts and "__pycache__" not in entry.parts:
                target = self.root / entry
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        return True

    def argv(self, *args: str) -> list[str]:
        """``setpriv`` to nobody, then this interpreter with ``args``."""
        return [*AS_NOBODY, self.interpreter, *args]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A minimal environment whose PYTHONPATH is the copy."""
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": str(self.root)}
        env.update(extra or {})
        return env

    def close(self) -> None:
        """Remove the copy."""
        shutil.rmtree(self.root, ignore_errors=True)
