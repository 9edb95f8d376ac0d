#!/usr/bin/env bash
# Installs everything rba needs on Debian 12, as root, and is safe to run again.
#   - Debian packages: bcc (python3-bpfcc), the compilers and the real servers/clients the tests use;
#   - kernel headers for bcc, linking Debian's nearest headers when the running kernel has none;
#   - tracefs/debugfs mounts (tracepoints are read from there);
#   - a venv at .venv made from /usr/bin/python3 --system-site-packages, so it sees the OS's bcc.
# Every step says what it did.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'setup: %s\n' "$*"; }

APT_PACKAGES=(
  python3-bpfcc python3-venv python3-dev gcc make
  gcc-mingw-w64 checksec
  vsftpd inetutils-telnetd inetutils-telnet ftp rsh-client rsh-server busybox
  curl openssl iproute2 util-linux procps
  snmp  # net-snmp's snmpget: the SNMP v2c/v3 content tests
  chromium  # the HTML report's rendering test (headless)
)

install_apt_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then say "apt packages already installed"; return; fi
  say "installing apt packages: ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# bcc finds headers through /lib/modules/$(uname -r)/build (and source).
setup_kernel_headers() {
  local kver mod
  kver=$(uname -r); mod=/lib/modules/$kver
  if [ -e "$mod/build/include/linux/kconfig.h" ] || [ -e "$mod/build/include/generated/autoconf.h" ]; then
    say "kernel headers for $kver present at $mod/build"; return
  fi
  if apt-cache show "linux-headers-$kver" >/dev/null 2>&1; then
    say "installing linux-headers-$kver"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "linux-headers-$kver" >/dev/null
    return
  fi
  # No package matches the running kernel: link Debian's newest amd64 headers. This is sound
  # only because our BPF programs read tracepoint arguments and helpers, never kernel structs.
  dpkg-query -W -f='${Status}' linux-headers-amd64 2>/dev/null | grep -q 'install ok installed' || {
    say "no linux-headers-$kver package; installing linux-headers-amd64"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-headers-amd64 >/dev/null
  }
  local build common
  build=$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -n 1)
  common=$(ls -d /usr/src/linux-headers-*-common | sort -V | tail -n 1)
  mkdir -p "$mod"
  ln -sfn "$build" "$mod/build"
  ln -sfn "$common" "$mod/source"
  say "no headers match kernel $kver: linked $mod/build -> $build and $mod/source -> $common"
}

mount_tracing() {
  mountpoint -q /sys/kernel/tracing || { mount -t tracefs tracefs /sys/kernel/tracing && say "mounted tracefs"; }
  mountpoint -q /sys/kernel/debug || { mount -t debugfs debugfs /sys/kernel/debug && say "mounted debugfs"; }
}

setup_venv() {
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv from /usr/bin/python3 --system-site-packages"
    /usr/bin/python3 -m venv --system-site-packages .venv
  fi
  local stamp=.venv/.rba-installed want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing rba and its Python dependencies into .venv"
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[dev]' >.venv/pip-install.log 2>&1 || { cat .venv/pip-install.log >&2; exit 1; }
    echo "$want" > "$stamp"
  else
    say ".venv is up to date"
  fi
}

if [ "$(id -u)" -ne 0 ]; then echo "setup: must run as root (apt, kernel headers, mounts)" >&2; exit 2; fi
install_apt_packages
setup_kernel_headers
mount_tracing
setup_venv
.venv/bin/python -c 'import bcc' 2>/dev/null && say "bcc importable from .venv" || say "WARNING: bcc not importable; rba will fall back to polling"
