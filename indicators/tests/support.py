"""Helpers for the indicators tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from indicators import detectors

START = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def feed(values: list[float], *, key=("model.p95_ms", "ai_model=m,task_type=t"), n: int = 100):
    """Run the Engine over a daily series of `values`; its transitions as (what, day index)."""
    engine = detectors.Engine()
    history: detectors.History = {key: {}}
    out = []
    for i, value in enumerate(values):
        day = START + i * DAY
        history[key][day] = (value, n)
        out.extend((t.what, i) for t in engine.run_day(day, history) if t.subject == key)
    return out


def quiet(days: int, *, centre: float = 1_000.0, wobble: float = 20.0) -> list[float]:
    """A deterministic series around `centre` (±wobble), no trend."""
    return [centre + wobble * (((i * 7919) % 11) - 5) / 5 for i in range(days)]
