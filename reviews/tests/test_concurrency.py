"""The gate under concurrency (PostgreSQL: real row locks)."""

import threading

import pytest
from django.db import connection

from reviews import services
from reviews.models import Case, PolicyRule
from tasks.models import ExecutionTask, TaskStatus
from tasks.services import Actor, task_register

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def in_threads(count: int, work) -> list:
    barrier = threading.Barrier(count)
    results, errors = [], []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results.append(work(i))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors


def test_concurrent_held_registrations_share_one_case_and_are_released_once(api_key, alice, bob):
    key, _ = api_key
    PolicyRule.objects.create(name="exp", priority=1, ai_model_glob="exp-*", action="hold")
    actor = Actor.for_key(key)
    _, errors = in_threads(
        6,
        lambda i: task_register(actor=actor, external_id=f"t{i}", task_type="implement_idea", ai_model="exp-1"),
    )
    assert not errors
    assert Case.objects.count() == 1
    case = Case.objects.get()
    assert set(ExecutionTask.objects.values_list("gate_case", flat=True)) == {str(case.pk)}

    decided, refused = in_threads(
        2,
        lambda i: services.case_decide(
            case_id=case.pk, decision=["approved", "rejected"][i], by=[alice, bob][i], rationale="done"
        ),
    )
    assert len(decided) == 1 and len(refused) == 1
    assert isinstance(refused[0], services.NotAllowed)
    outcome = TaskStatus.REGISTERED if decided[0].status == "approved" else TaskStatus.DENIED
    assert set(ExecutionTask.objects.values_list("status", flat=True)) == {outcome}
    for task in ExecutionTask.objects.all():
        assert task.history.count() == 2  # registered (held), then released or denied: once


def test_two_members_voting_at_once_are_both_recorded_and_decide_exactly_once(api_key, alice, bob):
    from fsar.testing import report_md
    from reviews.models import Vote
    from reviews.services import report_ingest

    key, _ = api_key
    case = report_ingest(raw=report_md("r1", severity=30).encode(), content_type="text/markdown").report.case
    actor = Actor.for_key(key)
    for i in range(3):
        task_register(actor=actor, external_id=f"t{i}", task_type="implement_idea", proposal_ref="r1")
    assert set(ExecutionTask.objects.values_list("status", flat=True)) == {TaskStatus.HELD}

    members = [alice, bob]
    _, errors = in_threads(
        2,
        lambda i: services.vote_cast(
            case_id=case.pk, member=members[i], choice="approve", rationale="Both of us read it carefully."
        ),
    )
    assert not errors
    assert Vote.objects.filter(case=case).count() == 2
    case.refresh_from_db()
    assert case.status == "approved"
    assert [h.status for h in case.history.order_by("history_date")].count("approved") == 1
    for task in ExecutionTask.objects.all():
        assert task.status == TaskStatus.REGISTERED
        assert task.history.count() == 2  # held, then released: once
