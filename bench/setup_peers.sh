#!/usr/bin/env bash
# The scan benchmark's peers, in a bench-only venv (gitignored): checksec.py (PyPI
# checksec-py, LIEF-based) and pwntools (ELF.checksec()). Debian's checksec.sh comes from
# apt (scripts/install-test.sh). Usage: bash bench/setup_peers.sh [VENV]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-$here/.venv-peers}"
if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check checksec.py pwntools
"$venv/bin/python" -c "import checksec, pwn; print('peers ready in $venv')"
