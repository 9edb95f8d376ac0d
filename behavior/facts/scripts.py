"""The script an interpreter runs: found in its command line, named inside the
process's own root (a container's script is the container's file)."""

from __future__ import annotations

import os
import re
import stat

from probes.procfs import ProcfsError, read_cwd, realpath_in_root, stat_in_root

_INTERPRETER = re.compile(
    r"^(python[0-9.]*|pypy[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*|lua[0-9.]*|"
    r"node|nodejs|tclsh[0-9.]*|wish[0-9.]*|Rscript|"
    r"sh|bash|dash|zsh|ksh|mksh|ash|busybox|fish|csh|tcsh)$"
)
# Options after which there is no script (code given inline, or a module name).
_NO_SCRIPT = frozenset({"-c", "-e", "-E", "-m", "-p", "--eval", "--print", "--command"})
# Options that take the next word as their argument.
_WITH_ARGUMENT = frozenset({"-W", "-X", "-o", "-O", "+O", "-r", "--require", "-I", "-x"})


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


def resolve_script(pid: int, word: str, root: str) -> str | None:
    """The real path, inside ``root`` (the process's, ``/proc/PID/root``), of a script
    word relative to the process's cwd; None unless it is a regular file there."""
    try:
        path = word if word.startswith("/") else os.path.join(read_cwd(pid), word)
        real = realpath_in_root(root, path)
        if stat.S_ISREG(stat_in_root(root, real).st_mode):
            return real
    except (OSError, ProcfsError):
        return None
    return None
