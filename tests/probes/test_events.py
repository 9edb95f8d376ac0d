"""The shared event model: layout, addresses and string interning."""

from __future__ import annotations

import threading

from probes.events import (
    EVENT_DTYPE,
    EVENT_SIZE,
    Family,
    StringTable,
    empty,
    format_address,
    from_bytes,
    is_loopback,
    normalize_address,
    pack_address,
)


def test_layout_is_packed_and_stable() -> None:
    assert EVENT_SIZE == 120
    offsets = {name: EVENT_DTYPE.fields[name][1] for name in EVENT_DTYPE.names or ()}
    assert offsets["ts_mono"] == 0
    assert offsets["kind"] == 68
    assert offsets["saddr"] == 72
    assert offsets["comm"] == 104


def test_round_trip_bytes() -> None:
    batch = empty(3)
    batch["pid"] = [1, 2, 3]
    again = from_bytes(batch.tobytes())
    assert list(again["pid"]) == [1, 2, 3]


def test_v4_mapped_is_normalised() -> None:
    fam, raw = pack_address("::ffff:192.0.2.7")
    assert fam == Family.INET
    assert format_address(fam, raw) == "192.0.2.7"
    mapped = bytes(10) + b"\xff\xff" + bytes([198, 51, 100, 1])
    fam2, raw2 = normalize_address(Family.INET6, mapped)
    assert (fam2, format_address(fam2, raw2)) == (Family.INET, "198.51.100.1")


def test_loopback() -> None:
    assert is_loopback(*pack_address("127.3.4.5"))
    assert is_loopback(*pack_address("::1"))
    assert not is_loopback(*pack_address("198.51.100.2"))
    assert not is_loopback(*pack_address("2001:db8::1"))


def test_string_table_interns_once_across_threads() -> None:
    table = StringTable()
    ids: list[int] = []

    def work() -> None:
        ids.extend(table.intern(f"/usr/bin/x{i % 50}") for i in range(1000))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(table) == 51
    assert table.get(table.intern("/usr/bin/x7")) == "/usr/bin/x7"
    assert table.get(0) == ""
    assert table.since(49)[0] == table.get(49)
