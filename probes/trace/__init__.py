"""Trace files: the self-contained, crash-safe record of an observation window.

See docs/trace-format.md for the byte layout.
"""

from probes.trace.format import (
    MAJOR,
    MINOR,
    ChunkType,
    NotATraceError,
    TraceError,
    TraceVersionError,
)
from probes.trace.reader import (
    EventChunk,
    EventCounts,
    TraceIndex,
    count_events,
    open_trace,
    read_events,
)
from probes.trace.redact import CmdlineRedactor
from probes.trace.writer import TraceWriter

__all__ = [
    "MAJOR",
    "MINOR",
    "ChunkType",
    "CmdlineRedactor",
    "EventChunk",
    "EventCounts",
    "NotATraceError",
    "TraceError",
    "TraceIndex",
    "TraceVersionError",
    "TraceWriter",
    "count_events",
    "open_trace",
    "read_events",
]
