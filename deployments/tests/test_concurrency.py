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
