"""Fixtures of the probe tests: real listeners in their own processes, a gcc-built
short-lived program, and helpers that read a session until the kernel's events arrive."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from probes.backend import ProbeSession
from probes.common import concat
from probes.events import EventArray, empty

# A listener that accepts (and keeps) connections until killed; prints its port.
LISTENER = r"""
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1024)
print(s.getsockname()[1], flush=True)
kept = []
while True:
    kept.append(s.accept()[0])
"""


class Listener:
    """A listening process: its pid and port."""

    def __init__(self, address: str, prefix: list[str] | None = None, port: int = 0) -> None:
        argv = [*(prefix or []), sys.executable, "-c", LISTENER, address, str(port)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.pid = self.proc.pid

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def listener_factory() -> Iterator[Callable[..., Listener]]:
    made: list[Listener] = []

    def make(
        address: str = "127.0.0.1", prefix: list[str] | None = None, port: int = 0
    ) -> Listener:
        made.append(Listener(address, prefix, port))
        return made[-1]

    yield make
    for lst in made:
        lst.close()


@pytest.fixture(scope="session")
def short_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gcc-built program that exits at once (lives well under 10 ms)."""
    directory = tmp_path_factory.mktemp("short")
    source = directory / "blink.c"
    source.write_text("int main(void) { return 3; }\n")
    binary = directory / "rba-blink"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source)], check=True)
    return binary


class Collector:
    """Keeps every event a session delivered, read until a condition holds."""

    def __init__(self, session: ProbeSession) -> None:
        self.session = session
        self.events: EventArray = empty()

    def until(self, done: Callable[[EventArray], object], timeout: float = 5.0) -> EventArray:
        """Read until ``done(all events so far)`` is true or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not done(self.events) and time.monotonic() < deadline:
            batch = self.session.read(0.1)
            if len(batch):
                self.events = concat([self.events, batch])
        return self.events

    def drain(self) -> EventArray:
        """Add whatever the (stopped) session still holds."""
        self.events = concat([self.events, self.session.read(0.0)])
        return self.events


def read_until(
    session: ProbeSession, done: Callable[[EventArray], object], timeout: float = 5.0
) -> EventArray:
    """Read ``session`` until ``done(all events so far)`` holds or ``timeout`` passes."""
    return Collector(session).until(done, timeout)


def select(events: EventArray, **where: int) -> EventArray:
    """Rows of ``events`` whose fields equal the given values."""
    mask = np.ones(len(events), dtype=bool)
    for name, value in where.items():
        mask &= events[name] == value
    return events[mask]
