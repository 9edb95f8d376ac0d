#!/usr/bin/env bash
# What rba needs at run time on Debian 12, as root; safe to run again. Installs NO server and
# no test tool:
#   - Debian packages: python3-bpfcc (bcc), python3-venv, and rba's libraries as Debian ships
#     them (python3-numpy, python3-psutil, python3-pyelftools, python3-pefile: the versions the
#     .deb runs with, updated by apt);
#   - kernel headers for bcc: linux-headers-$(uname -r), or, when no package matches the running
#     kernel, linux-headers-amd64 linked at /lib/modules/$(uname -r)/build;
#   - tracefs and debugfs mounted (tracepoints are read from there);
#   - .venv from /usr/bin/python3 --system-site-packages with rba installed in it (editable);
#     its dependencies are the Debian packages above, so pip downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/install-common.sh
need_root

# bcc finds headers through /lib/modules/$(uname -r)/build (and source).
setup_kernel_headers() {
  local kver mod build common
  kver=$(uname -r); mod=/lib/modules/$kver
  if [ -e "$mod/build/include/linux/kconfig.h" ] || [ -e "$mod/build/include/generated/autoconf.h" ]; then
    say "kernel headers for $kver present at $mod/build"; return
  fi
  if apt-cache show "linux-headers-$kver" >/dev/null 2>&1; then
    apt_install "linux-headers-$kver"; return
  fi
  # No package matches the running kernel: link Debian's newest amd64 headers. This is sound
  # only because our BPF programs read tracepoint arguments and helpers, never kernel structs.
  say "no linux-headers-$kver package: using linux-headers-amd64"
  apt_install linux-headers-amd64
  build=$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -n 1)
  common=$(ls -d /usr/src/linux-headers-*-common | sort -V | tail -n 1)
  mkdir -p "$mod"
  ln -sfn "$build" "$mod/build"
  ln -sfn "$common" "$mod/source"
  say "linked $mod/build -> $build and $mod/source -> $common"
}

mount_tracing() {
  mountpoint -q /sys/kernel/tracing || { mount -t tracefs tracefs /sys/kernel/tracing && say "mounted tracefs"; }
  mountpoint -q /sys/kernel/debug || { mount -t debugfs debugfs /sys/kernel/debug && say "mounted debugfs"; }
}

apt_install python3-bpfcc python3-venv python3-numpy python3-psutil python3-pyelftools python3-pefile
setup_kernel_headers
mount_tracing
venv_install ""
if .venv/bin/python -c 'import bcc' 2>/dev/null; then say "bcc importable from .venv"
else say "WARNING: bcc not importable; rba will fall back to polling"; fi
