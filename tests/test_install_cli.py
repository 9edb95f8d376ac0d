"""The command-line conventions an installed tool owes its users: ``--version``."""

from __future__ import annotations

import behavior
from tests.conftest import run_rba


def test_version_is_the_package_version() -> None:
    result = run_rba("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"rba {behavior.__version__}\n"
