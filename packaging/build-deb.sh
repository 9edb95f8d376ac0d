#!/usr/bin/env bash
# Builds rba_<version>_all.deb with dpkg-deb, from this checkout, without network access once
# the build tools are present. Usage: bash packaging/build-deb.sh [OUTDIR]  (default: build/)
#
# The package runs on Debian's own Python and libraries (python3-bpfcc, -numpy, -psutil,
# -pyelftools, -pefile) and installs:
#   /usr/lib/rba/{behavior,probes,binanalysis}   the code (a private directory: these generic
#                                                package names stay off the system's path)
#   /usr/bin/rba                                 the command (python3 -I: no PYTHONPATH, no
#                                                user site)
#   /lib/systemd/system/rba.service              the daemon's unit (not enabled)
#   /usr/share/man/man1/rba.1.gz                 from the argparse parser (argparse-manpage)
#   bash, zsh and fish completions               from the argparse parser (shtab)
#   /usr/share/doc/rba/                          README, docs/*.md, copyright
# The man page and completions need shtab and argparse-manpage (pyproject's `package` extra):
# taken from .venv when it has them, else pip-installed into build/deb-tools (build deps only).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'build-deb: %s\n' "$*"; }
out=${1:-build}
mkdir -p "$out"; out=$(cd "$out" && pwd)

tools_python() {
  local py
  for py in .venv/bin/python build/deb-tools/bin/python; do
    if [ -x "$py" ] && "$py" -c 'import shtab, argparse_manpage' 2>/dev/null; then echo "$py"; return; fi
  done
  say "installing shtab and argparse-manpage into build/deb-tools" >&2
  /usr/bin/python3 -m venv --system-site-packages build/deb-tools
  build/deb-tools/bin/python -m pip install -q 'shtab>=1.6' 'argparse-manpage>=4' >&2
  echo build/deb-tools/bin/python
}
PY=$(tools_python)
# the man page's date: the last commit's, or pyproject's mtime in a tree without git
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || stat -c %Y pyproject.toml)}
export SOURCE_DATE_EPOCH
version=$(PYTHONPATH=. "$PY" -c 'import behavior; print(behavior.__version__)')
deb=$out/rba_${version}_all.deb
root=$(mktemp -d "${TMPDIR:-/tmp}/rba-deb.XXXXXX")
trap 'rm -rf "$root"' EXIT

# --- the code and the command ------------------------------------------------------------
lib=$root/usr/lib/rba
mkdir -p "$lib" "$root/usr/bin"
source_files() {  # the checkout's files that git does not ignore (no git: all but caches)
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard -- "$@"
  else
    find "$@" -type f ! -path '*/__pycache__/*' ! -name '*.py[co]' -print0
  fi
}
source_files behavior probes binanalysis | while IFS= read -r -d '' f; do
  [ -f "$f" ] && install -D -m 0644 "$f" "$lib/$f"
done
cat > "$root/usr/bin/rba" <<'EOF'
#!/usr/bin/python3 -I
"""rba: runtime behaviour analyzer for Linux hosts (the Debian package's command)."""
import sys

sys.path.insert(0, "/usr/lib/rba")
from behavior.commands.cli import main  # noqa: E402

sys.exit(main())
EOF
chmod 0755 "$root/usr/bin/rba"

# --- unit, man page, completions, docs ---------------------------------------------------
install -D -m 0644 packaging/rba.service "$root/lib/systemd/system/rba.service"
man=$root/usr/share/man/man1
mkdir -p "$man"
PYTHONPATH=. "$PY" -c 'import sys; from argparse_manpage.cli import main; sys.exit(main())' \
  --module behavior.commands.cli --function build_parser --prog rba --project-name rba \
  --version "$version" --description "runtime behaviour analyzer for Linux hosts" \
  --author "the rba project" --manual-title "rba manual" --output "$man/rba.1"
gzip -9n "$man/rba.1"
comp() {  # shell, destination
  install -d "$(dirname "$2")"
  PYTHONPATH=. "$PY" -m shtab --shell="$1" --prog rba behavior.commands.cli.build_parser > "$2"
  chmod 0644 "$2"
}
comp bash "$root/usr/share/bash-completion/completions/rba"
comp zsh "$root/usr/share/zsh/vendor-completions/_rba"
comp fish "$root/usr/share/fish/vendor_completions.d/rba.fish"
doc=$root/usr/share/doc/rba
install -d "$doc"
install -m 0644 README.md docs/*.md "$doc/"
cat > "$doc/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: rba
Files: *
Copyright: the rba project
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF

# --- control and maintainer scripts --------------------------------------------------------
mkdir -p "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: rba
Version: $version
Architecture: all
Maintainer: rba project <rba@localhost>
Section: admin
Priority: optional
Installed-Size: $size
Depends: python3 (>= 3.9), python3-bpfcc, python3-numpy, python3-psutil, python3-pyelftools, python3-pefile
Description: runtime behaviour analyzer for Linux hosts
 rba watches a host for an assessment window with eBPF tracepoints (and psutil
 polling): logins, TCP connections, listening ports and root processes; it checks
 the executables and libraries in use for DEP/NX, stack cookies, ASLR/PIE and
 RELRO, and reports findings from Amazon Inspector Classic's Runtime Behavior
 Analysis rule catalogue, each with the evidence to verify it by hand.
EOF
# Byte-compiled on install and cleaned before removal (Debian's py3compile/py3clean), so no
# __pycache__ outlives the package; the unit is not enabled: it needs /etc/rba/rba.toml.
cat > "$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  py3compile -p rba /usr/lib/rba
  if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
EOF
cat > "$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl stop rba.service 2>/dev/null || true; fi
py3clean -p rba
EOF
# purge: the daemon's results store and control socket directory (made by systemd).
cat > "$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = purge ]; then rm -rf /var/lib/rba /run/rba; fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
say "built $deb ($(du -h "$deb" | cut -f1), $(dpkg-deb -c "$deb" | wc -l) entries)"
