"""A realistic oversight history, generated from a seed (docs/indicators.md,
"Simulation"): API tasks per task type × model with their durations, failures,
costs and gate decisions; review cases with their severity, views and votes by
several members, and their decisions. Optionally a drifting model and a member
turning into a rubber-stamper.

Pure: `generate` returns observations. `fast_run` feeds them straight to the
series and detector code (indicators.observations, indicators.detectors);
`manage.py simulate_oversight` writes them to the database and runs the periodic
job's code over them instead. A test shows both give the same points and alerts.
"""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from indicators import detectors
from indicators.observations import (
    DUPLICATE_LOOKBACK,
    CaseObs,
    RegistrationObs,
    TaskObs,
    VoteObs,
    committee_points,
    model_points,
    reviewer_points,
)

DAY = timedelta(days=1)
MODELS = {"model-a": 2_000, "model-b": 5_000, "model-c": 9_000}  # median duration (ms)
TASK_TYPES = ("implement_idea", "self_improvement")
MEMBERS = ("alice", "bob", "carol", "dave", "erin")
STOCK = ("Looks fine to me.", "No concerns.", "Approved, low risk.", "Risky; needs more detail.")
WORDS = (
    "risk mitigation proposal rollback scope data customer review model change safety monitoring test "
    "coverage plan impact limited reversible access budget latency privacy audit evidence staged owner "
    "clear unclear missing strong weak acceptable unacceptable severity report benchmark regression "
    "deploy canary threshold alerting storage retention consent fairness drift metrics"
).split()
RUBBER_RATIONALE = "Reviewed, looks good. Approved."


@dataclass(frozen=True)
class Drift:
    ai_model: str
    factor: float  # multiplies durations (p95 and mean)
    from_day: int

    @classmethod
    def parse(cls, text: str, from_day: int) -> Drift:
        """ "MODEL:+30%p95" → Drift(MODEL, 1.30, from_day)."""
        match = re.fullmatch(r"(?P<model>[^:]+):(?P<sign>[+-])(?P<pct>\d+(?:\.\d+)?)%p95", text.strip())
        if not match:
            raise ValueError(f"--drift must look like MODEL:+30%p95, not {text!r}")
        pct = float(match["pct"]) * (1 if match["sign"] == "+" else -1)
        return cls(match["model"], 1 + pct / 100, from_day)


@dataclass(frozen=True)
class RubberStamper:
    member: str
    from_day: int


@dataclass
class History:
    start: datetime
    days: int
    tasks: list[TaskObs] = field(default_factory=list)
    registrations: list[RegistrationObs] = field(default_factory=list)
    backfilled: list[TaskObs] = field(default_factory=list)  # never observed by the series
    cases: list[CaseObs] = field(default_factory=list)
    votes: list[VoteObs] = field(default_factory=list)
    views: dict[tuple[int, str], datetime] = field(default_factory=dict)  # (case, member) → first view
    member_of_vote: dict[int, str] = field(default_factory=dict)
    case_opened: dict[int, datetime] = field(default_factory=dict)
    case_severity: dict[int, int] = field(default_factory=dict)


def default_start(days: int, *, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - days * DAY


def generate(
    *,
    days: int = 60,
    seed: int = 0,
    start: datetime | None = None,
    tasks_per_day: int = 200,
    cases_per_day: int = 8,
    drift: Drift | None = None,
    rubber: RubberStamper | None = None,
    members: tuple[str, ...] = MEMBERS,
) -> History:
    """Member ids in the observations are their positions in `members` + 1 (the
    database path maps them to the users it creates)."""
    rng = random.Random(seed)
    start = start or default_start(days)
    h = History(start=start, days=days)
    member_id = {name: i + 1 for i, name in enumerate(members)}
    # Each member's habits: their usual time to vote (median s) and wordiness.
    habits = {m: (rng.uniform(180, 900), rng.randint(10, 30)) for m in members}
    for day in range(days):
        base = start + day * DAY
        for model, median_ms in MODELS.items():
            for task_type in TASK_TYPES:
                for _ in range(_poisson(rng, tasks_per_day)):
                    created = base + timedelta(seconds=rng.uniform(0, 86_400))
                    held = rng.random() < 0.06
                    h.registrations.append(RegistrationObs(created, task_type, model, held))
                    if held:
                        continue
                    factor = drift.factor if drift and drift.ai_model == model and day >= drift.from_day else 1.0
                    duration = int(median_ms * math.exp(rng.gauss(0, 0.5)) * factor)
                    finished = created + timedelta(milliseconds=duration)
                    failed = rng.random() < 0.03
                    cost = int(1_000 * median_ms / 1_000 * math.exp(rng.gauss(0, 0.3)))
                    h.tasks.append(TaskObs(finished, task_type, model, failed, duration, cost))
        # A client backfilling fast, cheap history to dilute a trend (never counted).
        for _ in range(tasks_per_day // 2):
            at = base + timedelta(seconds=rng.uniform(0, 86_400))
            h.backfilled.append(TaskObs(at, TASK_TYPES[0], next(iter(MODELS)), False, 50, 1))
        for _ in range(_poisson(rng, cases_per_day)):
            _case(h, rng, base, day, members, member_id, habits, rubber)
    return h


def _case(h, rng, base, day, members, member_id, habits, rubber) -> None:
    case_id = len(h.cases) + 1
    opened = base + timedelta(seconds=rng.uniform(0, 86_400))
    severity = rng.randint(0, 100)
    bad = rng.random() < 0.15 + 0.5 * severity / 100
    due = opened + timedelta(hours=72)
    slow = rng.random() < 0.05  # the committee lets it lapse past its due time
    ballots = []
    for name in members:
        if rng.random() > 0.8:
            continue
        stamping = rubber is not None and rubber.member == name and day >= rubber.from_day
        delay = timedelta(hours=rng.expovariate(1 / 3)) + (timedelta(hours=80) if slow else timedelta())
        viewed = opened + delay
        if stamping:
            voted = viewed + timedelta(seconds=rng.uniform(3, 30))
            approve, rationale = True, RUBBER_RATIONALE
        else:
            median_s, words = habits[name]
            voted = viewed + timedelta(seconds=median_s * math.exp(rng.gauss(0, 0.6)))
            approve = rng.random() < (0.15 if bad else 0.9)
            if rng.random() < 0.04:
                rationale = rng.choice(STOCK)
            else:
                count = max(4, int(rng.gauss(words, words / 3)))
                rationale = f"Case {case_id}: " + " ".join(rng.choice(WORDS) for _ in range(count)) + "."
        ballots.append((voted, name, approve, rationale, viewed))
    if not ballots:
        h.cases.append(CaseObs(case_id, None, None, None, severity, due))
        h.case_opened[case_id] = opened
        h.case_severity[case_id] = severity
        return
    ballots.sort()
    approvals = sum(b[2] for b in ballots)
    approved = approvals * 2 > len(ballots)
    decided_at = ballots[-1][0]
    first_view = min(b[4] for b in ballots)
    h.cases.append(CaseObs(case_id, first_view, decided_at, approved, severity, due))
    h.case_opened[case_id] = opened
    h.case_severity[case_id] = severity
    for voted, name, approve, rationale, viewed in ballots:
        vote_id = len(h.votes) + 1
        h.votes.append(VoteObs(vote_id, case_id, member_id[name], voted, approve, rationale, viewed, approved))
        h.views[(case_id, name)] = viewed
        h.member_of_vote[vote_id] = name


def _poisson(rng: random.Random, lam: float) -> int:
    # Normal approximation (λ ≥ 5 here), kept ≥ 0.
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def _by_day(rows, start: datetime, days: int, at) -> list[list]:
    buckets: list[list] = [[] for _ in range(days)]
    for row in rows:
        index = math.floor((at(row) - start) / DAY)
        if 0 <= index < days:
            buckets[index].append(row)
    return buckets


def daily_points(h: History) -> dict[datetime, dict]:
    """Every day's points, as the database path computes them after writing the history."""
    tasks = _by_day(h.tasks, h.start, h.days, lambda t: t.finished_at)
    regs = _by_day(h.registrations, h.start, h.days, lambda r: r.at)
    decided = _by_day([c for c in h.cases if c.decided_at], h.start, h.days, lambda c: c.decided_at)
    due = _by_day(h.cases, h.start, h.days, lambda c: c.due_at)
    votes = _by_day(h.votes, h.start, h.days, lambda v: v.at)
    out = {}
    for day in range(h.days):
        start = h.start + day * DAY
        earlier_from = start - DUPLICATE_LOOKBACK
        earlier = [v for d in range(max(0, day - DUPLICATE_LOOKBACK.days - 1), day) for v in votes[d]]
        earlier = [v for v in earlier if v.at >= earlier_from]
        points = model_points(tasks[day], regs[day])
        points.update(committee_points(decided[day], due[day], votes[day]))
        points.update(reviewer_points(votes[day], earlier))
        out[start] = points
    return out


def run_detectors(points_by_day: dict[datetime, dict]) -> list[detectors.Transition]:
    """The Engine over the days in order, as the periodic job runs it day after day."""
    engine = detectors.Engine()
    history: detectors.History = defaultdict(dict)
    out = []
    for day in sorted(points_by_day):
        for key, (value, n, _labels) in points_by_day[day].items():
            history[key][day] = (value, n)
        out.extend(engine.run_day(day, history))
    return out


def fast_run(h: History) -> tuple[dict[datetime, dict], list[detectors.Transition]]:
    points = daily_points(h)
    return points, run_detectors(points)
