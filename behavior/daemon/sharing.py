"""One probe session shared by every active run: no double probes.

The session opens when the first run subscribes and stops when the last one leaves. A
pump thread reads its batches and feeds each subscriber in turn; a subscriber whose
``feed`` raises is detached and reported through its error callback, the others go on.
Per-run event and loss counts are the session's counters taken between subscribing and
leaving.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from probes.events import EventArray, StringTable
from probes.interface import SourceStats

log = logging.getLogger("rba.daemon")

Sink = Callable[[EventArray], None]
ErrorCallback = Callable[[str, Exception], None]
READ_TIMEOUT_S = 0.25
RATE_WINDOW_S = 10.0


class Session(Protocol):
    """What the daemon needs of :class:`probes.backend.ProbeSession`."""

    @property
    def sources(self) -> tuple[str, ...] | list[str]: ...

    @property
    def notices(self) -> tuple[str, ...] | list[str]: ...

    def start(self, strings: StringTable) -> None: ...

    def read(self, timeout: float) -> EventArray: ...

    def stop(self) -> None: ...

    def stats(self) -> dict[str, SourceStats]: ...


class Consumer(Protocol):
    """What a subscriber is: something fed batches, closed when it could not attach."""

    def feed(self, events: EventArray) -> None: ...

    def close(self) -> None: ...


C = TypeVar("C", bound=Consumer)


@dataclass
class Subscription:
    """A run attached to the shared session."""

    key: str
    sink: Sink
    on_error: ErrorCallback
    baseline: dict[str, SourceStats]
    sources: tuple[str, ...] = ()  # the session's sources and notices when it attached
    notices: tuple[str, ...] = ()
    events: int = 0
    # A run that joined an open session: events older than this (CLOCK_MONOTONIC ns),
    # still queued in the session when it joined, predate its window and are skipped.
    since_ns: int = 0
    final: dict[str, SourceStats] = field(default_factory=dict)

    def delta(self, now: dict[str, SourceStats]) -> dict[str, SourceStats]:
        """The session's counters since this run subscribed, per source."""
        out = {}
        for name, stats in now.items():
            base = self.baseline.get(name, SourceStats(0, 0))
            out[name] = SourceStats(
                events=stats.events - base.events,
                lost=stats.lost - base.lost,
                gaps=stats.gaps[len(base.gaps) :],
            )
        return out


@dataclass
class Health:
    """Counters over the daemon's life, for ``rba status``."""

    sessions_opened: int = 0
    events_total: int = 0
    lost_total: int = 0  # losses of sessions already closed, plus the open one's
    last_error: str = ""
    backend: str = ""  # sources of the open (or last) session, e.g. "ebpf+poll"


class SharedSession:
    """Opens sessions with ``opener`` on demand and fans their batches out."""

    def __init__(
        self, opener: Callable[[], Session], snapshotter: Callable[[StringTable], EventArray]
    ) -> None:
        self._opener = opener
        self._snapshotter = snapshotter
        self._lock = threading.RLock()
        self._session: Session | None = None
        self._strings: StringTable | None = None
        self._pump: threading.Thread | None = None
        self._subs: dict[str, Subscription] = {}
        self._rate: collections.deque[tuple[float, int]] = collections.deque()
        self._closed_lost = 0
        self.health = Health()

    @property
    def active(self) -> bool:
        """Whether a session is open now."""
        return self._session is not None

    def subscribe(
        self,
        key: str,
        make_consumer: Callable[[StringTable, tuple[str, ...]], C],
        on_error: ErrorCallback,
    ) -> tuple[Subscription, C]:
        """Attach a run, opening the session if none is open. ``make_consumer`` receives
        the session's string table and source names and makes what is fed; it is returned
        with the subscription. Raises whatever opening the session or ``make_consumer``
        raises (a consumer already made is closed first).

        The first run gets the session's own start snapshot through its first read. A run
        joining an open session first gets a fresh snapshot of its own, taken with the lock
        held so that no batch is delivered between the snapshot and the attachment."""
        with self._lock:
            late = self._session is not None
            if not late:
                self._open()
            assert self._session is not None and self._strings is not None
            since_ns = time.monotonic_ns() if late else 0
            consumer: C | None = None
            try:
                consumer = make_consumer(self._strings, tuple(self._session.sources))
                if late:
                    consumer.feed(self._snapshotter(self._strings))
            except BaseException:
                if consumer is not None:
                    consumer.close()
                if not self._subs:
                    self._close()
                raise
            session = self._session
            sub = Subscription(
                key,
                consumer.feed,
                on_error,
                baseline=session.stats(),
                sources=tuple(session.sources),
                notices=tuple(session.notices),
                since_ns=since_ns,
            )
            self._subs[key] = sub
            return sub, consumer

    def unsubscribe(self, key: str) -> Subscription | None:
        """Detach a run (its ``final`` counters set); the last one out stops the session."""
        with self._lock:
            sub = self._subs.pop(key, None)
            if sub is not None and self._session is not None:
                sub.final = sub.delta(self._session.stats())
            if not self._subs and self._session is not None:
                self._close()
            return sub

    def sources(self) -> tuple[str, ...]:
        """Names of the open session's sources (empty when idle)."""
        with self._lock:
            return tuple(self._session.sources) if self._session is not None else ()

    def notices(self) -> tuple[str, ...]:
        """The open session's notices (fallbacks, reduced coverage)."""
        with self._lock:
            return tuple(self._session.notices) if self._session is not None else ()

    def stats_now(self) -> dict[str, SourceStats]:
        """The open session's counters ({} when idle)."""
        with self._lock:
            return self._session.stats() if self._session is not None else {}

    def events_per_second(self) -> float:
        """Events delivered per second over the last few seconds."""
        with self._lock:
            if len(self._rate) < 2:
                return 0.0
            (t0, n0), (t1, n1) = self._rate[0], self._rate[-1]
            return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def lost_since_start(self) -> int:
        """Events lost by every session since the daemon started."""
        with self._lock:
            current = self._current_lost()
            return self._closed_lost + current

    def close(self) -> None:
        """Detach everyone and stop the session (shutdown)."""
        with self._lock:
            self._subs.clear()
            if self._session is not None:
                self._close()

    def _current_lost(self) -> int:
        if self._session is None:
            return 0
        try:
            return sum(s.lost for s in self._session.stats().values())
        except Exception:  # counters are best-effort health data
            return 0

    def _open(self) -> None:
        session = self._opener()
        strings = StringTable()
        session.start(strings)
        self._session, self._strings = session, strings
        self.health.sessions_opened += 1
        self.health.backend = "+".join(session.sources)
        log.info("probe session #%d started: %s", self.health.sessions_opened, self.health.backend)
        for notice in session.notices:
            log.info("probe session: %s", notice)
        self._pump = threading.Thread(
            target=self._pump_loop, args=(session,), name="rba-pump", daemon=True
        )
        self._pump.start()

    def _close(self) -> None:
        session, pump = self._session, self._pump
        assert session is not None
        self._closed_lost += self._current_lost()
        self._session = self._strings = self._pump = None
        self._rate.clear()
        try:
            session.stop()
        except Exception as e:
            self.health.last_error = f"stopping the probe session: {e}"
            log.warning("probe session: stop failed: %s", e)
        if pump is not None and pump is not threading.current_thread():
            # The pump reads without the lock held, so it notices the stop within a read.
            self._lock.release()
            try:
                pump.join(timeout=5.0)
            finally:
                self._lock.acquire()
        log.info("probe session #%d stopped", self.health.sessions_opened)

    def _pump_loop(self, session: Session) -> None:
        while self._session is session:
            try:
                batch = session.read(READ_TIMEOUT_S)
            except Exception as e:
                self._session_failed(session, e)
                return
            with self._lock:
                if self._session is not session:
                    return
                self._deliver(batch)

    def _deliver(self, batch: EventArray) -> None:
        n = len(batch)
        self.health.events_total += n
        now = time.monotonic()
        self._rate.append((now, self.health.events_total))
        while self._rate and now - self._rate[0][0] > RATE_WINDOW_S:
            self._rate.popleft()
        if not n:
            return
        for key, sub in list(self._subs.items()):
            try:
                view = _within_window(sub, batch)
                if len(view):
                    sub.sink(view)
                    sub.events += len(view)
            except Exception as e:
                log.exception("run %s: feeding events failed", key)
                self._subs.pop(key, None)
                sub.on_error(key, e)

    def _session_failed(self, session: Session, error: Exception) -> None:
        with self._lock:
            if self._session is not session:
                return
            self.health.last_error = f"probe session failed: {error}"
            log.error("probe session failed: %s", error)
            failed = list(self._subs.items())
            self._subs.clear()
            self._close()
        for key, sub in failed:
            sub.on_error(key, error)


def _within_window(sub: Subscription, batch: EventArray) -> EventArray:
    """The rows of ``batch`` inside ``sub``'s window (see ``Subscription.since_ns``)."""
    if not sub.since_ns:
        return batch
    old = batch["ts_mono"] < sub.since_ns
    if not old.any():
        sub.since_ns = 0  # batches come in time order: nothing older will follow
        return batch
    return batch[~old]
