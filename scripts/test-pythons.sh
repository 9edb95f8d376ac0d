#!/usr/bin/env bash
# The non-root part of the suite (tests marked neither root, ebpf nor netns) on the other
# Pythons rba supports: pyenv's 3.9, 3.10, 3.12 and 3.13 where present. Each runs in its own
# venv, .venv/py3.X (no system site packages, so no bcc), with rba's dependencies from PyPI.
# Says which versions it did not run. Exits non-zero when a run failed.
#   RBA_PYTHONS="3.9 3.12"  picks the versions; extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
say() { printf 'test-pythons: %s\n' "$*"; }
MARKERS="not root and not ebpf and not netns"
rc=0; ran=(); missing=(); failed=()
for v in ${RBA_PYTHONS:-3.9 3.10 3.12 3.13}; do
  py=$(ls -d "${PYENV_ROOT:-/root/.pyenv}"/versions/"$v".*/bin/python 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$py" ]; then missing+=("$v"); continue; fi
  venv=.venv/py$v
  if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv from $py"
    "$py" -m venv "$venv" || { failed+=("$v (venv)"); rc=1; continue; }
  fi
  stamp=$venv/.rba-installed want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "pip install -e '.[test]' into $venv"
    if ! { "$venv/bin/python" -m pip install -q --upgrade pip &&
           "$venv/bin/python" -m pip install -q -e '.[test]'; } >"$venv/pip-install.log" 2>&1; then
      cat "$venv/pip-install.log" >&2; failed+=("$v (pip)"); rc=1; continue
    fi
    echo "$want" > "$stamp"
  fi
  say "Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'): pytest -m '$MARKERS'"
  if "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "$MARKERS" "$@" >"$venv/pytest.log" 2>&1; then
    say "Python $v: $(tail -n 1 "$venv/pytest.log")"
  else
    tail -n 40 "$venv/pytest.log"; say "Python $v FAILED: $(tail -n 1 "$venv/pytest.log")"
    failed+=("$v"); rc=1
  fi
  ran+=("$v")
done
say "ran on: ${ran[*]:-none}"
[ ${#missing[@]} -eq 0 ] || say "NOT run (no pyenv interpreter): ${missing[*]}"
[ ${#failed[@]} -eq 0 ] || say "failed: ${failed[*]}"
exit "$rc"
