"""The AI side against the model gate: it holds API keys with every scope,
retries, races, backfills and reads our docs. Each test first shows the attempt
reaches the door, then that the door is shut."""

import pytest

from deployments.models import ModelVersion, VersionStatus
from fsar.testing import APPROVE, register_task, register_version, report_md
from reviews import services as review_services
from reviews.models import Case, CaseStatus
from tasks.models import ExecutionTask, TaskStatus

pytestmark = pytest.mark.django_db


def test_approving_the_model_does_not_release_a_task_its_report_still_holds(ai, approve_version):
    report_case = ai.post("/api/v1/proposals", data=report_md("r1", severity=50), content_type="text/markdown").json()[
        "gate"
    ]["case"]
    model_case = register_version(ai).json()["case"]
    # The door: the task waits on the model's case, not its report's.
    task = register_task(ai, "t1", proposal_id="r1").json()
    assert (task["status"], task["gate"]["case"]) == ("held", model_case)

    approve_version(model_case)

    after = ai.get(f"/api/v1/tasks/{task['id']}").json()
    assert (after["status"], after["gate"]["case"]) == ("held", report_case)
    assert ai.post(f"/api/v1/tasks/{task['id']}/start").status_code == 409


def test_the_owner_of_the_registering_key_cannot_vote_on_its_version(ai, models_key, alice):
    from django.contrib.auth.models import Group

    from core.roles import COMMITTEE

    owner = models_key[0].owner
    case_id = register_version(ai).json()["case"]
    # The door: a committee member may vote on a model case...
    assert review_services.why_cannot_vote(Case.objects.get(pk=case_id), alice) is None
    # ...but not the person answerable for the key that registered it.
    owner.groups.add(Group.objects.get(name=COMMITTEE))
    with pytest.raises(review_services.NotAllowed, match="you submitted"):
        review_services.vote_cast(case_id=case_id, member=owner, choice="approve", rationale=APPROVE)


def test_a_model_case_cannot_be_sent_back_for_changes_to_be_revised_in_place(ai, alice):
    case_id = register_version(ai).json()["case"]
    with pytest.raises(review_services.NotAllowed, match="cannot be revised"):
        review_services.vote_cast(case_id=case_id, member=alice, choice="request_changes", rationale=APPROVE)
    # A changed model is a new version, with a case of its own: the stored one cannot be edited.
    assert register_version(ai, evaluation={"failure_rate": 0.0}).status_code == 409


def test_backfilling_good_results_does_not_release_a_held_version(ai):
    register_version(ai)
    held = register_task(ai, "t1").json()
    rows = [
        {
            "external_id": f"fake-{i}",
            "task_type": "implement_idea",
            "ai_model": "coder-2026-12",
            "status": "succeeded",
            "started_at": "2026-11-01T10:00:00Z",
            "finished_at": "2026-11-01T10:01:00Z",
        }
        for i in range(50)
    ]
    assert ai.post("/api/v1/tasks/bulk", data={"tasks": rows}, content_type="application/json").status_code == 200
    assert ModelVersion.objects.get().status == VersionStatus.PENDING_REVIEW
    assert ExecutionTask.objects.get(pk=held["id"]).status == TaskStatus.HELD
    assert register_task(ai, "t2").json()["status"] == "held"


def test_another_family_name_does_not_skip_review(ai):
    response = register_version(ai, ai_model="coder-2026-12-b", family="trusted-internal")
    assert (response.json()["status"], response.json()["gate"]["decision"]) == ("pending_review", "hold")


def test_retrying_a_blocked_version_with_a_better_evaluation_is_a_conflict(ai):
    assert register_version(ai, evaluation={}).json()["status"] == "blocked"
    retry = register_version(ai, evaluation={"failure_rate": 0.01})
    assert retry.status_code == 409 and retry.json()["fields"] == ["evaluation"]
    assert register_task(ai, "t1").json()["status"] == "denied"


def test_a_racing_registration_that_missed_the_stored_row_gets_the_stored_version(ai, monkeypatch):
    from deployments import services
    from tasks.services import Actor

    first = register_version(ai).json()
    # A second request that read before the first one committed: the unique index answers it.
    original = ModelVersion.objects.filter
    calls = {"n": 0}

    def missed_once(*args, **kwargs):
        calls["n"] += 1
        return ModelVersion.objects.none() if calls["n"] == 1 else original(*args, **kwargs)

    monkeypatch.setattr(ModelVersion.objects, "filter", missed_once)
    data = services.VersionInput(
        family="coder",
        ai_model="coder-2026-12",
        artifact_uri="s3://models/coder-2026-12.safetensors",
        artifact_sha256="ab" * 32,
        evaluation={"failure_rate": 0.03, "p95_ms": 4200, "red_team_pass_rate": 0.95},
    )
    version, created = services.version_register(actor=Actor(), data=data)
    assert (version.pk, created) == (first["id"], False)
    assert Case.objects.filter(kind="model").count() == 1
    assert Case.objects.get().status == CaseStatus.OPEN


def test_a_task_allowed_on_an_approved_version_cannot_start_after_the_approval_lapsed(ai, approved_version):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    version = approved_version()
    allowed = register_task(ai, "t1").json()
    # The door: registered while the approval held, the task may start...
    assert allowed["status"] == "registered"
    assert ai.post(f"/api/v1/tasks/{register_task(ai, 't0').json()['id']}/start").status_code == 200
    # ...but the gate is asked again at the moment of use: after the approval lapsed
    # (no expiry job has run), starting the task registered under it is refused.
    with time_machine.travel(timezone.now() + timedelta(days=91), tick=False):
        response = ai.post(f"/api/v1/tasks/{allowed['id']}/start")
    assert response.status_code == 409, response.content
    assert "lapsed" in response.json()["detail"]
    assert ExecutionTask.objects.get(pk=allowed["id"]).status == TaskStatus.HELD
    assert str(response.json()["case"]) == str(version["case"])
