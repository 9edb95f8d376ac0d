"""The trace file format: constants, chunk framing and errors (see docs/trace-format.md).

A trace is a 16-byte file header followed by append-only chunks. Each chunk has a 16-byte
header (type, flags, stored length, raw length, CRC32) and a payload, optionally
zlib-compressed. A chunk is only trusted when its CRC matches, so a torn or corrupt tail
is detected and everything before it is still readable.
"""

from __future__ import annotations

import enum
import struct
import zlib

from probes.interface import ProbeError

MAGIC = b"RBATRACE"
MAJOR = 1
MINOR = 1  # 1.1: event kind PROTO_LABEL
FILE_HEADER = struct.Struct("<8sHHI")  # magic, major, minor, reserved flags
CHUNK_HEADER = struct.Struct("<BBHIII")  # type, flags, reserved, stored_len, raw_len, crc32
# The CRC covers the chunk header up to (not including) the crc field, then the payload.
CRC_COVERED = CHUNK_HEADER.size - 4

ZLIB_LEVEL = 3  # measured in bench/trace_codec.py: level 3 is the size/speed knee
# Keep a compressed payload only when it is at most this fraction of the raw one.
COMPRESS_KEEP_RATIO = 0.75

FLAG_ZLIB = 1

# Bounded decoding (docs/trace-format.md, "Limits"). Every size is checked against these
# before anything is allocated or inflated; the writer never produces a chunk beyond them.
EVENTS_PER_CHUNK = 65536  # the writer cuts an events chunk at this many events
MAX_RATIO = 64  # raw bytes per stored byte: bounds the CPU spent per byte of input
MAX_JSON_CHUNK = 16 << 20  # START, END, RECORDS and STRINGS payloads, once inflated
MAX_OTHER_CHUNK = 16 << 20  # chunk types of a newer minor version (skipped, not inflated)
MAX_RECORD_BYTES = 64 << 20  # all RECORDS payloads of one trace, once inflated
# JSON values in them, counted as their separators and brackets before parsing: each
# becomes a Python object of up to ~64 bytes, so this bounds the records' memory.
MAX_RECORD_ITEMS = 8 << 20
MAX_STRINGS = 1 << 24  # string table entries of one trace
MAX_STRING_BYTES = 256 << 20  # their UTF-8 bytes
MAX_STORED = 16 << 20  # no chunk is larger in the file (the largest raw one is 16 MiB)


EVENT_RECORD_SIZE = 120  # probes.events.EVENT_SIZE (asserted by the reader and writer)


class ChunkType(enum.IntEnum):
    """What a chunk's payload holds."""

    START = 1  # JSON object: host, kernel, window start, sources, options. Always first.
    STRINGS = 2  # new StringTable entries, in id order
    EVENTS = 3  # EVENT_DTYPE records, back to back
    RECORDS = 4  # JSON lines: facts, notices, loss counters gathered during the window
    END = 5  # JSON object: window end, final counters. Absent when the capture died.


_KNOWN_TYPES = frozenset(int(t) for t in ChunkType)


def max_raw(ctype: int) -> int:
    """The largest inflated payload a chunk of type ``ctype`` may announce."""
    if ctype == ChunkType.EVENTS:
        return EVENTS_PER_CHUNK * EVENT_RECORD_SIZE
    return MAX_JSON_CHUNK if ctype in _KNOWN_TYPES else MAX_OTHER_CHUNK


class TraceError(ProbeError):
    """A file cannot be read as a trace at all. The message is one line."""


class NotATraceError(TraceError):
    """The file does not start with a trace header."""


class TraceVersionError(TraceError):
    """The trace was written by a newer, incompatible major version of the format."""


def encode_chunk(ctype: ChunkType, raw: bytes, *, compress: bool) -> bytes:
    """Frame ``raw`` as one chunk, compressing it when that clearly pays (and when the
    ratio stays within what a reader accepts: past :data:`MAX_RATIO` it is stored raw)."""
    if len(raw) > max_raw(ctype):
        raise ValueError(f"{ctype.name} chunk of {len(raw)} bytes exceeds {max_raw(ctype)}")
    payload, flags = raw, 0
    if compress and raw:
        packed = zlib.compress(raw, ZLIB_LEVEL)
        if len(raw) <= MAX_RATIO * len(packed) and len(packed) <= COMPRESS_KEEP_RATIO * len(raw):
            payload, flags = packed, FLAG_ZLIB
    head = CHUNK_HEADER.pack(ctype, flags, 0, len(payload), len(raw), 0)[:CRC_COVERED]
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + payload


def encode_strings(first_id: int, strings: list[str]) -> bytes:
    """Payload of a STRINGS chunk: first id, count, byte lengths, then the UTF-8 bytes."""
    blobs = [s.encode("utf-8", "surrogatepass") for s in strings]
    lengths = struct.pack(f"<{len(blobs)}I", *(len(b) for b in blobs))
    return struct.pack("<II", first_id, len(blobs)) + lengths + b"".join(blobs)


def decode_strings(payload: bytes) -> tuple[int, list[str]]:
    """Inverse of :func:`encode_strings`; raises ValueError when malformed."""
    if len(payload) < 8:
        raise ValueError("strings chunk shorter than its header")
    first_id, count = struct.unpack_from("<II", payload)
    body = 8 + 4 * count
    if body > len(payload):
        raise ValueError(f"strings chunk announces {count} strings but is {len(payload)} bytes")
    lengths = struct.unpack_from(f"<{count}I", payload, 8)
    if body + sum(lengths) != len(payload):
        raise ValueError("strings chunk lengths do not add up to its size")
    out: list[str] = []
    pos = body
    for n in lengths:
        out.append(payload[pos : pos + n].decode("utf-8", "surrogatepass"))
        pos += n
    return first_id, out
