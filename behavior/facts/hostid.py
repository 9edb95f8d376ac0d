"""Who this host is, read locally: machine id, OS release and addresses (no network
call). :func:`behavior.facts.live.current_host` puts them into the host fact, so a
trace carries them and a replay fingerprints findings as the live run did."""

from __future__ import annotations

import ipaddress
import re
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


EC2_ASSET_TAG = "/sys/devices/virtual/dmi/id/board_asset_tag"
_EC2_ID = re.compile(r"^i-[0-9a-f]{8,17}$")


def ec2_instance_id(asset_tag: str = EC2_ASSET_TAG) -> str:
    """The EC2 instance id that Nitro instances expose in DMI's board asset tag, or ""
    elsewhere (never asked of the metadata service: no network call)."""
    text = _read(asset_tag).strip()
    return text if _EC2_ID.match(text) else ""
