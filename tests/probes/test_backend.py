"""Backend choice, capability merging and the human rendering of events."""

from __future__ import annotations

import os

import pytest

from probes import ebpf
from probes.backend import merge_capabilities, open_session
from probes.describe import event_dict, event_line
from probes.ebpf import EBPF_CAPABILITIES, ebpf_unavailable_reason
from probes.events import Flag, Kind, Source, StringTable, empty, pack_address
from probes.interface import ProbeUnavailableError
from probes.poll import POLL_CAPABILITIES


@pytest.mark.ebpf
def test_missing_tracefs_is_detected_and_auto_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ebpf_unavailable_reason() is None
    monkeypatch.setattr(ebpf, "TRACEFS_CANDIDATES", ("/nonexistent/tracing",))
    reason = ebpf_unavailable_reason()
    assert reason is not None and reason.startswith("tracefs is not mounted")
    session = open_session("auto")
    assert session.sources == ("poll",)
    assert session.notices == (
        f"eBPF unavailable ({reason}): polling only, every 1s; "
        "connections and processes shorter than that may be missed",
    )
    with pytest.raises(ProbeUnavailableError, match="tracefs is not mounted"):
        open_session("ebpf")


def test_non_root_reason_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert ebpf_unavailable_reason() == "not root"


def test_merged_capabilities_are_the_union() -> None:
    merged = merge_capabilities([EBPF_CAPABILITIES, POLL_CAPABILITIES])
    assert merged.sees_every_connection and merged.sees_logins and merged.counts_losses
    assert merge_capabilities([POLL_CAPABILITIES]) == POLL_CAPABILITIES


def test_event_rendering() -> None:
    strings = StringTable()
    batch = empty(2)
    family, raw = pack_address("::ffff:127.0.0.1")
    batch[0]["kind"] = Kind.TCP_ESTABLISHED
    batch[0]["flags"] = Flag.PASSIVE
    batch[0]["source"] = Source.EBPF
    batch[0]["family"] = family
    batch[0]["saddr"] = list(raw)
    batch[0]["daddr"] = list(pack_address("127.0.0.9")[1])
    batch[0]["sport"], batch[0]["dport"] = 80, 40000
    batch[0]["pid"] = 42
    batch[0]["comm"] = b"httpd"
    batch[0]["ts_wall"] = 1_700_000_000_123_000_000
    batch[1]["kind"] = Kind.EXEC
    batch[1]["source"] = Source.EBPF
    batch[1]["pid"], batch[1]["ppid"] = 7, 1
    batch[1]["str_a"] = strings.intern("/usr/bin/id")
    batch[1]["str_b"] = strings.intern("id -u")
    d = event_dict(batch[0], strings)
    assert d["kind"] == "tcp_established" and d["direction"] == "passive"
    assert d["saddr"] == "127.0.0.1" and d["family"] == "inet"
    assert d["time"] == "2023-11-14T22:13:20.123+00:00" and d["flags"] == ["passive"]
    assert event_line(batch[0], strings) == (
        "22:13:20.123 ebpf tcp_established pid=42 comm=httpd "
        "direction=passive flags=passive addr=127.0.0.1:80->127.0.0.9:40000"
    )
    line = event_line(batch[1], strings)
    assert "exec" in line and "filename=/usr/bin/id" in line and "cmdline='id -u'" in line
