"""The simulation's database path (`manage.py simulate_oversight`): writes a
generated history (indicators.simulation) into the tasks and reviews tables,
with the history rows the indicators read stamped at the simulated times, then
runs the periodic job's code over it: the buckets' points, then the detectors
day after day. Meant for a fresh database (a demo, a test, the docs' figures)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from core.roles import COMMITTEE, OPERATORS
from indicators import simulation
from indicators.models import Period, Point
from indicators.services.detect import GRACE, detectors_run
from indicators.services.points import bucket_compute
from reviews.models import Case, CaseStatus, Vote
from tasks.models import ExecutionTask, TaskSource, TaskStatus

DAY = timedelta(days=1)
BATCH = 2_000


class NotFresh(Exception):
    pass


def _history_rows(model, objects, *, dates, statuses=None, history_type="+"):
    history = model.history.model
    names = [f.attname for f in model._meta.concrete_fields if hasattr(history, f.attname)]
    rows = []
    for i, obj in enumerate(objects):
        values = {name: getattr(obj, name) for name in names}
        if statuses is not None:
            values["status"] = statuses[i]
        rows.append(history(**values, history_date=dates[i], history_type=history_type, history_change_reason="sim"))
    history.objects.bulk_create(rows, batch_size=BATCH)


def users(members: tuple[str, ...]) -> dict[str, object]:
    User = get_user_model()
    committee, _ = Group.objects.get_or_create(name=COMMITTEE)
    operators, _ = Group.objects.get_or_create(name=OPERATORS)
    out = {}
    for name in members:
        user, _ = User.objects.get_or_create(username=name, defaults={"email": f"{name}@example.org"})
        user.groups.add(committee)
        out[name] = user
    operator, _ = User.objects.get_or_create(username="sim-operator", defaults={"email": "ops@example.org"})
    operator.groups.add(operators)
    return out


def _write_tasks(h: simulation.History) -> None:
    tasks, dates, statuses = [], [], []
    finished = iter(h.tasks)
    # The generator appends a registration, then its task unless it was held: replay that order.
    for i, r in enumerate(h.registrations):
        status = TaskStatus.HELD if r.held else TaskStatus.REGISTERED
        task = ExecutionTask(
            external_id=f"sim-{i}",
            task_type=r.task_type,
            ai_model=r.ai_model,
            status=status,
            source=TaskSource.API,
            created_at=r.at,
            gate_decision="hold" if r.held else "allow",
        )
        if not r.held:
            t = next(finished)
            task.status = TaskStatus.FAILED if t.failed else TaskStatus.SUCCEEDED
            task.started_at = r.at
            task.finished_at = t.finished_at
            task.duration_ms = t.duration_ms
            task.cost_micros = t.cost_micros
        tasks.append(task)
        dates.append(r.at)
        statuses.append(status)
    for j, t in enumerate(h.backfilled):
        tasks.append(
            ExecutionTask(
                external_id=f"sim-backfill-{j}",
                task_type=t.task_type,
                ai_model=t.ai_model,
                status=TaskStatus.SUCCEEDED,
                source=TaskSource.BACKFILL,
                created_at=t.finished_at,
                started_at=t.finished_at,
                finished_at=t.finished_at,
                duration_ms=t.duration_ms,
                cost_micros=t.cost_micros,
            )
        )
        dates.append(t.finished_at)
        statuses.append(TaskStatus.SUCCEEDED)
    created = ExecutionTask.objects.bulk_create(tasks, batch_size=BATCH)
    _history_rows(ExecutionTask, created, dates=dates, statuses=statuses)


def _write_reviews(h: simulation.History, people: dict[str, object]) -> dict[int, int]:
    """Returns {observation member id: user pk}."""
    names = list(people)
    member_pk = {i + 1: people[name].pk for i, name in enumerate(names)}
    cases = []
    for c in h.cases:
        decided = c.decided_at is not None
        cases.append(
            Case(
                kind=Case.Kind.REPORT,
                status=(CaseStatus.APPROVED if c.approved else CaseStatus.REJECTED) if decided else CaseStatus.OPEN,
                title=f"Simulated case {c.case_id}",
                subject_ref=f"sim:{c.case_id}",
                severity=c.severity,
                opened_at=h.case_opened[c.case_id],
                due_at=c.due_at,
                decided_at=c.decided_at,
                version=1,
            )
        )
    created = Case.objects.bulk_create(cases, batch_size=BATCH)
    case_pk = {c.case_id: row.pk for c, row in zip(h.cases, created, strict=True)}
    opened = [h.case_opened[c.case_id] for c in h.cases]
    _history_rows(Case, created, dates=opened, statuses=[CaseStatus.OPEN] * len(created))
    decided_rows = [(row, c) for row, c in zip(created, h.cases, strict=True) if c.decided_at]
    _history_rows(
        Case,
        [row for row, _ in decided_rows],
        dates=[c.decided_at for _, c in decided_rows],
        history_type="~",
    )
    CaseView = apps.get_model("reviews", "CaseView") if _has_case_view() else None
    if CaseView is not None:
        CaseView.objects.bulk_create(
            [
                CaseView(case_id=case_pk[case_id], case_version=1, member_id=people[name].pk, first_viewed_at=at)
                for (case_id, name), at in h.views.items()
            ],
            batch_size=BATCH,
        )
    votes = [
        Vote(
            case_id=case_pk[v.case_id],
            case_version=1,
            member_id=member_pk[v.member_id],
            choice=Vote.Choice.APPROVE if v.approve else Vote.Choice.REJECT,
            rationale=v.rationale,
            created_at=v.at,
        )
        for v in h.votes
    ]
    created_votes = Vote.objects.bulk_create(votes, batch_size=BATCH)
    _history_rows(Vote, created_votes, dates=[v.at for v in h.votes])
    return member_pk


def _has_case_view() -> bool:
    try:
        apps.get_model("reviews", "CaseView")
    except LookupError:
        return False
    return True


def write(h: simulation.History, *, members: tuple[str, ...] = simulation.MEMBERS) -> dict[int, int]:
    """Write the history. Refuses a database that already holds tasks or cases."""
    if ExecutionTask.objects.exists() or Case.objects.exists() or Point.objects.exists():
        raise NotFresh("simulate_oversight writes into a fresh database: this one already has tasks, cases or points.")
    with transaction.atomic():
        people = users(members)
        _write_tasks(h)
        return _write_reviews(h, people)


def compute(h: simulation.History, *, hourly_days: int = 0) -> list:
    """The buckets' points (daily for every day, hourly for the last `hourly_days`),
    then the detectors over every day, as the periodic job would have."""
    for day in range(h.days):
        start = h.start + day * DAY
        bucket_compute(Period.DAY, start)
        if day >= h.days - hourly_days:
            for hour in range(24):
                bucket_compute(Period.HOUR, start + timedelta(hours=hour))
    end: datetime = h.start + h.days * DAY
    return detectors_run(now=end + GRACE)
