"""Fixtures of the behavior unit tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from behavior.facts.interface import FactSet
from behavior.rules.interface import Rule, RuleInput, RuleResult
from behavior.window.aggregate import Aggregator
from probes.events import EventArray, StringTable
from tests.behavior.synth import SEC, T0, facts_with

Evaluate = Callable[..., RuleResult]


@pytest.fixture
def strings() -> StringTable:
    return StringTable()


@pytest.fixture
def evaluate(strings: StringTable) -> Evaluate:
    """Fold ``events`` over a window of ``window_s`` and evaluate ``rule``."""

    def run(
        rule: Rule,
        events: EventArray,
        facts: FactSet | None = None,
        *,
        sources: tuple[str, ...] = ("ebpf",),
        window_s: float = 60.0,
    ) -> RuleResult:
        agg = Aggregator(strings)
        agg.fold(events)
        obs = agg.observations(started_ns=T0, ended_ns=T0 + int(window_s * SEC))
        return rule.evaluate(RuleInput(obs, facts or facts_with([], {}), sources))

    return run
