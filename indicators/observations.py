"""From raw observations (finished tasks, registrations, decided cases, votes) to
the points of one bucket. Pure: the periodic job feeds it rows read from the
database by index ranges (indicators/sources.py); the simulation's fast path
feeds it the generator's rows directly. Both get the same points.

The model series go through per task type × model sums (`ModelGroup`,
`points_of_groups`): the periodic job has the database compute them
(`sources.model_groups`), so a day of tasks never comes into its memory; the fast
path sums its observations into the same groups (`model_groups`).
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from indicators.catalog import label_key

NO_MODEL = "(none)"
FAST_DECISION = timedelta(minutes=1)
HIGH_SEVERITY = 50
DUPLICATE_LOOKBACK = timedelta(days=14)  # a rationale is compared with the member's own of the last 14 days
DUPLICATE_SIMILARITY = 0.8
DUPLICATE_MAX_EARLIER = 50


@dataclass(frozen=True)
class TaskObs:
    """A finished API task (backfilled ones are never observed)."""

    finished_at: datetime
    task_type: str
    ai_model: str | None
    failed: bool
    duration_ms: int | None
    cost_micros: int | None


@dataclass(frozen=True)
class RegistrationObs:
    """An API task as the gate decided it at registration."""

    at: datetime
    task_type: str
    ai_model: str | None
    held: bool  # held or denied


@dataclass(frozen=True)
class CaseObs:
    case_id: int
    first_view_at: datetime | None  # the first time a member opened its page (the deciding version)
    decided_at: datetime | None
    approved: bool | None  # None while undecided
    severity: int | None
    due_at: datetime | None


@dataclass(frozen=True)
class VoteObs:
    vote_id: int
    case_id: int
    member_id: int
    at: datetime
    approve: bool
    rationale: str
    viewed_at: datetime | None  # CaseView.first_viewed_at for (case, version, member)
    final_approved: bool | None  # the case's decision, None while undecided


Key = tuple[str, str]  # (series key, label key)
Points = dict[Key, tuple[float, int, dict]]  # → (value, n, labels)


def percentile_of(n: int, fraction: float, value_at: Callable[[int], float]) -> float:
    """percentile_cont over n sorted values, `value_at(i)` the i-th (from 0): linear
    interpolation between the two neighbouring ranks, the operations PostgreSQL's
    percentile_cont does (first + (position − floor)·(second − first)). Only the
    two ranks are asked for, so a caller can fetch just those."""
    position = fraction * (n - 1)
    low, high = math.floor(position), math.ceil(position)
    first = value_at(low)
    return first + (value_at(high) - first) * (position - low)


def _percentile(values: list[float], fraction: float) -> float:
    """percentile_cont: linear interpolation between the two neighbouring ranks."""
    ordered = sorted(values)
    return percentile_of(len(ordered), fraction, ordered.__getitem__)


def _put(points: Points, key: str, labels: dict, value: float, n: int) -> None:
    points[(key, label_key(labels))] = (float(value), int(n), labels)


@dataclass
class ModelGroup:
    """One task type × model of a bucket, summed: what its model points are computed
    from (`points_of_groups`). The periodic job has the database sum them per group
    (indicators.sources.model_groups), so its memory does not grow with a day's
    tasks; `model_groups` sums observations the same way (the simulation's fast path)."""

    task_type: str
    ai_model: str  # NO_MODEL when the task names none
    finished: int = 0
    failed: int = 0
    timed: int = 0  # finished with a duration
    sum_ms: int = 0
    p95_ms: float | None = None  # percentile_cont(0.95) of the durations
    costed: int = 0  # finished with a cost
    sum_cost: int = 0
    registered: int = 0
    held: int = 0  # held or denied at registration


GroupKey = tuple[str, str]  # (task_type, ai_model or NO_MODEL)
P95 = 0.95


def model_groups(tasks: Iterable[TaskObs], registrations: Iterable[RegistrationObs]) -> dict[GroupKey, ModelGroup]:
    """The groups of observations, as the database sums them."""
    groups: dict[GroupKey, ModelGroup] = {}
    durations: dict[GroupKey, list[float]] = defaultdict(list)
    for t in tasks:
        key = (t.task_type, t.ai_model or NO_MODEL)
        group = groups.get(key) or groups.setdefault(key, ModelGroup(*key))
        group.finished += 1
        group.failed += bool(t.failed)
        if t.duration_ms is not None:
            group.timed += 1
            group.sum_ms += t.duration_ms
            durations[key].append(float(t.duration_ms))
        if t.cost_micros is not None:
            group.costed += 1
            group.sum_cost += t.cost_micros
    for key, values in durations.items():
        groups[key].p95_ms = _percentile(values, P95)
    for r in registrations:
        key = (r.task_type, r.ai_model or NO_MODEL)
        group = groups.get(key) or groups.setdefault(key, ModelGroup(*key))
        group.registered += 1
        group.held += bool(r.held)
    return groups


def points_of_groups(groups: Iterable[ModelGroup]) -> Points:
    """Per task type × model: mean and p95 duration, failure rate, cost per task
    (finished tasks), share held or denied (registrations). Means are integer sums
    over counts: the same floats as summing the values as floats (exact below 2⁵³)."""
    groups = sorted(groups, key=lambda g: (g.task_type, g.ai_model))
    points: Points = {}
    for g in groups:
        labels = {"task_type": g.task_type, "ai_model": g.ai_model}
        if g.timed:
            _put(points, "model.mean_ms", labels, g.sum_ms / g.timed, g.timed)
            _put(points, "model.p95_ms", labels, g.p95_ms, g.timed)
        if g.finished:
            _put(points, "model.failure_rate", labels, g.failed / g.finished, g.finished)
        if g.costed:
            _put(points, "model.cost_micros", labels, g.sum_cost / g.costed, g.costed)
    for g in groups:
        if g.registered:
            labels = {"task_type": g.task_type, "ai_model": g.ai_model}
            _put(points, "model.held_share", labels, g.held / g.registered, g.registered)
    return points


def model_points(tasks: Iterable[TaskObs], registrations: Iterable[RegistrationObs]) -> Points:
    """The model points of observations (the simulation's fast path)."""
    return points_of_groups(model_groups(tasks, registrations).values())


def committee_points(decided: Iterable[CaseObs], due: Iterable[CaseObs], votes: Iterable[VoteObs]) -> Points:
    """Committee-wide: over the cases decided in the bucket, the approval rate, the
    median seconds from the first opening to the decision, the share decided within
    a minute of it, the share approved with severity ≥ 50; the median rationale
    length of the bucket's votes; the cases due in the bucket not decided by then."""
    points: Points = {}
    decided = list(decided)
    if decided:
        n = len(decided)
        _put(points, "committee.approval_rate", {}, sum(bool(c.approved) for c in decided) / n, n)
        against = sum(bool(c.approved) and (c.severity or 0) >= HIGH_SEVERITY for c in decided)
        _put(points, "committee.against_severity", {}, against / n, n)
        timed = [(c.decided_at - c.first_view_at).total_seconds() for c in decided if c.first_view_at]
        if timed:
            _put(points, "committee.decide_s", {}, statistics.median(timed), len(timed))
            fast = sum(s <= FAST_DECISION.total_seconds() for s in timed)
            _put(points, "committee.fast_share", {}, fast / len(timed), len(timed))
    lengths = [len(v.rationale.strip()) for v in votes]
    if lengths:
        _put(points, "committee.rationale_len", {}, statistics.median(lengths), len(lengths))
    due = list(due)
    if due:
        late = sum(c.decided_at is None or c.decided_at > c.due_at for c in due)
        _put(points, "committee.expired", {}, late, len(due))
    return points


_PUNCTUATION = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=8192)
def normalize(text: str) -> str:
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text.casefold())).strip()


@lru_cache(maxsize=8192)
def _shingles(text: str) -> frozenset[str]:
    words = text.split()
    return frozenset(zip(words, words[1:], strict=False)) if len(words) > 1 else frozenset(words)


def is_near_duplicate(text: str, earlier: list[str]) -> bool:
    """The same normalized text as one of `earlier` (normalized), or a Jaccard
    similarity ≥ DUPLICATE_SIMILARITY between their word-pair sets (a reworded
    copy: a few words changed, added or dropped)."""
    if text in earlier:
        return True
    mine = _shingles(text)
    if len(mine) < 3:
        return False  # short texts count only when equal
    for other in earlier:
        theirs = _shingles(other)
        small, large = sorted((len(mine), len(theirs)))
        if large == 0 or small / large < DUPLICATE_SIMILARITY:
            continue
        if len(mine & theirs) / len(mine | theirs) >= DUPLICATE_SIMILARITY:
            return True
    return False


def reviewer_points(votes: Iterable[VoteObs], earlier: Iterable[VoteObs]) -> Points:
    """Per member over the bucket's votes: approval rate, median seconds from first
    opening the case version to voting, median rationale length, share of
    near-duplicate rationales (against the member's own of the 14 days before
    each vote: `earlier` must hold them), dissent rate (against the decided
    outcome). Labels: {"member": id}."""
    votes = sorted(votes, key=lambda v: (v.at, v.vote_id))
    history: dict[int, list[tuple[datetime, int, str]]] = defaultdict(list)
    for v in sorted(earlier, key=lambda v: (v.at, v.vote_id)):
        history[v.member_id].append((v.at, v.vote_id, normalize(v.rationale)))
    by_member: dict[int, list[tuple[VoteObs, bool]]] = defaultdict(list)
    for v in votes:
        text = normalize(v.rationale)
        own = [
            t
            for at, vid, t in history[v.member_id]
            if v.at - DUPLICATE_LOOKBACK <= at and (at, vid) < (v.at, v.vote_id)
        ][-DUPLICATE_MAX_EARLIER:]
        by_member[v.member_id].append((v, is_near_duplicate(text, own)))
        history[v.member_id].append((v.at, v.vote_id, text))
    points: Points = {}
    for member_id, rows in by_member.items():
        labels = {"member": str(member_id)}
        n = len(rows)
        _put(points, "reviewer.approval_rate", labels, sum(v.approve for v, _ in rows) / n, n)
        _put(points, "reviewer.duplicate_share", labels, sum(d for _, d in rows) / n, n)
        _put(points, "reviewer.rationale_len", labels, statistics.median(len(v.rationale.strip()) for v, _ in rows), n)
        timed = [(v.at - v.viewed_at).total_seconds() for v, _ in rows if v.viewed_at is not None]
        if timed:
            _put(points, "reviewer.vote_s", labels, statistics.median(timed), len(timed))
        decided = [v for v, _ in rows if v.final_approved is not None]
        if decided:
            dissent = sum(v.approve != v.final_approved for v in decided)
            _put(points, "reviewer.dissent_rate", labels, dissent / len(decided), len(decided))
    return points
