#!/usr/bin/env bash
# Everything the test suite needs on Debian 12, as root; safe to run again. First the runtime
# install (install-runtime.sh), then:
#   - Debian packages: compilers (gcc, make, gcc-mingw-w64, golang-go), checksec, the real servers and
#     clients the tests drive (vsftpd, inetutils-telnetd/-telnet, ftp, rsh-client/-server,
#     busybox, curl, openssl, iproute2, snmp/snmpd, tftpd-hpa/tftp-hpa), chromium (the HTML
#     report's rendering test), podman, runc, uidmap, slirp4netns;
#   - rba's Python extras into .venv: dev (pytest, the OCSF schemas, ruff, mypy), fleet when
#     pyproject has it, and package (shtab, argparse-manpage: packaging/build-deb.sh).
# The servers are installed WITHOUT being left enabled or running: a policy-rc.d (exit 101)
# keeps package scripts from starting them, their systemd units are masked and their init
# scripts disabled and stopped, and every service line of /etc/inetd.conf is commented out.
# The tests start their own server processes, on loopback and in network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-runtime.sh
. scripts/install-common.sh
need_root

SERVERS=(vsftpd inetutils-telnetd rsh-server snmpd tftpd-hpa)
TOOLS=(
  python3-dev gcc make gcc-mingw-w64 golang-go checksec
  inetutils-telnet ftp rsh-client openssh-client busybox curl openssl iproute2 util-linux procps
  snmp tftp-hpa systemd man-db
  chromium podman runc uidmap slirp4netns
)

# A policy-rc.d of our own, only while apt runs and only if there is none (an existing one,
# like a container's, is left alone).
ours=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# rba install-test.sh: package scripts start no services\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d; ours=1
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  say "policy-rc.d (exit 101) in place: package scripts start no service"
else
  say "/usr/sbin/policy-rc.d present; it decides whether package scripts start services"
fi
apt_install "${SERVERS[@]}" "${TOOLS[@]}"
[ -z "$ours" ] || { rm -f /usr/sbin/policy-rc.d; trap - EXIT; }

# The units and init scripts the server packages (and the inetd they pulled in) ship, and
# podman's (its API socket, restart service and auto-update timer are enabled on install;
# the tests run the podman command, which needs none of them). Templates are left alone.
server_units() {
  local p
  for p in "${SERVERS[@]}" openbsd-inetd inetutils-inetd podman; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || continue
    dpkg -L "$p" | grep -E '^/(usr/)?lib/systemd/system/[^/@]+\.(service|socket|timer)$' || true
  done | xargs -r -n1 basename | sort -u
}
init_scripts() {
  local p
  for p in "${SERVERS[@]}" openbsd-inetd inetutils-inetd; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || continue
    dpkg -L "$p" | grep -E '^/etc/init\.d/[^/]+$' || true
  done | sort -u
}

disable_servers() {
  local units=() u s
  mapfile -t units < <(server_units)
  if [ ${#units[@]} -gt 0 ]; then
    if [ -d /run/systemd/system ]; then  # systemd is PID 1: stop them now and mask them
      systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true
      systemctl mask "${units[@]}" >/dev/null 2>&1
    else  # no systemd running (a container): mask them offline
      systemctl --root=/ disable "${units[@]}" >/dev/null 2>&1 || true
      systemctl --root=/ mask "${units[@]}" >/dev/null 2>&1
    fi
    say "systemd units masked (never start): ${units[*]}"
  fi
  for s in $(init_scripts); do
    "$s" stop >/dev/null 2>&1 || true
    update-rc.d "$(basename "$s")" disable >/dev/null 2>&1 || true
  done
  [ -z "$(init_scripts)" ] || say "init scripts stopped and disabled: $(init_scripts | xargs -n1 basename | tr '\n' ' ')"
  if [ -f /etc/inetd.conf ] && grep -qE '^[^#[:space:]]' /etc/inetd.conf; then
    say "inetd entries disabled in /etc/inetd.conf: $(grep -E '^[^#[:space:]]' /etc/inetd.conf | awk '{print $1}' | tr '\n' ' ')"
    sed -i -E 's/^([^#[:space:]])/#<off># \1/' /etc/inetd.conf
  else
    say "no inetd entry enabled"
  fi
}
disable_servers

extras=$(/usr/bin/python3 -c '
import tomllib
extras = tomllib.load(open("pyproject.toml", "rb"))["project"].get("optional-dependencies", {})
print(",".join(e for e in ("dev", "fleet", "package") if e in extras))')
venv_install "$extras"
say "test dependencies installed; servers installed but not enabled or running"
