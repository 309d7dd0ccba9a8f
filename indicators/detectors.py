"""Change detection with damping (docs/indicators.md, "Detection"). Pure: no
database. The periodic job and the simulation's fast path run the same Engine
over the same daily points, so they raise the same alerts.

Three detectors, one state machine:

- **Drift** (each detected series): EWMA of the series standardized against a
  trailing reference window (median and 1.4826·MAD of the daily points in
  [day − lag − 28 d, day − lag), floored), on the bad side only.
- **Trust inflation** (each reviewer): over a rolling window, how many of the
  five behaviour signals moved against both the member's own baseline (z over
  their reference) and the rest of the committee (a margin). Never one alone.
- **Committee inflation**: the committee's approval-rate statistic is up while
  the models' statistics are worse.

Each feeds `hysteresis`: fires after `for` consecutive points at or above the
upper threshold, stays firing while above the lower one, resolves after
`keep_firing_for` consecutive points below the lower threshold.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from indicators.catalog import (
    COMMITTEE_INFLATION,
    DOWN,
    EWMA,
    MODEL,
    REVIEWER,
    SERIES,
    WATCH,
    WATCH_SIGNALS,
    CommitteeInflationParams,
    EwmaParams,
    WatchParams,
)

DAY = timedelta(days=1)
TRUST = "watch.trust_inflation"
COMMITTEE_WATCH = "watch.committee_inflation"

Key = tuple[str, str]
History = dict[Key, dict[datetime, tuple[float, int]]]  # series → {day start: (value, n)}


@dataclass(frozen=True)
class Transition:
    """A detector's state change on `day`: "fire", "clear" (below the lower
    threshold, kept firing), "refire" (back above it while kept firing) or "resolve"."""

    what: str
    kind: str  # the alert kind: drift, trust_inflation, committee_inflation
    subject: Key
    day: datetime
    value: float
    threshold: float
    change_at: datetime | None = None
    details: dict = field(default_factory=dict)


def hysteresis(state: dict, *, day: datetime, above: bool, below: bool, for_points: int, keep: int) -> str | None:
    """One point into the state machine; returns the transition, if any. `above`:
    at or over the firing threshold; `below`: under the lower (resolving) one."""
    if not state.get("firing"):
        if above:
            state["pending"] = state.get("pending", 0) + 1
            if state["pending"] == 1:
                state["change_at"] = day.isoformat()
            if state["pending"] >= for_points:
                state.update(firing=True, pending=0, clearing=0)
                return "fire"
        else:
            state["pending"] = 0
        return None
    if below:
        state["clearing"] = state.get("clearing", 0) + 1
        if state["clearing"] >= keep:
            state.update(firing=False, pending=0, clearing=0, change_at=None)
            return "resolve"
        return "clear" if state["clearing"] == 1 else None
    if state.get("clearing"):
        state["clearing"] = 0
        return "refire"
    return None


def reference(rows: list[tuple[float, int]], sdef) -> tuple[float, float]:
    """The reference window's mean and standard deviation, floored (catalog.SeriesDef)."""
    values = [v for v, _ in rows]
    centre = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    floors = [sd, sdef.sd_floor_abs, sdef.sd_floor_rel * abs(centre), 1e-9]
    if sdef.binomial:
        p = min(max(centre, 0.0), 1.0)
        floors.append(math.sqrt(p * (1 - p) / statistics.fmean(n for _, n in rows)))
    return centre, max(floors)


def _window(points: dict[datetime, tuple[float, int]], start: datetime, end: datetime) -> list[tuple[float, int]]:
    return [vn for day, vn in points.items() if start <= day < end and vn[1] > 0]


def ewma_step(
    state: dict, *, key: Key, day: datetime, value: float, points: dict, params: EwmaParams = EWMA
) -> Transition | None:
    """Feed the series' point of `day` (its earlier points in `points`)."""
    sdef = SERIES[key[0]]
    if state.get("ref") and state.get("firing"):
        centre, sd = state["ref"]  # frozen while firing: the change must not become the reference
    else:
        end = day - params.reference_lag * DAY
        ref = _window(points, end - params.reference_days * DAY, end)
        if len(ref) < params.min_reference:
            return None
        centre, sd = reference(ref, sdef)
        state["ref"] = [centre, sd]
    z = (value - centre) / sd
    if sdef.direction == DOWN:
        z = -z
    z = max(-params.clip_z, min(params.clip_z, z))
    s = params.lam * z + (1 - params.lam) * state.get("s", 0.0)
    s = max(s, -params.fire_at)  # a long good spell must not bank credit against a later change
    state["s"] = s
    state["day"] = day.isoformat()
    change_at = state.get("change_at")
    what = hysteresis(
        state,
        day=day,
        above=s >= params.fire_at,
        below=s < params.resolve_at,
        for_points=params.for_points,
        keep=params.keep_firing_for,
    )
    if what is None:
        return None
    threshold = params.fire_at if what in ("fire", "refire") else params.resolve_at
    return Transition(
        what,
        "drift",
        key,
        day,
        s,
        threshold,
        change_at=_parse(state.get("change_at") or change_at),
        details={"z": round(z, 3), "value": value, "reference": [centre, sd]},
    )


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _transform(kind: str, value: float) -> float:
    return math.log(max(value, 0.0) + 1.0) if kind == "log" else value


def _pooled(rows: list[tuple[float, int]], kind: str) -> tuple[float, int] | None:
    n = sum(c for _, c in rows)
    if n == 0:
        return None
    return sum(_transform(kind, v) * c for v, c in rows) / n, n


def watch_signals(
    *,
    member_points: dict[str, dict],
    others_points: dict[str, list[dict]],
    day: datetime,
    params: WatchParams = WATCH,
    frozen: dict[str, list[float]] | None = None,
) -> dict[str, dict]:
    """Per signal: did the member's rolling-window value move, on the bad side,
    against their own baseline (z ≥ own_z) and against the rest of the committee
    (by the signal's margin)? {signal: {"moved", "z", "gap", "base"}}. `frozen`:
    the baseline kept from when the alert fired (the new habit must not become
    the baseline while it is being looked at)."""
    window_start = day - (params.window_days - 1) * DAY
    window_end = day + DAY
    base_end = day - params.reference_lag * DAY
    base_start = base_end - params.reference_days * DAY
    result = {}
    for key, (kind, floor, margin) in WATCH_SIGNALS.items():
        bad_down = SERIES[key].direction == DOWN
        points = member_points.get(key, {})
        now = _pooled(_window(points, window_start, window_end), kind)
        if now is None or now[1] < params.min_votes:
            continue
        mean, n = now
        if frozen and key in frozen:
            base_mean, sd = frozen[key]
        else:
            base_days = _window(points, base_start, base_end)
            if len(base_days) < params.min_reference:
                continue
            base_mean = _pooled(base_days, kind)[0]
            # A daily mean over c votes has variance σ²/c: Σ c·(x − μ)² / (days − 1) estimates σ² per vote.
            var = sum(c * (_transform(kind, v) - base_mean) ** 2 for v, c in base_days) / max(len(base_days) - 1, 1)
            sd = max(math.sqrt(var), floor)
        z = (mean - base_mean) / (sd / math.sqrt(n))
        others = [_window(p, window_start, window_end) for p in others_points.get(key, [])]
        pooled_others = _pooled([row for rows in others for row in rows], kind)
        if pooled_others is None:
            continue
        gap = mean - pooled_others[0]
        if bad_down:
            z, gap = -z, -gap
        result[key] = {
            "moved": z >= params.own_z and gap >= margin,
            "z": round(z, 3),
            "gap": round(gap, 3),
            "base": [base_mean, sd],
        }
    return result


class Engine:
    """Runs every detector over one day at a time. `states` (subject → dict) is
    the detectors' memory: the job keeps it on the Series rows, the fast path in
    memory. `history` must hold each series' daily points from at least
    reference_days + reference_lag (and the watch's) days before the day run."""

    def __init__(
        self,
        states: dict[Key, dict] | None = None,
        *,
        ewma: EwmaParams = EWMA,
        watch: WatchParams = WATCH,
        inflation: CommitteeInflationParams = COMMITTEE_INFLATION,
    ):
        self.states = states if states is not None else {}
        self.ewma, self.watch, self.inflation = ewma, watch, inflation

    def state(self, key: Key) -> dict:
        return self.states.setdefault(key, {})

    def run_day(self, day: datetime, history: History) -> list[Transition]:
        out: list[Transition] = []
        model_stats: list[float] = []
        model_firing = False
        for key in sorted(history):
            sdef = SERIES.get(key[0])
            if sdef is None or not sdef.detect or day not in history[key]:
                continue
            state = self.state(key)
            if state.get("day") and _parse(state["day"]) >= day:
                continue  # already judged (a rerun of the same day changes nothing)
            t = ewma_step(state, key=key, day=day, value=history[key][day][0], points=history[key], params=self.ewma)
            if t:
                out.append(t)
            if sdef.scope == MODEL and "s" in state:
                model_stats.append(state["s"])
                model_firing = model_firing or bool(state.get("firing"))
        out.extend(self._committee(day, model_stats, model_firing))
        out.extend(self._reviewers(day, history))
        return out

    def _committee(self, day: datetime, model_stats: list[float], model_firing: bool) -> list[Transition]:
        approval = self.states.get(("committee.approval_rate", ""), {})
        if "s" not in approval or approval.get("day") != day.isoformat() or not model_stats:
            return []
        p, sigma = self.inflation, self.ewma.sigma
        worse = statistics.fmean(model_stats)
        above = approval["s"] >= p.approval_l * sigma and (worse >= p.models_l * sigma or model_firing)
        below = approval["s"] < self.ewma.resolve_at or (worse < self.ewma.resolve_at and not model_firing)
        state = self.state((COMMITTEE_WATCH, ""))
        what = hysteresis(state, day=day, above=above, below=below, for_points=p.for_points, keep=p.keep_firing_for)
        if what is None:
            return []
        details = {
            "approval_stat": round(approval["s"], 3),
            "models_stat": round(worse, 3),
            "model_firing": model_firing,
        }
        change = _parse(state.get("change_at"))
        return [
            Transition(what, "committee_inflation", (COMMITTEE_WATCH, ""), day, approval["s"], 0.0, change, details)
        ]

    def _reviewers(self, day: datetime, history: History) -> list[Transition]:
        members: dict[str, dict[str, dict]] = {}
        for (key, labels), points in history.items():
            if SERIES.get(key) and SERIES[key].scope == REVIEWER:
                members.setdefault(labels, {})[key] = points
        out = []
        for member in sorted(members):
            if not any(day in p for p in members[member].values()):
                continue  # judged on the days the member voted
            others = {k: [members[m][k] for m in members if m != member and k in members[m]] for k in WATCH_SIGNALS}
            state = self.state((TRUST, member))
            signals = watch_signals(
                member_points=members[member],
                others_points=others,
                day=day,
                params=self.watch,
                frozen=state.get("base") if state.get("firing") else None,
            )
            moved = [k for k, s in signals.items() if s["moved"]]
            what = hysteresis(
                state,
                day=day,
                above=len(moved) >= self.watch.signals_to_fire,
                below=len(moved) <= self.watch.signals_to_resolve,
                for_points=self.watch.for_points,
                keep=self.watch.keep_firing_for,
            )
            if what == "fire":
                state["base"] = {k: s["base"] for k, s in signals.items()}
            elif what == "resolve":
                state.pop("base", None)
            if what:
                change = _parse(state.get("change_at"))
                details = {"signals": signals, "moved": moved}
                out.append(Transition(what, "trust_inflation", (TRUST, member), day, len(moved), 0, change, details))
        return out
