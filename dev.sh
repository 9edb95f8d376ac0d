#!/usr/bin/env bash
# The two quick-start entry points (both idempotent, both install everything first):
#   bash dev.sh assess   - a short assessment of this host, printed as text
#   bash dev.sh test     - lint, type-check and run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-}" in
  assess)
    bash scripts/setup.sh
    exec .venv/bin/rba assess --duration 30s
    ;;
  test)
    bash scripts/setup.sh
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    .venv/bin/mypy
    exec .venv/bin/python -m pytest "${@:2}"
    ;;
  *)
    echo "usage: bash dev.sh assess|test [pytest args]" >&2; exit 2 ;;
esac
