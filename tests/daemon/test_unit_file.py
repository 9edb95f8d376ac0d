"""packaging/rba.service: the capabilities the daemon is tested with, the hardening, and
systemd's own verdict (``systemd-analyze verify`` and ``security --offline``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.daemon.daemon_proc import UNIT_CAPS

UNIT = REPO / "packaging" / "rba.service"


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_capabilities_match_what_the_daemon_tests_run_with() -> None:
    unit = settings()
    expected = {f"CAP_{c.upper()}" for c in UNIT_CAPS}
    assert set(unit["CapabilityBoundingSet"][0].split()) == expected
    assert set(unit["AmbientCapabilities"][0].split()) == expected
    assert "CAP_SYS_ADMIN" not in UNIT.read_text().split("CapabilityBoundingSet=")[1].split("\n")[0]


def test_hardening() -> None:
    unit = settings()
    assert unit["ProtectSystem"] == ["strict"]
    assert set(unit["ReadWritePaths"][0].split()) == {"/var/lib/rba", "/run/rba"}
    for key in ("NoNewPrivileges", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables"):
        assert unit[key] == ["yes"], key
    assert unit["UMask"] == ["0077"] and unit["RuntimeDirectoryMode"] == ["0700"]
    assert unit["ExecStart"] == ["rba daemon --config /etc/rba/rba.toml"]  # no install dir
    assert unit["PrivateMounts"] == ["yes"]
    assert unit["Documentation"] == ["man:rba(1) file:///usr/share/doc/rba/daemon.md"]


def _unit_for_this_checkout(tmp_path: Path) -> Path:
    # verify checks that ExecStart's program exists: point it at this checkout's rba.
    copy = tmp_path / "rba.service"
    rba = Path(sys.executable).with_name("rba")
    text = UNIT.read_text().replace("=rba daemon", f"={rba} daemon")
    # verify also runs `man rba(1)`: only the package installs the page (its own test
    # verifies the installed unit with it).
    man = shutil.which("man")
    lookup = man and subprocess.run([man, "-w", "rba"], capture_output=True, check=False)
    if not lookup or lookup.returncode:
        text = text.replace("Documentation=man:rba(1) ", "Documentation=")
    copy.write_text(text)
    return copy


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(_unit_for_this_checkout(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_exposure_is_ok(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(_unit_for_this_checkout(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for rba.service: ([\d.]+) (\w+)", result.stdout)
    assert match, result.stdout[-500:] + result.stderr
    assert float(match.group(1)) <= 4.0 and match.group(2) == "OK", match.group(0)
