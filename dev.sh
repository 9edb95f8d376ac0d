#!/usr/bin/env bash
# The two quick-start entry points, for Debian 12 as root (both idempotent):
#   bash dev.sh assess  - the runtime install (scripts/install-runtime.sh: bcc, kernel headers,
#                         tracing mounts, .venv with rba), then a 30 s assessment of this host.
#                         Installs no server and no test tool.
#   bash dev.sh test    - the test install (scripts/install-test.sh: the runtime install plus
#                         compilers, real servers and clients, chromium, podman; servers are
#                         installed disabled), then ruff, mypy, the whole suite on the OS's
#                         Python with bcc, and the non-root suite on Python 3.9, 3.10, 3.12
#                         and 3.13 (scripts/test-pythons.sh). Extra arguments go to the main
#                         pytest run.
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-}" in
  assess)
    bash scripts/install-runtime.sh
    exec .venv/bin/rba assess --duration 30s
    ;;
  test)
    bash scripts/install-test.sh
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    .venv/bin/mypy
    rc=0
    .venv/bin/python -m pytest "${@:2}" || rc=$?
    bash scripts/test-pythons.sh || rc=$((rc ? rc : $?))
    exit "$rc"
    ;;
  *)
    echo "usage: bash dev.sh assess|test [pytest args]" >&2; exit 2 ;;
esac
