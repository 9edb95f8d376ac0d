"""What scripts/install-test.sh leaves on the machine it ran on: the servers the tests need
are installed but not enabled and not running as services, and the quick start's two
commands are what README and .ci/run say."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO

SERVER_UNITS = {"vsftpd": "vsftpd.service", "snmpd": "snmpd.service", "podman": "podman.socket"}
SERVER_PROGRAMS = {"vsftpd", "inetd", "inetutils-inetd", "snmpd", "in.tftpd", "in.rshd"}


def _installed(package: str) -> bool:
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    ).stdout
    return status == "install ok installed"


@pytest.mark.parametrize("package", sorted(SERVER_UNITS))
def test_server_units_are_masked(package: str) -> None:
    if shutil.which("systemctl") is None or not _installed(package):
        pytest.skip(f"{package} not installed (scripts/install-test.sh installs it)")
    unit = SERVER_UNITS[package]
    state = subprocess.run(
        ["systemctl", "--root=/", "is-enabled", unit], capture_output=True, text=True, check=False
    ).stdout.strip()
    assert state == "masked", f"{unit}: {state}"


def test_inetd_runs_nothing() -> None:
    conf = Path("/etc/inetd.conf")
    if not conf.exists():
        pytest.skip("no /etc/inetd.conf (no inetd installed)")
    active = [line for line in conf.read_text().splitlines() if re.match(r"^[^#\s]", line)]
    assert active == []


def test_no_server_runs_as_a_service() -> None:
    """Servers started by init (parent pid 1), not the tests' own (children of pytest)."""
    daemons = [
        (p.pid, p.info["name"])
        for p in psutil.process_iter(["name", "ppid"])
        if p.info["name"] in SERVER_PROGRAMS and p.info["ppid"] == 1
    ]
    assert daemons == []


def test_quick_start_is_the_two_commands_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.splitlines()] == [
        "bash dev.sh assess",
        "bash dev.sh test",
    ]
    assert (REPO / ".ci" / "run").read_text().strip().endswith("exec bash dev.sh test")
    for script in ("dev.sh", *(str(p) for p in sorted((REPO / "scripts").glob("*.sh")))):
        check = subprocess.run(["bash", "-n", str(REPO / script)], capture_output=True, check=False)
        assert check.returncode == 0, (script, check.stderr)
    assert os.access(REPO / "packaging" / "build-deb.sh", os.X_OK)
