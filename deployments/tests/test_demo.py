"""seed_demo registers the demo's models as approved and one new version pending
review with tasks held on it, so the committee queue shows a model case."""

from io import StringIO

import pytest
from django.core.management import call_command

from deployments.demo import APPROVED, HELD_TASKS, REFUSED_FAMILY, ROLLOUT_FAMILY
from deployments.models import ModelVersion, VersionStatus
from reviews.models import Case, CaseStatus
from tasks.models import ExecutionTask, TaskStatus

pytestmark = pytest.mark.django_db


def test_seed_demo_approves_the_demo_models_and_leaves_one_version_for_the_committee(client, django_user_model):
    call_command("seed_demo", "--tasks", "200", stdout=StringIO())
    approved = set(ModelVersion.objects.filter(status=VersionStatus.APPROVED).values_list("ai_model", flat=True))
    rollout_models = {m for _, *ms in (ROLLOUT_FAMILY, REFUSED_FAMILY) for m in ms}
    assert approved == {ai_model for _, ai_model, _ in APPROVED} | rollout_models
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
    assert ModelVersion.objects.count() == len(APPROVED) + 1 + len(rollout_models)
    assert Case.objects.filter(kind="model").count() == len(APPROVED) + 1 + len(rollout_models)


def test_seed_demo_has_a_family_mid_rollout_and_one_whose_rollout_is_refused(client, django_user_model):
    from deployments import rollouts
    from deployments.errors import RolloutError
    from deployments.models import RollbackDrill, Rollout

    call_command("seed_demo", "--tasks", "50", stdout=StringIO())
    rollout = Rollout.objects.get(family="coder")
    assert (rollout.state, rollout.weight, rollout.step) == ("progressing", 25, 2)
    assert [(a.step, a.verdict) for a in rollout.analyses.order_by("id")] == [(0, "pass"), (1, "pass")]
    figures = rollout.analyses.first().figures
    assert figures["candidate"]["count"] >= 20 and figures["stable"]["p95_ms"] is not None
    assert figures["candidate"]["mean_cost_micros"] is not None
    drill = RollbackDrill.objects.get(family="writer")
    assert drill.state == "fail" and drill.case_id is not None
    writer_next = ModelVersion.objects.get(ai_model="writer-2026-11")
    with pytest.raises(RolloutError, match="ended fail: warm check failed: answered HTTP 503"):
        rollouts.rollout_create(candidate_id=writer_next.pk, reason="Try the writer rollout again.")
    client.force_login(django_user_model.objects.get(username="operator"))
    html = client.get("/models/").content.decode()
    assert "<code>coder-2026-10</code> 75% · <code>coder-2026-12</code> 25%" in html
    assert "A rollout cannot start now" in html
    assert client.get(f"/models/rollouts/{rollout.pk}/").status_code == 200

    call_command("seed_demo", "--tasks", "50", stdout=StringIO())  # a rerun changes nothing
    assert Rollout.objects.count() == 1 and RollbackDrill.objects.count() == 2
