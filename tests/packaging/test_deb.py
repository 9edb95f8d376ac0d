"""packaging/build-deb.sh for real: the .deb is built, installed with apt, run with no venv
(``rba --version`` and a short assessment), verified by systemd, then purged, and nothing
of it is left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import behavior
from tests.conftest import BPF_MISSING, REPO

pytestmark = pytest.mark.root
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
# Directories the package shares with the rest of the system: they stay after a purge.
SHARED_DIRS = {
    "/.", "/lib", "/lib/systemd", "/lib/systemd/system", "/usr", "/usr/bin", "/usr/lib",
    "/usr/share", "/usr/share/bash-completion", "/usr/share/bash-completion/completions",
    "/usr/share/doc", "/usr/share/fish", "/usr/share/fish/vendor_completions.d",
    "/usr/share/man", "/usr/share/man/man1", "/usr/share/zsh",
    "/usr/share/zsh/vendor-completions",
}  # fmt: skip


def _run(*argv: str, timeout: float = 600, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        list(argv), capture_output=True, text=True, timeout=timeout, check=False, **kw
    )


def _installed() -> bool:
    status = _run("dpkg-query", "-W", "-f=${Status}", "rba").stdout
    return "installed" in status and "not-installed" not in status


@pytest.fixture(scope="module")
def deb() -> Iterator[Path]:
    if shutil.which("dpkg-deb") is None or shutil.which("apt-get") is None:
        pytest.skip("not a Debian system (dpkg-deb, apt-get)")
    if _installed():
        pytest.skip("an rba package is installed on this machine: not replacing it")
    out = Path(tempfile.mkdtemp(prefix="rba-deb-test-"))
    out.chmod(0o755)  # apt reads a local .deb as user _apt
    try:
        built = _run("bash", str(REPO / "packaging" / "build-deb.sh"), str(out), cwd=REPO)
        assert built.returncode == 0, built.stdout + built.stderr
        (path,) = out.glob("rba_*_all.deb")
        yield path
    finally:
        if _installed():
            _run("apt-get", "purge", "-y", "-q", "rba", env=APT_ENV)
        shutil.rmtree(out, ignore_errors=True)


def test_package_metadata_and_contents(deb: Path) -> None:
    assert deb.name == f"rba_{behavior.__version__}_all.deb"
    field = _run("dpkg-deb", "-f", str(deb), "Version", "Architecture", "Depends").stdout
    assert f"Version: {behavior.__version__}" in field and "Architecture: all" in field
    for dep in ("python3-bpfcc", "python3-psutil", "python3-pyelftools", "python3-pefile"):
        assert dep in field
    assert "python3-numpy" in field
    names = {
        line.split()[-1].lstrip(".")
        for line in _run("dpkg-deb", "-c", str(deb)).stdout.splitlines()
    }
    for path in (
        "/usr/bin/rba", "/lib/systemd/system/rba.service", "/usr/share/man/man1/rba.1.gz",
        "/usr/share/bash-completion/completions/rba", "/usr/share/zsh/vendor-completions/_rba",
        "/usr/share/fish/vendor_completions.d/rba.fish", "/usr/share/doc/rba/copyright",
        "/usr/lib/rba/behavior/commands/cli.py", "/usr/lib/rba/probes/ebpf_program.c",
    ):  # fmt: skip
        assert path in names, path
    assert not [n for n in names if "__pycache__" in n or n.startswith("/usr/lib/rba/tests")]


def test_install_run_and_purge_leave_nothing(deb: Path, tmp_path: Path) -> None:
    installed = _run("apt-get", "install", "-y", "-q", str(deb), env=APT_ENV)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr
    files = _run("dpkg-query", "-L", "rba").stdout.split()
    assert "/usr/bin/rba" in files

    # The installed command (#!/usr/bin/python3 -I) on Debian's Python and libraries: no
    # venv, no checkout, no PYTHONPATH.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    version = _run("/usr/bin/rba", "--version", env=env, cwd="/")
    assert version.stdout == f"rba {behavior.__version__}\n", version.stderr
    report = tmp_path / "report.json"
    assess = _run(
        "/usr/bin/rba", "assess", "--duration", "5s", "--format", "json", "--output",
        str(report), env=env, cwd="/",
    )  # fmt: skip
    assert assess.returncode in (0, 1), assess.stderr
    run = json.loads(report.read_text())["run"]
    assert run["duration_s"] >= 5 and run["events"] > 0
    assert ("ebpf" in run["sources"]) == (BPF_MISSING is None), (run["sources"], BPF_MISSING)
    # Byte-compiled by py3compile, and only the package's own files are there.
    assert list(Path("/usr/lib/rba/behavior").glob("__pycache__/*.pyc"))

    # The installed unit, man page and completions: systemd's verify also runs man rba(1).
    if shutil.which("systemd-analyze"):
        verify = _run("systemd-analyze", "verify", "/lib/systemd/system/rba.service")
        assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    if shutil.which("man"):
        assert _run("man", "-w", "rba").stdout.strip() == "/usr/share/man/man1/rba.1.gz"
    assert "assess" in Path("/usr/share/bash-completion/completions/rba").read_text()

    purged = _run("apt-get", "purge", "-y", "-q", "rba", env=APT_ENV)
    assert purged.returncode == 0, purged.stdout[-2000:] + purged.stderr
    assert not _installed()
    left = [f for f in files if f not in SHARED_DIRS and os.path.lexists(f)]
    assert left == []
    for path in ("/usr/lib/rba", "/var/lib/rba", "/usr/share/doc/rba", "/etc/rba"):
        assert not os.path.lexists(path), path
    assert _run("systemctl", "--root=/", "cat", "rba.service").returncode != 0
