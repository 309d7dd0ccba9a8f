"""seed_demo registers the demo's models as approved and one new version pending
review with tasks held on it, so the committee queue shows a model case."""

from io import StringIO

import pytest
from django.core.management import call_command

from deployments.demo import APPROVED, HELD_TASKS
from deployments.models import ModelVersion, VersionStatus
from reviews.models import Case, CaseStatus
from tasks.models import ExecutionTask, TaskStatus

pytestmark = pytest.mark.django_db


def test_seed_demo_approves_the_demo_models_and_leaves_one_version_for_the_committee(client, django_user_model):
    call_command("seed_demo", "--tasks", "200", stdout=StringIO())
    approved = set(ModelVersion.objects.filter(status=VersionStatus.APPROVED).values_list("ai_model", flat=True))
    assert approved == {ai_model for _, ai_model, _ in APPROVED}
    demo_models = set(
        ExecutionTask.objects.filter(external_id__startswith="demo-7-", ai_model__isnull=False).values_list(
            "ai_model", flat=True
        )
    )
    assert demo_models <= approved  # every model the demo tasks ran on is approved
    pending = ModelVersion.objects.get(status=VersionStatus.PENDING_REVIEW)
    assert pending.ai_model == "gpt-5.2-preview"
    assert Case.objects.get(pk=pending.case_id).status == CaseStatus.OPEN
    held = ExecutionTask.objects.filter(status=TaskStatus.HELD, gate_case=str(pending.case_id))
    assert held.count() == HELD_TASKS
    # The reviews demo's held tasks still wait on their report, not on their model.
    assert ExecutionTask.objects.get(external_id="demo-held-0").gate_policy == "block-execution-hold"
    client.force_login(django_user_model.objects.get(username="alice"))
    assert "Model version gpt-5.2-preview (gpt)" in client.get("/reviews/?kind=model").content.decode()

    call_command("seed_demo", "--tasks", "200", stdout=StringIO())
    assert ModelVersion.objects.count() == len(APPROVED) + 1
    assert Case.objects.filter(kind="model").count() == len(APPROVED) + 1
