"""Reading one process from ``/proc`` while it lives: executable, command line, uids,
memory-mapped modules and, for interpreters, the script they run."""

from __future__ import annotations

import os
import re
import stat
import sys
from dataclasses import dataclass

_INTERPRETER = re.compile(
    r"^(python[0-9.]*|pypy[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*|lua[0-9.]*|"
    r"node|nodejs|tclsh[0-9.]*|wish[0-9.]*|Rscript|"
    r"sh|bash|dash|zsh|ksh|mksh|ash|busybox|fish|csh|tcsh)$"
)
# Options after which there is no script (code given inline, or a module name).
_NO_SCRIPT = frozenset({"-c", "-e", "-E", "-m", "-p", "--eval", "--print", "--command"})
# Options that take the next word as their argument.
_WITH_ARGUMENT = frozenset({"-W", "-X", "-o", "-O", "+O", "-r", "--require", "-I", "-x"})


@dataclass(frozen=True)
class MapsInfo:
    """What a memory map says: executable file-backed mappings and the stack's mode."""

    modules: tuple[str, ...]
    exec_stack: bool


def read_exe(pid: int) -> str:
    """The real path of the process's executable. Raises OSError."""
    return os.readlink(f"/proc/{pid}/exe")


def read_cmdline(pid: int) -> tuple[str, ...]:
    """argv of the process ('' words dropped). Raises OSError."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        raw = f.read()
    return tuple(w.decode("utf-8", "replace") for w in raw.split(b"\0") if w)


def read_ids(pid: int) -> tuple[int, int, int]:
    """(ppid, real uid, effective uid) from /proc/<pid>/status. Raises OSError."""
    ppid = uid = euid = 0
    with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("PPid:"):
                ppid = int(line.split()[1])
            elif line.startswith("Uid:"):
                fields = line.split()
                uid, euid = int(fields[1]), int(fields[2])
                break
    return ppid, uid, euid


def parse_maps(text: str) -> MapsInfo:
    """Executable file-backed mappings (real paths) and whether [stack] is executable."""
    modules: dict[str, None] = {}
    exec_stack = False
    for line in text.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 6:
            continue
        perms, name = fields[1], fields[5]
        if name == "[stack]":
            exec_stack = exec_stack or "x" in perms
        elif "x" in perms and name.startswith("/") and not name.endswith(" (deleted)"):
            modules[sys.intern(name)] = None
    return MapsInfo(tuple(modules), exec_stack)


def read_maps(pid: int) -> MapsInfo:
    """The process's memory map. Raises OSError (PermissionError when not allowed)."""
    with open(f"/proc/{pid}/maps", encoding="utf-8", errors="surrogateescape") as f:
        return parse_maps(f.read())


def script_argument(exe: str, argv: tuple[str, ...]) -> str | None:
    """The script word of an interpreter's command line (unresolved), or None."""
    if not _INTERPRETER.match(os.path.basename(exe)):
        return None
    words = list(argv[1:])
    if os.path.basename(exe) == "busybox" and words:
        words = words[1:]  # busybox sh script.sh: the applet name comes first
    skip_next = False
    for i, word in enumerate(words):
        if skip_next:
            skip_next = False
            continue
        if word == "--":
            return words[i + 1] if i + 1 < len(words) else None
        if word in _NO_SCRIPT:
            return None
        if word in _WITH_ARGUMENT:
            skip_next = True
            continue
        if word.startswith(("-", "+")):
            continue
        return word
    return None


def resolve_script(pid: int, word: str) -> str | None:
    """The real path of a script word, relative to the process's cwd; None unless it is
    a regular file."""
    path = word if os.path.isabs(word) else os.path.join(f"/proc/{pid}/cwd", word)
    try:
        real = os.path.realpath(path)
        if stat.S_ISREG(os.stat(real).st_mode):
            return real
    except OSError:
        return None
    return None
