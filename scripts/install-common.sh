# Shared by install-runtime.sh and install-test.sh (sourced, not run). Debian 12, as root.
say() { printf 'install: %s\n' "$*"; }

# Installs the named Debian packages that are missing (and says which), --no-install-recommends.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then say "already installed: $*"; return; fi
  say "apt-get install ${missing[*]}"
  [ -n "${RBA_APT_UPDATED:-}" ] || { apt-get update -q >/dev/null; RBA_APT_UPDATED=1; }
  local log; log=$(mktemp)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; exit 1; }
  rm -f "$log"
}

# Installs rba into .venv (made from /usr/bin/python3 --system-site-packages, so it sees the
# OS's bcc) with the extras in $1 ("" for the runtime dependencies only); skipped when
# pyproject.toml and the extras are unchanged since the last install.
venv_install() {
  local extras=$1 spec=. stamp want
  [ -z "$extras" ] || spec=".[$extras]"
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv from /usr/bin/python3 --system-site-packages"
    /usr/bin/python3 -m venv --system-site-packages .venv
  fi
  stamp=.venv/.rba-installed-${extras:-runtime}
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then say ".venv has rba $spec (up to date)"; return; fi
  say "pip install -e '$spec' into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e "$spec" >.venv/pip-install.log 2>&1 ||
    { cat .venv/pip-install.log >&2; exit 1; }
  echo "$want" > "$stamp"
}

need_root() {
  [ "$(id -u)" -eq 0 ] || { echo "install: must run as root (apt, kernel headers, mounts)" >&2; exit 2; }
}
