"""The daemon proper: runs of templates over one shared probe session, and the lifecycle.

Threads: the main thread owns the lifecycle (signals, window deadlines, schedules); the
control server answers requests; the pump thread of :class:`SharedSession` feeds every
collecting run; each ending run is evaluated in a thread of its own. One lock guards the
run table; probe-session callbacks only queue work for the main thread.

Lifecycle: SIGTERM/SIGINT end every collecting window early, store the partial reports
and exit 0 (the budget is :data:`SHUTDOWN_BUDGET_S`); SIGHUP reloads the configuration
and keeps the old one when the new one is invalid.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import queue
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from behavior.daemon import engine
from behavior.daemon.config import ConfigError, DaemonConfig, Template, load_config
from behavior.daemon.notify import notify
from behavior.daemon.protocol import Request
from behavior.daemon.server import ControlServer, RequestRefusedError
from behavior.daemon.sharing import SharedSession, Subscription
from behavior.daemon.store import (
    ACTIVE_STATES,
    CANCELED,
    COLLECTING,
    COMPLETED,
    EVALUATING,
    FAILED,
    TRACE_FILE,
    RunRecord,
    RunStore,
    StoreError,
)
from behavior.formats.output import write_atomic
from behavior.formats.suppressions import apply_suppressions
from behavior.interface import RbaError, Report
from behavior.window.assess import WindowEnd
from probes.backend import snapshot_now
from probes.events import StringTable

log = logging.getLogger("rba.daemon")

TICK_S = 0.2
SHUTDOWN_BUDGET_S = 8.0  # leaves headroom under systemd's and the 10 s


@dataclass
class ActiveRun:
    """A run that is collecting or evaluating."""

    record: RunRecord
    template: Template
    assessment: engine.DaemonRun
    deadline: float  # time.monotonic() at which the window ends
    subscription: Subscription | None = None
    ended_at_ns: int = 0
    finisher: threading.Thread | None = None


class Daemon:
    """Serves the control socket and carries out runs until told to stop."""

    def __init__(self, config: DaemonConfig, *, opener: Callable[[], Any] | None = None) -> None:
        self.config = config
        self.store = RunStore(config.state_dir)
        self.server = ControlServer(config.socket, self.handle)
        self.probes = SharedSession(opener or self._open_session, snapshot_now)
        self._lock = threading.Lock()
        self._records: dict[str, RunRecord] = {}
        self._active: dict[str, ActiveRun] = {}
        self._last_start: dict[str, dt.datetime] = {}
        self._failures: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop_signal: str | None = None
        self._reload_requested = False
        self._starting = 0  # runs between acceptance and attachment to the probes
        self._abandoned: set[str] = set()  # runs given up at shutdown: their state is final
        self._started = time.time()

    # --- lifecycle -------------------------------------------------------------------

    def serve(self) -> int:
        """Run until SIGTERM/SIGINT; return the exit status. Raises RbaError at start-up."""
        self.store.open()
        for record in self.store.recover():
            self._records[record.id] = record
            self._note_start(record)
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
                self._wake.clear()
                self._tick()
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
        now = time.monotonic()
        with self._lock:
            due = [r for r in self._active.values() if r.finisher is None and now >= r.deadline]
        for run in due:
            self._end_window(run, partial=False, state=COMPLETED, reason="")
        self._start_scheduled()

    def _shutdown(self) -> int:
        deadline = time.monotonic() + SHUTDOWN_BUDGET_S
        log.info("%s received: ending %d active run(s) early", self._stop_signal, len(self._active))
        # A run still attaching to the probes is let in first, so that it is ended too.
        while self._starting and time.monotonic() < deadline - SHUTDOWN_BUDGET_S / 2:
            time.sleep(0.05)
        with self._lock:
            collecting = [r for r in self._active.values() if r.finisher is None]
        for run in collecting:
            reason = f"the daemon was stopped ({self._stop_signal}) before the window ended"
            self._end_window(run, partial=True, state=CANCELED, reason=reason)
        with self._lock:
            finishers = [r.finisher for r in self._active.values() if r.finisher is not None]
        for thread in finishers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            late = list(self._active.values())
            self._abandoned.update(run.record.id for run in late)
        for run in late:
            self._save(
                run.record.with_changes(
                    state=FAILED, reason="evaluation did not finish before the daemon exited"
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
        for key in ("socket", "state_dir"):
            if getattr(new, key) != getattr(self.config, key):
                log.warning("config reload: daemon.%s changes only on restart", key)
        with self._lock:
            self.config = dataclasses.replace(
                new, socket=self.config.socket, state_dir=self.config.state_dir
            )
        log.info("config reloaded: %d template(s)", len(new.templates))
        return True

    # --- requests --------------------------------------------------------------------

    def handle(self, request: Request) -> Any:
        """Answer one control request (called from the server's threads)."""
        if request.op == "status":
            return self.status()
        if request.op == "run":
            return self.start_run(request.template).id
        if request.op == "stop":
            return self.stop_run(request.run)
        return self.findings(request.run, request.format)

    def start_run(self, template_name: str, *, scheduled: bool = False) -> RunRecord:
        """Start a run of ``template_name`` now. Raises RequestRefusedError."""
        if self._stop_signal is not None:
            raise RequestRefusedError("the daemon is shutting down")
        with self._lock:
            template = self.config.template(template_name)
            if template is None:
                names = ", ".join(t.name for t in self.config.templates) or "none configured"
                raise RequestRefusedError(f"no template {template_name!r} (templates: {names})")
            busy = len(self._active) + self._starting
            if busy >= self.config.max_active_runs:
                raise RequestRefusedError(
                    f"{busy} runs are active (daemon.max_active_runs); retry later"
                )
            self._starting += 1
            self._last_start[template.name] = dt.datetime.now(dt.timezone.utc)
        # Opening the probes may take seconds (bcc compiles): the run table stays usable.
        try:
            run_id = _new_run_id(template.name)
            record = _new_record(run_id, template)
            self._save(record)
            run = self._attach(record, template)
            run.record = _new_record(run_id, template)  # the window opened just now
            self._save(run.record)
            with self._lock:
                self._active[run_id] = run
        finally:
            with self._lock:
                self._starting -= 1
        log.info(
            "run %s started%s: template %s, window %gs",
            run_id,
            " (scheduled)" if scheduled else "",
            template.name,
            template.duration_s,
        )
        return run.record

    def _attach(self, record: RunRecord, template: Template) -> ActiveRun:
        holder: dict[str, engine.DaemonRun] = {}

        def make_sink(strings: StringTable, sources: tuple[str, ...]) -> Callable[[Any], None]:
            holder["run"] = engine.new_run(
                template,
                self.config,
                strings=strings,
                sources=sources,
                run_id=record.id,
                trace_path=os.path.join(self.store.run_dir(record.id), TRACE_FILE),
            )
            return holder["run"].feed

        try:
            sub = self.probes.subscribe(record.id, make_sink, self._on_feed_error)
        except Exception as e:
            if "run" in holder:
                holder["run"].close()
            reason = f"cannot start the run: {e}"
            self.probes.health.last_error = reason
            log.error("run %s not started: %s", record.id, reason)
            self._save(record.with_changes(state=FAILED, reason=reason))
            raise RequestRefusedError(reason) from e
        deadline = time.monotonic() + template.duration_s
        return ActiveRun(record, template, holder["run"], deadline, sub)

    def _on_feed_error(self, run_id: str, error: Exception) -> None:
        # Called by the pump with the session lock held: only queue the work.
        self._failures.put((run_id, f"{type(error).__name__}: {error}"))
        self._wake.set()

    def stop_run(self, run_id: str) -> dict[str, Any]:
        """End a collecting run early; its findings are kept and marked partial."""
        with self._lock:
            run = self._active.get(run_id)
            record = self._records.get(run_id)
        if run is None:
            if record is None:
                raise RequestRefusedError(f"no run {run_id!r}")
            raise RequestRefusedError(f"run {run_id} is already {record.state}")
        if run.finisher is not None:
            raise RequestRefusedError(f"run {run_id} is already evaluating")
        self._end_window(run, partial=True, state=CANCELED, reason="stopped by request")
        return {"id": run_id, "state": EVALUATING}

    def findings(self, run_id: str, fmt: str) -> str:
        """The stored report of a finished run, in ``fmt``."""
        with self._lock:
            record = self._records.get(run_id)
        if record is None:
            raise RequestRefusedError(f"no run {run_id!r}")
        if record.state in ACTIVE_STATES:
            raise RequestRefusedError(f"run {run_id} is still {record.state}: no findings yet")
        try:
            text = self.store.read_report(run_id, fmt)
        except StoreError as e:
            raise RequestRefusedError(str(e)) from e
        if text is None:
            if record.state == FAILED:
                raise RequestRefusedError(f"run {run_id} failed: {record.reason}")
            raise RequestRefusedError(f"run {run_id} has no stored {fmt} report")
        return text

    def status(self) -> dict[str, Any]:
        """Runs, templates and health, for ``rba status``."""
        now = time.monotonic()
        live: list[tuple[dict[str, Any], Subscription]] = []
        with self._lock:
            runs = []
            for record in self._records.values():
                entry: dict[str, Any] = dict(record.__dict__)
                run = self._active.get(record.id)
                if run is not None and record.state == COLLECTING:
                    entry["time_left_s"] = max(0.0, run.deadline - now)
                    if run.subscription is not None:
                        live.append((entry, run.subscription))
                runs.append(entry)
            templates = [self._template_status(t) for t in self.config.templates]
        # Outside the run table's lock: the probe session's lock may be held for a while
        # (a session opening, a joining run's snapshot).
        counters = self.probes.stats_now() if live else {}
        for entry, subscription in live:
            entry["events"] = subscription.events
            entry["lost_events"] = sum(s.lost for s in subscription.delta(counters).values())
        return {
            "daemon": {
                "pid": os.getpid(),
                "uptime_s": round(time.time() - self._started, 1),
                "config": self.config.path,
                "state_dir": self.config.state_dir,
                "probes": self._probe_health(),
                "requests_served": self.server.requests_served,
                "requests_refused": self.server.requests_refused,
            },
            "templates": templates,
            "runs": runs,
        }

    def _probe_health(self) -> dict[str, Any]:
        health = self.probes.health
        return {
            "choice": self.config.probes,
            "backend": "+".join(self.probes.sources()) or f"idle (last: {health.backend or '-'})",
            "session_active": self.probes.active,
            "sessions_opened": health.sessions_opened,
            "events_total": health.events_total,
            "events_per_s": round(self.probes.events_per_second(), 1),
            "lost_since_start": self.probes.lost_since_start(),
            "notices": list(self.probes.notices()),
            "last_error": health.last_error,
        }

    def _template_status(self, template: Template) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": template.name,
            "duration_s": template.duration_s,
            "rules": sorted(template.rules) if template.rules is not None else "all",
            "schedule": template.schedule.describe() if template.schedule else "",
        }
        if template.schedule is not None:
            last = self._last_start.get(template.name)
            entry["next_run"] = _iso(
                template.schedule.next_after(last, dt.datetime.now(dt.timezone.utc))
            )
        return entry

    # --- ending runs -----------------------------------------------------------------

    def _end_window(self, run: ActiveRun, *, partial: bool, state: str, reason: str) -> None:
        """Detach ``run`` from the probes and evaluate it in a thread of its own."""
        with self._lock:
            if run.finisher is not None:
                return
            run.finisher = threading.Thread(
                target=self._evaluate,
                args=(run, partial, state, reason),
                name=f"rba-eval-{run.record.id}",
                daemon=True,
            )
        sub = self.probes.unsubscribe(run.record.id)
        run.ended_at_ns = time.time_ns()
        ended = dt.datetime.fromtimestamp(run.ended_at_ns / 1e9, dt.timezone.utc)
        run.record = run.record.with_changes(
            state=EVALUATING,
            ended_at=_iso(ended),
            partial=partial,
            reason=reason,
            events=sub.events if sub else run.record.events,
            lost_events=sum(s.lost for s in sub.final.values()) if sub else 0,
        )
        run.subscription = sub
        self._save(run.record)
        assert run.finisher is not None
        run.finisher.start()

    def _evaluate(self, run: ActiveRun, partial: bool, state: str, reason: str) -> None:
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
            # JSON last: its presence means every rendering is complete (see recover()).
            for fmt in sorted(engine.FORMATS, key=lambda f: f == "json"):
                self.store.save_report(record.id, engine.render_report(report, fmt), fmt)
            self._copy_findings(record.id, report)
        except Exception as e:  # one run's failure must not take the daemon down
            log.exception("run %s: evaluation failed", record.id)
            self.probes.health.last_error = f"run {record.id}: evaluation failed: {e}"
            self._finish(run, record.with_changes(state=FAILED, reason=f"evaluation failed: {e}"))
            return
        final = record.with_changes(
            state=state,
            findings=len(report.findings),
            events=report.run.events,
            lost_events=report.run.lost_events,
        )
        self._finish(run, final)
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

    def _finish(self, run: ActiveRun, record: RunRecord) -> None:
        """Record ``run``'s final state on disk, apply retention, and only then show it in
        the run table: a client that sees the run finished sees the store retention left."""
        with self._lock:
            if record.id in self._abandoned:
                return  # outlived the shutdown budget: already recorded as failed
            self._active.pop(record.id, None)
        self._write_state(record)
        removed = self._apply_retention(finished=record)
        if record.id not in removed:
            with self._lock:
                self._records[record.id] = record

    def _fail_collecting(self, run_id: str, reason: str) -> None:
        with self._lock:
            run = self._active.get(run_id)
            attaching = self._starting > 0
        if run is None and attaching:
            self._failures.put((run_id, reason))  # failed while still attaching: next tick
            return
        if run is None or run.finisher is not None:
            return
        self.probes.unsubscribe(run_id)
        self.probes.health.last_error = f"run {run_id}: {reason}"
        run.assessment.close()
        self._finish(run, run.record.with_changes(state=FAILED, reason=reason, ended_at=_iso_now()))
        log.error("run %s failed: %s", run_id, reason)

    def _copy_findings(self, run_id: str, report: Report) -> None:
        directory = self.config.findings.directory
        if not directory:
            return
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            for fmt in self.config.findings.formats:
                ext = {"text": "txt"}.get(fmt, fmt)
                text = engine.render_report(report, fmt)
                write_atomic(os.path.join(directory, f"{run_id}.{ext}"), text)
        except (OSError, RbaError) as e:
            self.probes.health.last_error = f"findings copy for {run_id}: {e}"
            log.error("run %s: cannot write findings to %s: %s", run_id, directory, e)

    # --- store and schedule ----------------------------------------------------------

    def _save(self, record: RunRecord, *, force: bool = False) -> None:
        with self._lock:
            if record.id in self._abandoned and not force:
                return  # an evaluation that outlived the shutdown budget: already failed
            self._records[record.id] = record
        self._write_state(record)

    def _write_state(self, record: RunRecord) -> None:
        try:
            self.store.save(record)
        except StoreError as e:
            self.probes.health.last_error = str(e)
            log.error("%s", e)

    def _apply_retention(self, *, finished: RunRecord | None = None) -> list[str]:
        """Delete the oldest finished runs beyond the bounds; ``finished`` is the final
        record of a run not yet updated in the run table. Returns the removed ids."""
        with self._lock:
            records = [
                finished if finished is not None and r.id == finished.id else r
                for r in self._records.values()
            ]
            keep = set(self._active)
            retention = self.config.retention
        removed = self.store.enforce_retention(
            records, max_runs=retention.max_runs, max_bytes=retention.max_bytes, keep=keep
        )
        if removed:
            with self._lock:
                for run_id in removed:
                    self._records.pop(run_id, None)
            log.info("retention: removed %d old run(s)", len(removed))
        return removed

    def _note_start(self, record: RunRecord) -> None:
        started = dt.datetime.fromisoformat(record.started_at)
        last = self._last_start.get(record.template)
        if last is None or started > last:
            self._last_start[record.template] = started

    def _start_scheduled(self) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        with self._lock:
            busy = {r.template.name for r in self._active.values()}
            due = [
                t
                for t in self.config.templates
                if t.schedule is not None
                and t.name not in busy
                and now >= t.schedule.next_after(self._last_start.get(t.name), now)
            ]
        for template in due:
            try:
                self.start_run(template.name, scheduled=True)
            except RequestRefusedError as e:
                self._last_start[template.name] = now  # do not retry every tick
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
        state=COLLECTING,
        started_at=_iso(now),
        ends_at=_iso(now + dt.timedelta(seconds=template.duration_s)),
        duration_s=template.duration_s,
    )


def _new_run_id(template: str) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{template}-{secrets.token_hex(3)}"


def _iso(moment: dt.datetime) -> str:
    return (
        moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _iso_now() -> str:
    return _iso(dt.datetime.now(dt.timezone.utc))
