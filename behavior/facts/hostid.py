"""Who this host is, read locally: machine id, OS release and addresses (no network
call). :func:`behavior.facts.live.current_host` puts them into the host fact, so a
trace carries them and a replay fingerprints findings as the live run did."""

from __future__ import annotations

import ipaddress
import socket

MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
OS_RELEASE_FILES = ("/etc/os-release", "/usr/lib/os-release")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(65536)
    except OSError:
        return ""


def machine_id() -> str:
    """The systemd machine id (32 hex digits), or "" where the host has none."""
    for path in MACHINE_ID_FILES:
        text = _read(path).strip()
        if text:
            return text.splitlines()[0].strip()
    return ""


def os_release() -> tuple[str, str]:
    """(NAME, VERSION_ID) from os-release, e.g. ("Debian GNU/Linux", "12")."""
    for path in OS_RELEASE_FILES:
        values: dict[str, str] = {}
        for line in _read(path).splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip().strip("\"'")
        if values:
            return values.get("NAME", ""), values.get("VERSION_ID", "")
    return "", ""


def host_ips() -> tuple[str, ...]:
    """The host's non-loopback, non-link-local addresses, sorted (from the interfaces)."""
    try:
        import psutil

        interfaces = psutil.net_if_addrs()
    except (ImportError, OSError):
        return ()
    found = set()
    for addresses in interfaces.values():
        for entry in addresses:
            if entry.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                address = ipaddress.ip_address(str(entry.address).split("%", 1)[0])
            except ValueError:
                continue
            if not (address.is_loopback or address.is_link_local):
                found.add(str(address))
    return tuple(sorted(found))
