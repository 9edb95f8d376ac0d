"""Shared pytest fixtures and the skip policy.

Tests that need root, eBPF or network namespaces run for real on our machines. They skip
only where the capability is truly absent, and the skip reason says what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from probes.ebpf import ebpf_unavailable_reason

if TYPE_CHECKING:
    from tests.support.other_user import OtherUserPython

REPO = Path(__file__).resolve().parent.parent
RBA = [sys.executable, "-m", "behavior"]


# The product's own check, so tests skip exactly where rba itself would fall back.
BPF_MISSING = ebpf_unavailable_reason()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    netns_missing = None
    if os.geteuid() != 0:
        netns_missing = "not root"
    elif shutil.which("ip") is None:
        netns_missing = "iproute2 not installed"
    for item in items:
        if BPF_MISSING and "ebpf" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"eBPF unavailable: {BPF_MISSING}"))
        if netns_missing and "netns" in item.keywords:
            item.add_marker(
                pytest.mark.skip(reason=f"network namespaces unavailable: {netns_missing}")
            )
        if os.geteuid() != 0 and "root" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="not root"))


def run_rba(
    *args: str, check: bool = False, timeout: float = 300, **kw: object
) -> subprocess.CompletedProcess[str]:
    """Run the real ``rba`` CLI in a subprocess and capture its output."""
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [*RBA, *args], capture_output=True, text=True, check=check, timeout=timeout, cwd=REPO, **kw
    )


@pytest.fixture(scope="session")
def other_user() -> Iterator[OtherUserPython]:
    """rba importable by ``nobody`` wherever the clone lives (see tests/support/other_user)."""
    from tests.support.other_user import OtherUserPython

    copy = OtherUserPython()
    yield copy
    copy.close()
