"""Model versions under concurrency (PostgreSQL: real row locks)."""

import pytest

from deployments import services
from deployments.models import ModelVersion, VersionStatus
from reviews import services as review_services
from reviews.models import Case
from reviews.tests.test_concurrency import in_threads
from tasks.models import ExecutionTask, TaskStatus
from tasks.services import Actor, task_register

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

DATA = services.VersionInput(
    family="coder",
    ai_model="coder-2026-12",
    artifact_uri="s3://models/coder-2026-12",
    artifact_sha256="ab" * 32,
    evaluation={"failure_rate": 0.02},
)


def test_concurrent_approvals_release_each_held_task_exactly_once(models_key, alice, bob, charlie):
    key, _ = models_key
    actor = Actor.for_key(key)
    version, _ = services.version_register(actor=actor, data=DATA)
    _, errors = in_threads(
        5, lambda i: task_register(actor=actor, external_id=f"t{i}", task_type="implement_idea", ai_model=DATA.ai_model)
    )
    assert not errors
    assert set(ExecutionTask.objects.values_list("status", "gate_case")) == {(TaskStatus.HELD, str(version.case_id))}

    members = [alice, bob, charlie]
    _, errors = in_threads(
        3,
        lambda i: review_services.vote_cast(
            case_id=version.case_id, member=members[i], choice="approve", rationale="Checked the evaluation twice."
        ),
    )
    # The third vote may find the case decided already: refused, nothing recorded.
    assert all(isinstance(e, review_services.NotAllowed) for e in errors) and len(errors) <= 1
    version.refresh_from_db()
    assert version.status == VersionStatus.APPROVED
    assert [h.status for h in version.history.order_by("history_date")].count("approved") == 1
    case = Case.objects.get(pk=version.case_id)
    assert [h.status for h in case.history.order_by("history_date")].count("approved") == 1
    for task in ExecutionTask.objects.all():
        assert task.status == TaskStatus.REGISTERED
        assert [h.status for h in task.history.order_by("history_date")] == ["held", "registered"]


def test_concurrent_registrations_of_one_version_store_one_version_and_one_case(models_key):
    actor = Actor.for_key(models_key[0])
    results, errors = in_threads(4, lambda i: services.version_register(actor=actor, data=DATA))
    assert not errors
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert ModelVersion.objects.count() == 1
    assert Case.objects.filter(kind="model").count() == 1


def test_a_task_held_while_the_deciding_vote_commits_is_never_left_held(models_key, alice, bob, monkeypatch):
    """The registration decides "hold" and is made to linger before its insert while
    the deciding vote runs. The version's row lock makes the vote wait for the
    insert, so the approval finds the task and releases it; without the lock the
    vote would commit first and the task would stay held on an approved case."""
    import threading

    from django.db import connection

    import fsar.gate

    actor = Actor.for_key(models_key[0])
    version, _ = services.version_register(actor=actor, data=DATA)
    review_services.vote_cast(case_id=version.case_id, member=alice, choice="approve", rationale="The first approval.")
    decided, voted = threading.Event(), threading.Event()
    real = fsar.gate.model_decision

    def lingering(*args, **kwargs):
        decision = real(*args, **kwargs)
        if decision is not None and decision.decision == "hold":
            decided.set()
            voted.wait(timeout=3)  # with the lock held, the vote cannot finish: give up waiting
        return decision

    monkeypatch.setattr(fsar.gate, "model_decision", lingering)
    errors = []

    def register() -> None:
        try:
            task_register(actor=actor, external_id="t1", task_type="implement_idea", ai_model=DATA.ai_model)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    def vote() -> None:
        try:
            decided.wait(timeout=10)
            review_services.vote_cast(
                case_id=version.case_id, member=bob, choice="approve", rationale="The second approval, at once."
            )
            voted.set()
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=register), threading.Thread(target=vote)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert ModelVersion.objects.get().status == VersionStatus.APPROVED
    task = ExecutionTask.objects.get(external_id="t1")
    assert task.status == TaskStatus.REGISTERED
    assert [h.status for h in task.history.order_by("history_date")] == ["held", "registered"]


def test_concurrent_rollouts_of_one_family_start_one(approved_version, operator):
    """Two operators start rollouts of two candidates of one family at once: the
    partial unique constraint lets one through; the other is refused, nothing stored."""
    from deployments import rollouts
    from deployments.errors import RolloutError
    from deployments.models import Rollout
    from deployments.tests.conftest import REASON, passed_drill

    approved_version("coder-stable")
    approved_version("coder-a")
    approved_version("coder-b")
    stable = ModelVersion.objects.get(ai_model="coder-stable")
    passed_drill(stable)
    from deployments.tests.conftest import finished_tasks

    finished_tasks("coder-stable", 5)  # the family runs on coder-stable
    ids = [ModelVersion.objects.get(ai_model=m).pk for m in ("coder-a", "coder-b")]
    results, errors = in_threads(2, lambda i: rollouts.rollout_create(candidate_id=ids[i], reason=REASON, by=operator))
    assert len(results) == 1 and len(errors) == 1 and isinstance(errors[0], RolloutError)
    assert "active rollout already" in errors[0].message
    assert Rollout.objects.count() == 1 and Rollout.objects.get().stable == stable
