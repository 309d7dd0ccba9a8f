"""The done-when figures of issue 17, measured with the simulation's fast path
(`manage.py indicator_figures --seeds 100`; docs/indicators.md, "Figures").

- drift: a model's durations ×1.30 from day 20; the day its p95 alert fires;
- false alarms: noise-only histories; per series, the share of runs where it fired;
- rubber-stamping: a member approving everything within 30 s with one rationale
  from day 20; the day they are flagged; honest members flagged (false positives);
- hysteresis: a series oscillating around its firing threshold; firing → resolved
  cycles per keep_firing_for points.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from indicators import detectors, simulation
from indicators.catalog import EWMA

DRIFT_MODEL = "model-b"
STAMPER = "carol"
FROM_DAY = 20
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Figures:
    seeds: int
    days: int
    drift_delays: list[int | None] = field(default_factory=list)  # days from FROM_DAY to the first p95 alert
    noise_fired: Counter = field(default_factory=Counter)  # series → runs where it fired (noise only)
    noise_series: set = field(default_factory=set)
    stamper_delays: list[int | None] = field(default_factory=list)
    honest_flags: int = 0  # honest members flagged, over the rubber-stamper and the noise-only runs
    honest_runs: int = 0
    hysteresis: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        caught = [d for d in self.drift_delays if d is not None]
        within3 = sum(d is not None and d <= 2 for d in self.drift_delays)
        worst = max(self.noise_fired.values(), default=0)
        worst_series = [k for k, v in self.noise_fired.items() if v == worst] if worst else []
        flagged = [d for d in self.stamper_delays if d is not None]
        within7 = sum(d is not None and d <= 6 for d in self.stamper_delays)
        return [
            f"seeds: {self.seeds}, days: {self.days}",
            f"drift (+30% p95 from day {FROM_DAY}): fired within 3 days in {within3}/{self.seeds} runs; "
            f"delay (days after day {FROM_DAY}, 0 = that day) median {_median(caught)}, max {max(caught, default=None)}"
            f"; never: {self.seeds - len(caught)}",
            f"false alarms (noise only): worst series fired in {worst}/{self.seeds} runs "
            f"({100 * worst / max(self.seeds, 1):.1f}%) {worst_series[:3]}; "
            f"series that ever fired: {len(self.noise_fired)} of {len(self.noise_series)}",
            f"rubber-stamper (from day {FROM_DAY}): flagged within 7 days in {within7}/{self.seeds} runs; "
            f"delay median {_median(flagged)}, max {max(flagged, default=None)}; never: {self.seeds - len(flagged)}",
            f"honest members flagged: {self.honest_flags} (over {self.honest_runs} member-runs)",
            f"hysteresis: {self.hysteresis}",
        ]


def _median(values: list[int]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _first(transitions, predicate) -> datetime | None:
    return next((t.day for t in transitions if t.what == "fire" and predicate(t)), None)


def drift_delay(seed: int, days: int = 60) -> int | None:
    h = simulation.generate(days=days, seed=seed, start=START, drift=simulation.Drift(DRIFT_MODEL, 1.30, FROM_DAY))
    _, transitions = simulation.fast_run(h)
    fired = _first(transitions, lambda t: t.subject[0] == "model.p95_ms" and f"ai_model={DRIFT_MODEL}" in t.subject[1])
    return None if fired is None else (fired - START).days - FROM_DAY


def noise_run(seed: int, days: int = 60) -> tuple[set, set, int]:
    """(series that fired, series seen, honest members flagged)."""
    h = simulation.generate(days=days, seed=seed, start=START)
    points, transitions = simulation.fast_run(h)
    seen = {key for day in points.values() for key in day}
    fired = {t.subject for t in transitions if t.what == "fire" and t.kind == "drift"}
    honest = {t.subject for t in transitions if t.what == "fire" and t.kind == "trust_inflation"}
    return fired, seen, len(honest)


def stamper_run(seed: int, days: int = 60) -> tuple[int | None, int]:
    # The watch reads only the reviews tables: a light task load keeps the run quick.
    h = simulation.generate(
        days=days, seed=seed, start=START, tasks_per_day=5, rubber=simulation.RubberStamper(STAMPER, FROM_DAY)
    )
    _, transitions = simulation.fast_run(h)
    stamper_id = str(simulation.MEMBERS.index(STAMPER) + 1)
    fired = _first(transitions, lambda t: t.kind == "trust_inflation" and t.subject[1] == f"member={stamper_id}")
    honest = {
        t.subject
        for t in transitions
        if t.what == "fire" and t.kind == "trust_inflation" and t.subject[1] != f"member={stamper_id}"
    }
    return (None if fired is None else (fired - START).days - FROM_DAY), len(honest)


def oscillation_cycles(*, days: int = 120, period: int = 2, amplitude: float = 0.6) -> dict:
    """A series that sits on its firing threshold and oscillates around it
    (±amplitude · the threshold, in standardized units): how many firing →
    resolved cycles, and the most in any keep_firing_for points."""
    engine = detectors.Engine()
    key = ("model.p95_ms", "ai_model=osc,task_type=t")
    history: detectors.History = {key: {}}
    rng_noise = [((i * 7919) % 13 - 6) / 60 for i in range(days)]  # tiny deterministic jitter
    centre, sd = 1_000.0, 100.0
    # The EWMA of a constant z is z: put the level at the firing threshold.
    level = EWMA.fire_at
    resolves = []
    for i in range(days):
        day = START + timedelta(days=i)
        if i < 30:
            z = rng_noise[i]
        else:
            z = level * (1 + amplitude * math.copysign(1, math.sin(math.pi * (i - 30) / period + 0.1)))
        history[key][day] = (centre + sd * (z + rng_noise[i]), 100)
        for t in engine.run_day(day, history):
            if t.what == "resolve":
                resolves.append(i)
    keep = EWMA.keep_firing_for
    worst = max((sum(1 for r in resolves if s <= r < s + keep) for s in range(days)), default=0)
    return {"cycles": len(resolves), "most_per_keep_firing_for": worst, "days": days}


def measure(*, seeds: int = 100, days: int = 60, progress=None) -> Figures:
    figures = Figures(seeds=seeds, days=days)
    for seed in range(seeds):
        figures.drift_delays.append(drift_delay(seed, days))
        fired, seen, honest = noise_run(seed, days)
        figures.noise_fired.update(fired)
        figures.noise_series |= seen
        stamper, honest_in_stamper = stamper_run(seed, days)
        figures.stamper_delays.append(stamper)
        figures.honest_flags += honest + honest_in_stamper
        figures.honest_runs += 2 * len(simulation.MEMBERS) - 1
        if progress:
            progress(seed)
    figures.hysteresis = oscillation_cycles()
    return figures
