"""Which lane of a window an event takes: one classification of every batch, shared by
the aggregator, the timeline and the live fact source.

A lane is an event's kind refined by the one flag that changes its meaning (an active or
passive establishment, a listener's close). It is looked up in one table indexed by
``kind << 4 | flags & LANE_FLAGS``, once per batch by the assessment; each
consumer then selects the lanes it folds.
"""

from __future__ import annotations

import enum

import numpy as np
import numpy.typing as npt

from probes.events import EventArray, Flag, Kind

LANE_FLAGS = Flag.ACTIVE | Flag.PASSIVE | Flag.LISTENER

LaneArray = npt.NDArray[np.uint8]


class Lane(enum.IntEnum):
    """The lanes; events of no lane are ``OTHER``."""

    OTHER = 0
    TCP_CONNECT = 1
    TCP_OUT_ESTABLISHED = 2  # active establishment
    TCP_ACCEPTED = 3  # passive establishment
    UDP_SEND = 4
    EXEC = 5
    FORK = 6
    EXIT = 7
    PROC_SNAPSHOT = 8
    TCP_LISTEN = 9
    LISTENER_CLOSE = 10
    LOGIN = 11
    PROTO_LABEL = 12


_BY_KIND: dict[int, Lane] = {
    Kind.TCP_CONNECT: Lane.TCP_CONNECT,
    Kind.UDP_SEND: Lane.UDP_SEND,
    Kind.EXEC: Lane.EXEC,
    Kind.FORK: Lane.FORK,
    Kind.EXIT: Lane.EXIT,
    Kind.PROC_SNAPSHOT: Lane.PROC_SNAPSHOT,
    Kind.TCP_LISTEN: Lane.TCP_LISTEN,
    Kind.LOGIN: Lane.LOGIN,
    Kind.PROTO_LABEL: Lane.PROTO_LABEL,
}


def _lane(kind: int, flags: int) -> Lane:
    if kind == Kind.TCP_ESTABLISHED and flags & Flag.ACTIVE:
        return Lane.TCP_OUT_ESTABLISHED
    if kind == Kind.TCP_ESTABLISHED and flags & Flag.PASSIVE:
        return Lane.TCP_ACCEPTED
    if kind == Kind.TCP_CLOSE and flags & Flag.LISTENER:
        return Lane.LISTENER_CLOSE
    return _BY_KIND.get(kind, Lane.OTHER)


_TABLE = np.array([_lane(i >> 4, i & 15) for i in range(256 * 16)], dtype=np.uint8)

PROCESS_LANES = (Lane.EXEC, Lane.FORK, Lane.EXIT, Lane.PROC_SNAPSHOT)


def classify(events: EventArray) -> LaneArray:
    """The lane of each event of ``events``."""
    index = (events["kind"].astype(np.intp) << 4) | (events["flags"] & LANE_FLAGS)
    lanes: LaneArray = _TABLE[index]
    return lanes


def grouping(groups: dict[Lane, int], default: int) -> npt.NDArray[np.uint8]:
    """A table from lane to a consumer's own group number (``default`` for the rest)."""
    table = np.full(len(Lane), default, dtype=np.uint8)
    for lane, group in groups.items():
        table[lane] = group
    return table
