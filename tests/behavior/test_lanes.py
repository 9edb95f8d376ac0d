"""One lane table classifies every batch for the aggregator, the timeline and the facts."""

from __future__ import annotations

import numpy as np

from behavior.window.aggregate import Aggregator
from probes.events import Flag, Kind, Source, StringTable, empty
from probes.lanes import PROCESS_LANES, Lane, classify


def _events(*rows: tuple[Kind, Flag]) -> np.ndarray:
    batch = empty(len(rows))
    for i, (kind, flags) in enumerate(rows):
        batch[i]["kind"] = kind
        batch[i]["flags"] = flags
    return batch


def test_the_direction_flag_refines_established_and_close() -> None:
    lanes = classify(
        _events(
            (Kind.TCP_ESTABLISHED, Flag.ACTIVE),
            (Kind.TCP_ESTABLISHED, Flag.PASSIVE),
            (Kind.TCP_ESTABLISHED, Flag.NONE),
            (Kind.TCP_CLOSE, Flag.LISTENER),
            (Kind.TCP_CLOSE, Flag.NONE),
            (Kind.TCP_LISTEN, Flag.SNAPSHOT),
            (Kind.EXEC, Flag.SNAPSHOT | Flag.ACTIVE),
        )
    )
    assert [Lane(x) for x in lanes] == [
        Lane.TCP_OUT_ESTABLISHED,
        Lane.TCP_ACCEPTED,
        Lane.OTHER,
        Lane.LISTENER_CLOSE,
        Lane.OTHER,
        Lane.TCP_LISTEN,
        Lane.EXEC,
    ]


def test_every_kind_has_a_lane_and_process_kinds_are_the_process_lanes() -> None:
    for kind in Kind:
        lane = Lane(classify(_events((kind, Flag.NONE)))[0])
        is_process = kind in (Kind.EXEC, Kind.FORK, Kind.EXIT, Kind.PROC_SNAPSHOT)
        assert (lane in PROCESS_LANES) == is_process, kind
        if kind not in (Kind.TCP_ESTABLISHED, Kind.TCP_CLOSE):
            assert lane is not Lane.OTHER or kind.name not in Lane.__members__, kind


def test_folding_with_given_lanes_equals_folding_without() -> None:
    rows = _events(
        (Kind.TCP_CONNECT, Flag.NONE),
        (Kind.TCP_ESTABLISHED, Flag.PASSIVE),
        (Kind.UDP_SEND, Flag.NONE),
        (Kind.EXEC, Flag.NONE),
    )
    rows["pid"] = [10, 11, 12, 13]
    rows["source"] = Source.EBPF
    rows["family"] = 2
    rows["dport"] = [23, 0, 161, 0]
    rows["sport"] = [0, 8080, 0, 0]
    with_lanes, without = Aggregator(StringTable()), Aggregator(StringTable())
    with_lanes.fold(rows, classify(rows))
    without.fold(rows)
    window = {"started_ns": 0, "ended_ns": 10**9}
    assert with_lanes.observations(**window) == without.observations(**window)
    assert len(without.observations(**window).connections) == 2
