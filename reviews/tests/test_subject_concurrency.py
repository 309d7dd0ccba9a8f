"""A subject case (reviews.subjects) under concurrency, on PostgreSQL: members
approving at once decide it once, and each held task is decided again once."""

import pytest

from reviews import services, subjects
from reviews.models import Case
from reviews.tests.test_concurrency import in_threads
from reviews.tests.test_subject_cases import WHY, open_widget
from tasks.models import ExecutionTask, TaskStatus
from tasks.services import Actor, task_register

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(autouse=True)
def widget_kind(settings):
    subjects.register_kind("widget", label="Widget")
    settings.TASK_GATE = "reviews.tests.test_subject_cases.widget_gate"
    yield
    subjects.unregister_kind("widget")


def test_concurrent_approvals_decide_once_and_release_each_held_task_once(api_key, alice, bob, charlie):
    actor = Actor.for_key(api_key[0])
    case = open_widget(quorum=2)
    _, errors = in_threads(
        4, lambda i: task_register(actor=actor, external_id=f"t{i}", task_type="implement_idea", ai_model="widget-1")
    )
    assert not errors
    assert set(ExecutionTask.objects.values_list("status", flat=True)) == {TaskStatus.HELD}

    members = [alice, bob, charlie]
    _, errors = in_threads(
        3, lambda i: services.vote_cast(case_id=case.pk, member=members[i], choice="approve", rationale=WHY)
    )
    # All three recorded, or the last one finds the case decided: refused, nothing recorded.
    assert len(errors) <= 1 and all(isinstance(e, services.NotAllowed) for e in errors)
    case = Case.objects.get(pk=case.pk)
    assert [h.status for h in case.history.order_by("history_date")].count("approved") == 1
    for task in ExecutionTask.objects.all():
        assert [h.status for h in task.history.order_by("history_date")] == ["held", "registered"]
