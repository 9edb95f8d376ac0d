"""The daemon proper: runs of templates over one shared probe session, and the lifecycle.

Threads: the main thread owns the lifecycle (signals, window deadlines, schedules); the
control server answers requests; the pump thread of :class:`SharedSession` feeds every
collecting run; each ending run is evaluated in a thread of its own. The rooms: the run
table (:mod:`~behavior.daemon.runs`), the status view (:mod:`~behavior.daemon.view`),
retention (:mod:`~behavior.daemon.retention`) and schedules
(:mod:`~behavior.daemon.scheduling`); requests are dispatched in :meth:`Daemon.handle`.
Probe-session callbacks only queue work for the main thread.

Lifecycle: SIGTERM/SIGINT end every collecting window early, store the partial reports
and exit 0 (the budget is :data:`SHUTDOWN_BUDGET_S`); SIGHUP reloads the configuration
and keeps the old one when the new one is invalid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import queue
import secrets
import select
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from behavior.daemon import engine
from behavior.daemon.config import ConfigError, DaemonConfig, Template, load_config
from behavior.daemon.notify import notify
from behavior.daemon.protocol import (
    FindingsRequest,
    Request,
    RunRequest,
    StatusRequest,
    StopRequest,
)
from behavior.daemon.retention import apply_retention
from behavior.daemon.runs import ActiveRun, RunRecord, RunState, RunTable
from behavior.daemon.scheduling import Scheduler
from behavior.daemon.server import ControlServer, RequestRefusedError
from behavior.daemon.sharing import SharedSession
from behavior.daemon.store import TRACE_FILE, RunStore, StoreError
from behavior.daemon.view import DaemonFacts, iso, status_view
from behavior.formats.output import write_atomic
from behavior.formats.suppressions import apply_suppressions
from behavior.interface import RbaError, Report
from behavior.window.assess import WindowEnd
from probes.backend import snapshot_now
from probes.events import StringTable

log = logging.getLogger("rba.daemon")

TICK_S = 0.2
CHECKPOINT_S = 2.0  # how often a collecting run's counts reach its state file
SHUTDOWN_BUDGET_S = 8.0  # leaves headroom under systemd's and the 10 s


class Waker:
    """Wakes the main loop from a signal handler or another thread. A pipe, not a
    threading.Event: a handler runs between two bytecodes of the main thread, maybe while
    that thread holds the Event's (non-reentrant) lock, and setting the Event there
    deadlocks the daemon (a storm of SIGHUPs did). The pipe lives as long as the daemon:
    the handlers stay installed after :meth:`Daemon.serve` returns."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def set(self) -> None:
        """Wake the loop (async-signal-safe: one write(2), no lock)."""
        with contextlib.suppress(OSError):  # full: a wake-up is already pending
            os.write(self._write, b"!")

    def wait(self, timeout: float) -> None:
        """Sleep until woken or ``timeout`` seconds passed; consume pending wake-ups."""
        with contextlib.suppress(InterruptedError):
            select.select([self._read], [], [], timeout)
        with contextlib.suppress(OSError):
            while os.read(self._read, 4096):
                pass


class Daemon:
    """Serves the control socket and carries out runs until told to stop."""

    def __init__(self, config: DaemonConfig, *, opener: Callable[[], Any] | None = None) -> None:
        self.config = config
        self.store = RunStore(config.state_dir)
        self.server = ControlServer(config.socket, self.handle)
        self.probes = SharedSession(opener or self._open_session, snapshot_now)
        self.runs = RunTable()
        self.schedules = Scheduler()
        self._failures: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._wake = Waker()
        self._stop_signal: str | None = None
        self._reload_requested = False
        self._started = time.time()
        self._next_checkpoint = 0.0
        self._state_lock = threading.Lock()  # state files are written in table order

    # --- lifecycle -------------------------------------------------------------------

    def serve(self) -> int:
        """Run until SIGTERM/SIGINT; return the exit status. Raises RbaError at start-up."""
        self.store.open()
        for record in self.store.recover():
            self.runs.put(record)
            self.schedules.recovered(record.template, record.started_at)
        self._apply_retention()
        self._install_signal_handlers()
        self.server.start()
        notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving {self.config.socket}")
        log.info(
            "daemon started (pid %d): config %s, socket %s, state %s, %d template(s)",
            os.getpid(),
            self.config.path,
            self.config.socket,
            self.config.state_dir,
            len(self.config.templates),
        )
        try:
            while self._stop_signal is None:
                self._wake.wait(TICK_S)
                try:
                    self._tick()
                except Exception as e:  # the daemon stays up; the error is logged
                    log.exception("daemon: %s", e)
                    self.probes.health.last_error = f"{type(e).__name__}: {e}"
            notify("STOPPING=1")
            return self._shutdown()
        finally:
            self.server.close()
            self.probes.close()

    def _install_signal_handlers(self) -> None:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            self._stop_signal = signal.Signals(signum).name
            self._wake.set()

        def on_reload(_signum: int, _frame: FrameType | None) -> None:
            self._reload_requested = True
            self._wake.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_reload)

    def _tick(self) -> None:
        if self._reload_requested:
            self._reload_requested = False
            notify("RELOADING=1")
            self.reload()
            notify("READY=1")
        failures = []
        while not self._failures.empty():
            failures.append(self._failures.get())
        for run_id, reason in failures:
            self._fail_collecting(run_id, reason)
        for run in self.runs.due(time.monotonic()):
            self._end_window(run, partial=False, state=RunState.COMPLETED, reason="")
        self._checkpoint()
        self._start_scheduled()

    def _checkpoint(self) -> None:
        """Keep the losses and event counts of collecting runs on disk as they go: in
        their traces (each second) and their state files (each CHECKPOINT_S), so that a
        run the daemon did not live to finish still says what it saw and lost."""
        runs = [r for r in self.runs.collecting() if r.subscription is not None]
        if not runs:
            return
        counters = self.probes.stats_now()
        write_state = time.monotonic() >= self._next_checkpoint
        if write_state:
            self._next_checkpoint = time.monotonic() + CHECKPOINT_S
        for run in runs:
            assert run.subscription is not None
            delta = run.subscription.delta(counters)
            run.assessment.checkpoint(delta)
            lost = sum(s.lost for s in delta.values())
            record = self.runs.update_counts(run, run.subscription.events, lost)
            if write_state and record is not None:
                self._write_state(record, unless_ended=run)

    def _shutdown(self) -> int:
        deadline = time.monotonic() + SHUTDOWN_BUDGET_S
        log.info(
            "%s received: ending %d active run(s) early",
            self._stop_signal,
            len(self.runs.active_ids()),
        )
        # A run still attaching to the probes is let in first, so that it is ended too.
        while self.runs.starting and time.monotonic() < deadline - SHUTDOWN_BUDGET_S / 2:
            time.sleep(0.05)
        for run in self.runs.collecting():
            reason = f"the daemon was stopped ({self._stop_signal}) before the window ended"
            self._end_window(run, partial=True, state=RunState.CANCELED, reason=reason)
        for thread in self.runs.finishers():
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for run in self.runs.abandon_all():
            self._save(
                dataclasses.replace(
                    run.record,
                    state=RunState.FAILED,
                    reason="evaluation did not finish before the daemon exited",
                ),
                force=True,
            )
        log.info("daemon stopped")
        return 0

    def reload(self) -> bool:
        """Re-read the configuration file; keep the current one if the new one is bad."""
        try:
            new = load_config(self.config.path, known_rules=engine.known_rules())
        except ConfigError as e:
            log.error("config reload refused, keeping the previous configuration: %s", e)
            return False
        except Exception as e:  # whatever the file holds, a reload never ends the daemon
            log.error(
                "config reload refused, keeping the previous configuration: %s: %s: %s",
                self.config.path,
                type(e).__name__,
                e,
            )
            return False
        for key in ("socket", "state_dir"):
            if getattr(new, key) != getattr(self.config, key):
                log.warning("config reload: daemon.%s changes only on restart", key)
        self.config = dataclasses.replace(
            new, socket=self.config.socket, state_dir=self.config.state_dir
        )
        log.info("config reloaded: %d template(s)", len(new.templates))
        return True

    # --- requests --------------------------------------------------------------------

    def handle(self, request: Request) -> Any:
        """Answer one control request (called from the server's threads)."""
        if isinstance(request, StatusRequest):
            return self.status()
        if isinstance(request, RunRequest):
            return self.start_run(request.template).id
        if isinstance(request, StopRequest):
            return self.stop_run(request.run)
        assert isinstance(request, FindingsRequest)
        return self.findings(request.run, request.format)

    def start_run(self, template_name: str, *, scheduled: bool = False) -> RunRecord:
        """Start a run of ``template_name`` now. Raises RequestRefusedError."""
        if self._stop_signal is not None:
            raise RequestRefusedError("the daemon is shutting down")
        config = self.config
        template = config.template(template_name)
        if template is None:
            names = ", ".join(t.name for t in config.templates) or "none configured"
            raise RequestRefusedError(f"no template {template_name!r} (templates: {names})")
        busy = self.runs.reserve(config.max_active_runs)
        if busy >= config.max_active_runs:
            raise RequestRefusedError(
                f"{busy} runs are active (daemon.max_active_runs); retry later"
            )
        self.schedules.started(template.name, dt.datetime.now(dt.timezone.utc))
        # Opening the probes may take seconds (bcc compiles): the run table stays usable.
        try:
            run_id = _new_run_id(template.name)
            record = _new_record(run_id, template)
            self._save(record)
            run = self._attach(record, template)
            run.record = _new_record(run_id, template)  # the window opened just now
            self._save(run.record)
            self.runs.activate(run)
        finally:
            self.runs.release()
        log.info(
            "run %s started%s: template %s, window %gs",
            run_id,
            " (scheduled)" if scheduled else "",
            template.name,
            template.duration_s,
        )
        return run.record

    def _attach(self, record: RunRecord, template: Template) -> ActiveRun:
        def make_run(strings: StringTable, sources: tuple[str, ...]) -> engine.DaemonRun:
            return engine.new_run(
                template,
                self.config,
                strings=strings,
                sources=sources,
                run_id=record.id,
                trace_path=os.path.join(self.store.run_dir(record.id), TRACE_FILE),
            )

        try:
            sub, assessment = self.probes.subscribe(record.id, make_run, self._on_feed_error)
        except Exception as e:
            reason = f"cannot start the run: {e}"
            self.probes.health.last_error = reason
            log.error("run %s not started: %s", record.id, reason)
            self._save(dataclasses.replace(record, state=RunState.FAILED, reason=reason))
            raise RequestRefusedError(reason) from e
        deadline = time.monotonic() + template.duration_s
        return ActiveRun(record, template, assessment, deadline, sub)

    def _on_feed_error(self, run_id: str, error: Exception) -> None:
        # Called by the pump with the session lock held: only queue the work.
        self._failures.put((run_id, f"{type(error).__name__}: {error}"))
        self._wake.set()

    def stop_run(self, run_id: str) -> dict[str, Any]:
        """End a collecting run early; its findings are kept and marked partial."""
        run, record = self.runs.lookup(run_id)
        if run is None:
            if record is None:
                raise RequestRefusedError(f"no run {run_id!r}")
            raise RequestRefusedError(f"run {run_id} is already {record.state}")
        if run.finisher is not None:
            raise RequestRefusedError(f"run {run_id} is already evaluating")
        self._end_window(run, partial=True, state=RunState.CANCELED, reason="stopped by request")
        return {"id": run_id, "state": RunState.EVALUATING}

    def findings(self, run_id: str, fmt: str) -> str:
        """The stored report of a finished run, in ``fmt``."""
        _run, record = self.runs.lookup(run_id)
        if record is None:
            raise RequestRefusedError(f"no run {run_id!r}")
        if record.state.active:
            raise RequestRefusedError(f"run {run_id} is still {record.state}: no findings yet")
        try:
            text = self.store.read_report(run_id, fmt)
        except StoreError as e:
            raise RequestRefusedError(str(e)) from e
        if text is None:
            if record.state == RunState.FAILED:
                raise RequestRefusedError(f"run {run_id} failed: {record.reason}")
            raise RequestRefusedError(f"run {run_id} has no stored {fmt} report")
        return text

    def status(self) -> dict[str, Any]:
        """Runs, templates and health, for ``rba status``."""
        facts = DaemonFacts(
            config=self.config,
            uptime_s=time.time() - self._started,
            requests_served=self.server.requests_served,
            requests_refused=self.server.requests_refused,
            store=self.store.usage(),
        )
        return status_view(facts, self.runs.views(), self.probes, self.schedules)

    # --- ending runs -----------------------------------------------------------------

    def _end_window(self, run: ActiveRun, *, partial: bool, state: RunState, reason: str) -> None:
        """Detach ``run`` from the probes and evaluate it in a thread of its own."""
        finisher = threading.Thread(
            target=self._evaluate,
            args=(run, partial, state, reason),
            name=f"rba-eval-{run.record.id}",
            daemon=True,
        )
        if not self.runs.claim(run, finisher):
            return
        sub = self.probes.unsubscribe(run.record.id)
        run.ended_at_ns = time.time_ns()
        ended = dt.datetime.fromtimestamp(run.ended_at_ns / 1e9, dt.timezone.utc)
        run.record = dataclasses.replace(
            run.record,
            state=RunState.EVALUATING,
            ended_at=iso(ended),
            partial=partial,
            reason=reason,
            events=sub.events if sub else run.record.events,
            lost_events=sum(s.lost for s in sub.final.values()) if sub else 0,
        )
        run.subscription = sub
        self._save(run.record)
        finisher.start()

    def _evaluate(self, run: ActiveRun, partial: bool, state: RunState, reason: str) -> None:
        record = run.record
        began = time.monotonic()
        try:
            sub = run.subscription
            report = run.assessment.finish(
                WindowEnd(
                    ended_at_ns=run.ended_at_ns,
                    partial=partial,
                    source_stats=sub.final if sub else {},
                    sources=tuple(sub.sources) if sub else (),
                    notices=tuple(sub.notices) if sub else (),
                )
            )
            report = apply_suppressions(report, self.config.suppressions)
            self._store_reports(run, report)  # before the trace is closed: findings first
            run.assessment.close()
            self._copy_findings(record.id, report)
            self._add_to_lake(record.id, report)
        except Exception as e:  # one run's failure must not take the daemon down
            with contextlib.suppress(Exception):
                run.assessment.close()
            log.exception("run %s: evaluation failed", record.id)
            self.probes.health.last_error = f"run {record.id}: evaluation failed: {e}"
            failed = dataclasses.replace(
                record, state=RunState.FAILED, reason=f"evaluation failed: {e}"
            )
            self._finish(failed)
            return
        trace_error = run.assessment.trace_error
        final = dataclasses.replace(
            record,
            state=state,
            reason="; ".join(
                r for r in (record.reason, trace_error and f"trace: {trace_error}") if r
            ),
            findings=len(report.findings),
            events=report.run.events,
            lost_events=report.run.lost_events,
        )
        self._finish(final)
        log.info(
            "run %s %s%s: %d finding(s), %d events, %d lost; evaluated in %.1fs",
            record.id,
            state,
            " (partial)" if partial else "",
            final.findings,
            final.events,
            final.lost_events,
            time.monotonic() - began,
        )

    def _store_reports(self, run: ActiveRun, report: Report) -> None:
        """Store every rendering of ``report``. When the store is full, the findings
        matter most: the trace and the other renderings are removed to make room for
        ``report.json``, and only if even that cannot be written does the run fail."""
        run_id = run.record.id
        # JSON last: its presence means every rendering is complete (see recover()).
        rendered = [
            (fmt, engine.render_report(report, fmt, self.config.findings))
            for fmt in sorted(engine.FORMATS, key=lambda f: f == "json")
        ]
        try:
            for fmt, text in rendered:
                self.store.save_report(run_id, text, fmt)
        except StoreError as e:
            # Room for the reference rendering at least: the others and the trace go.
            run.assessment.close()
            self.store.remove_renderings(run_id, keep=("json",))
            if self.store.remove_trace(run_id):
                run.assessment.trace_error = f"removed to make room for the findings ({e})"
            log.error("run %s: %s; keeping only report.json", run_id, e)
            self.store.save_report(run_id, rendered[-1][1], "json")

    def _finish(self, record: RunRecord) -> None:
        """Record a run's final state on disk, apply retention, and only then show it in
        the run table: a client that sees the run finished sees the store retention left."""
        if not self.runs.retire(record.id):
            return  # outlived the shutdown budget: already recorded as failed
        self._write_state(record)
        removed = self._apply_retention(finished=record)
        if record.id not in removed:
            self.runs.put(record)

    def _fail_collecting(self, run_id: str, reason: str) -> None:
        run, _record = self.runs.lookup(run_id)
        if run is None and self.runs.starting > 0:
            self._failures.put((run_id, reason))  # failed while still attaching: next tick
            return
        if run is None or run.finisher is not None:
            return
        self.probes.unsubscribe(run_id)
        self.probes.health.last_error = f"run {run_id}: {reason}"
        try:
            run.assessment.close()
        except Exception as e:  # a fact source that will not close must not end the daemon
            log.error("run %s: closing it failed: %s", run_id, e)
        failed = dataclasses.replace(
            run.record, state=RunState.FAILED, reason=reason, ended_at=_iso_now()
        )
        self._finish(failed)
        log.error("run %s failed: %s", run_id, reason)

    def _copy_findings(self, run_id: str, report: Report) -> None:
        directory = self.config.findings.directory
        if not directory:
            return
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            for fmt in self.config.findings.formats:
                ext = {"text": "txt"}.get(fmt, fmt)
                text = engine.render_report(report, fmt, self.config.findings)
                write_atomic(os.path.join(directory, f"{run_id}.{ext}"), text)
        except (OSError, RbaError) as e:
            self.probes.health.last_error = f"findings copy for {run_id}: {e}"
            log.error("run %s: cannot write findings to %s: %s", run_id, directory, e)

    def _add_to_lake(self, run_id: str, report: Report) -> None:
        """Best-effort, like the findings copy: the run is stored whatever the lake says."""
        try:
            engine.add_to_lake(report, self.config.findings)
        except (OSError, RbaError) as e:
            self.probes.health.last_error = f"lake for {run_id}: {e}"
            log.error(
                "run %s: cannot add it to the lake %s: %s", run_id, self.config.findings.lake, e
            )

    # --- store and schedule ----------------------------------------------------------

    def _save(self, record: RunRecord, *, force: bool = False) -> None:
        if self.runs.put(record, force=force):
            self._write_state(record)

    def _write_state(self, record: RunRecord, *, unless_ended: ActiveRun | None = None) -> None:
        with self._state_lock:
            if unless_ended is not None and unless_ended.finisher is not None:
                return  # a checkpoint that lost the race with the window's end
            try:
                self.store.save(record)
            except StoreError as e:
                self.probes.health.last_error = str(e)
                log.error("%s", e)

    def _apply_retention(self, *, finished: RunRecord | None = None) -> list[str]:
        return apply_retention(self.store, self.runs, self.config.retention, finished=finished)

    def _start_scheduled(self) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        for template in self.schedules.due(self.config.templates, self.runs.busy_templates(), now):
            try:
                self.start_run(template.name, scheduled=True)
            except RequestRefusedError as e:
                self.schedules.started(template.name, now)  # do not retry every tick
                log.error("scheduled run of %s not started: %s", template.name, e)

    def _open_session(self) -> Any:
        return engine.open_probe_session(
            self.config.probes, self.config.poll_interval_s, self.config.content
        )


def _new_record(run_id: str, template: Template) -> RunRecord:
    now = dt.datetime.now(dt.timezone.utc)
    return RunRecord(
        id=run_id,
        template=template.name,
        state=RunState.COLLECTING,
        started_at=iso(now),
        ends_at=iso(now + dt.timedelta(seconds=template.duration_s)),
        duration_s=template.duration_s,
    )


def _new_run_id(template: str) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{template}-{secrets.token_hex(3)}"


def _iso_now() -> str:
    return iso(dt.datetime.now(dt.timezone.utc))
