"""The daemon's bridge to the assessment core, the probes and the formats.

The daemon writes no second assessment: every run is a :class:`behavior.window.assess.Assessment`
fed from the one shared probe session, and finished with the same ``finish`` that
``rba assess`` uses. This module keeps those imports (bcc, numpy, psutil) out of the
client commands.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from behavior.daemon.config import DaemonConfig, FindingsOutput, Template
from behavior.facts.interface import FactSource
from behavior.formats import Format, render
from behavior.interface import RbaError, Report
from behavior.recording.recorder import TraceRecorder
from behavior.rules import RULE_IDS
from behavior.window.assess import AssessConfig, Assessment, WindowEnd
from behavior.window.own_process import own_install_roots
from probes.backend import ProbeSession, open_session
from probes.events import EventArray, StringTable
from probes.interface import SourceStats

log = logging.getLogger("rba.daemon")

FORMATS: tuple[str, ...] = tuple(f.value for f in Format)


class RunLogObserver:
    """An :class:`behavior.interface.Observer` that logs a run's notices."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id

    def progress(self, done: float, total: float, detail: str) -> None:
        pass  # `rba status` shows progress; the log would only repeat it

    def notice(self, message: str) -> None:
        log.info("run %s: %s", self._run_id, message)


@dataclass
class DaemonRun:
    """An assessment, the live fact source it owns, and optionally its trace.

    The trace is best-effort: when it cannot be written (a full disk), it is closed with
    what was flushed, ``trace_error`` says why, and the assessment goes on without it."""

    assessment: Assessment
    facts: FactSource
    recorder: TraceRecorder | None = None
    trace_error: str = ""

    def feed(self, events: EventArray) -> None:
        """Fold a batch from the shared session into this run (and its trace)."""
        self._to_trace(lambda recorder: recorder.events(events))
        self.assessment.feed(events)

    def checkpoint(self, stats: Mapping[str, SourceStats]) -> None:
        """Record the loss counters so far in the trace (at most once a second), so that
        a run that dies still states its losses up to then."""
        self._to_trace(lambda recorder: recorder.stats(stats))

    def finish(self, end: WindowEnd) -> Report:
        """Evaluate the rules now. The trace stays open (call :meth:`close` once the
        report is stored: findings come first, and facts gathered while finishing still
        reach the trace)."""
        self._to_trace(lambda recorder: recorder.end(end))
        try:
            return self.assessment.finish(end)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the fact source and close the trace (safe to call twice). A trace
        that cannot be closed is noted in ``trace_error``, not raised."""
        try:
            self.facts.close()
        finally:
            recorder, self.recorder = self.recorder, None
            if recorder is not None:
                try:
                    recorder.close()
                except (RbaError, OSError) as e:
                    self.trace_error = self.trace_error or str(e)

    def _to_trace(self, write: Callable[[TraceRecorder], None]) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        try:
            write(recorder)
        except RbaError as e:
            self._drop_trace(e)

    def _drop_trace(self, error: Exception) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return
        self.trace_error = str(error)
        log.error("%s; the run goes on without its trace", error)
        with contextlib.suppress(RbaError, OSError):
            recorder.close()


def known_rules() -> frozenset[str]:
    """Every rule id of the catalogue (to validate templates)."""
    return frozenset(RULE_IDS)


def new_run(
    template: Template,
    config: DaemonConfig,
    *,
    strings: StringTable,
    sources: Sequence[str],
    run_id: str,
    trace_path: str,
) -> DaemonRun:
    """A fresh assessment window for ``template`` that interns into ``strings``; with
    ``template.trace`` it also records its trace at ``trace_path``."""
    from behavior.facts.live import LiveFactSource, current_host

    host = current_host()
    recorder = None
    if template.trace:
        recorder = TraceRecorder(trace_path, purpose="assess", redact=template.redact_cmdline)
    facts = LiveFactSource(host=host, sink=recorder.fact if recorder else None)
    assess_config = AssessConfig(
        duration_s=template.duration_s,
        rules=template.rules,
        probes=config.probes,
        poll_interval=config.poll_interval_s,
        own_pid=os.getpid(),
        own_roots=own_install_roots(),
    )
    try:
        assessment = Assessment(
            assess_config,
            strings=strings,
            facts=facts,
            observer=RunLogObserver(run_id),
            run_id=run_id,
            host=host,
        )
        if recorder is not None:
            recorder.begin(
                run_id=run_id,
                host=host,
                started_at_ns=assessment.started_at_ns,
                config=assess_config,
                sources=tuple(sources),
                strings=strings,
            )
    except BaseException:
        facts.close()
        if recorder is not None:
            recorder.close()
        raise
    return DaemonRun(assessment, facts, recorder)


def open_probe_session(choice: str, poll_interval: float, content: bool = True) -> ProbeSession:
    """The one probe session runs share (see :mod:`behavior.daemon.sharing`)."""
    return open_session(choice, poll_interval, content=content)


def render_report(report: Report, fmt: str, findings: FindingsOutput | None = None) -> str:
    """``report`` in format ``fmt`` (one of :data:`FORMATS`); ASFF carries the account
    and region of ``findings`` (the configuration's ``[findings]``)."""
    if fmt == Format.ASFF.value and findings is not None:
        from behavior.formats.asff import render_asff

        return render_asff(report, findings.account, findings.region)
    return render(Format(fmt), report)


def add_to_lake(report: Report, findings: FindingsOutput) -> None:
    """Add a finished run's report to the lake of ``[findings] lake`` (nothing without
    one). The seam to :func:`behavior.fleet.lake.add_reports`, which raises RbaError
    subclasses (one line) for a lake that cannot be written or a missing extra."""
    if findings.lake is None:
        return
    from behavior.fleet.lake import add_reports
    from behavior.formats.json_format import report_to_dict

    add_reports(
        findings.lake,
        [report_to_dict(report)],
        region=findings.region,
        account_id=findings.account,
    )
