"""The gate holds and releases tasks by model version (fsar/gate.py: the model
first, then the policy rules). Written from the AI side through the API."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from audit.models import AuditEntry
from deployments.models import ModelVersion, VersionStatus
from deployments.tests.conftest import APPROVE, register_task, register_version
from reviews import services as review_services
from reviews.models import CallbackDelivery, Case, CaseStatus
from tasks.models import ExecutionTask

pytestmark = pytest.mark.django_db


def test_a_task_on_a_pending_version_is_held_and_two_approvals_release_it_once(ai, alice, bob):
    case_id = register_version(ai).json()["case"]
    response = register_task(ai, "t1")
    assert response.status_code == 201
    task = response.json()
    assert task["status"] == "held"
    gate = task["gate"]
    assert (gate["decision"], gate["policy"], gate["case"], gate["case_status"]) == (
        "hold",
        "model-version",
        case_id,
        "open",
    )
    assert "pending review" in gate["reason"]
    start = ai.post(f"/api/v1/tasks/{task['id']}/start")
    assert start.status_code == 409 and start.json()["case"] == case_id

    review_services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=APPROVE)
    assert ai.get(f"/api/v1/tasks/{task['id']}").json()["status"] == "held"
    review_services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=APPROVE)

    released = ai.get(f"/api/v1/tasks/{task['id']}").json()
    assert released["status"] == "registered"
    assert (released["gate"]["decision"], released["gate"]["case"]) == ("allow", case_id)
    assert released["gate"]["case_status"] == "approved"
    assert [h.status for h in ExecutionTask.history.filter(id=task["id"]).order_by("history_date")] == [
        "held",
        "registered",
    ]
    assert ai.post(f"/api/v1/tasks/{task['id']}/start").status_code == 200
    later = register_task(ai, "t2").json()
    assert (later["status"], later["gate"]["decision"], later["gate"]["policy"]) == (
        "registered",
        "allow",
        "default-allow",
    )
    version = ModelVersion.objects.get()
    assert version.status == VersionStatus.APPROVED and version.approved_until == Case.objects.get().approved_until
    assert AuditEntry.objects.filter(kind="model_version.approved", actor="bob").count() == 1


def test_a_blocked_version_denies_its_tasks_naming_the_status(ai):
    register_version(ai, evaluation={"p95_ms": 100})
    task = register_task(ai, "t1").json()
    assert task["status"] == "denied"
    assert task["gate"]["decision"] == "deny"
    assert "model version 'coder-2026-12' is blocked" in task["gate"]["reason"]


def test_an_unregistered_model_is_held_until_its_version_is_registered_and_approved(
    ai, approve_version, django_capture_on_commit_callbacks
):
    task = register_task(ai, "t1", ai_model="mystery-1").json()
    assert (task["status"], task["gate"]["policy"], task["gate"]["case"]) == ("held", "model-unregistered", None)
    assert "register the version" in task["gate"]["reason"]

    with django_capture_on_commit_callbacks(execute=True):  # a job after commit moves it onto the case
        case_id = register_version(ai, ai_model="mystery-1").json()["case"]
    moved = ai.get(f"/api/v1/tasks/{task['id']}").json()
    assert (moved["status"], moved["gate"]["case"]) == ("held", case_id)
    approve_version(case_id)
    assert ai.get(f"/api/v1/tasks/{task['id']}").json()["status"] == "registered"


def test_a_task_held_unregistered_that_the_job_missed_is_moved_by_the_periodic_safety_net(ai):
    from deployments import jobs

    task = register_task(ai, "t1", ai_model="late-1").json()
    # Registered without its after-commit job running (as when the task's insert committed after that job's scan).
    case_id = register_version(ai, ai_model="late-1").json()["case"]
    assert ai.get(f"/api/v1/tasks/{task['id']}").json()["gate"]["policy"] == "model-unregistered"
    assert jobs.redecide_all_unregistered() == 1
    moved = ai.get(f"/api/v1/tasks/{task['id']}").json()
    assert (moved["status"], moved["gate"]["case"]) == ("held", case_id)
    assert jobs.redecide_all_unregistered() == 0


@pytest.mark.parametrize("mode,status", [("deny", "denied"), ("allow", "registered")])
def test_the_setting_decides_for_unregistered_versions(ai, settings, mode, status):
    settings.MODELS_UNREGISTERED = mode
    task = register_task(ai, "t1", ai_model="mystery-1").json()
    assert task["status"] == status


def test_tasks_with_no_model_keep_todays_behaviour(ai):
    task = register_task(ai, "t1", ai_model=None).json()
    assert (task["status"], task["gate"]["policy"]) == ("registered", "default-allow")


def test_rejecting_a_version_denies_its_held_tasks_and_later_ones(ai, alice):
    case_id = register_version(ai).json()["case"]
    held = register_task(ai, "t1").json()
    review_services.vote_cast(case_id=case_id, member=alice, choice="reject", rationale="Red-team pass rate too low.")
    assert ai.get(f"/api/v1/tasks/{held['id']}").json()["status"] == "denied"
    assert ModelVersion.objects.get().status == VersionStatus.REJECTED
    later = register_task(ai, "t2").json()
    assert later["status"] == "denied" and "is rejected" in later["gate"]["reason"]


@pytest.fixture
def callback(models_key, operator):
    review_services.callback_endpoint_set(
        api_key_id=models_key[0].pk, url="https://agent.example/cb", secret="s3cret", by=operator
    )


def test_revoking_an_approved_version_denies_new_tasks_and_stops_running_ones(
    ai, approved_version, alice, callback, settings
):
    version = approved_version()
    running = register_task(ai, "running").json()
    assert ai.post(f"/api/v1/tasks/{running['id']}/start").status_code == 200
    allowed = register_task(ai, "allowed-not-started").json()
    assert allowed["status"] == "registered"
    settings.MODELS_UNREGISTERED = "allow"
    other = register_task(ai, "other-model", ai_model="other-1").json()
    ai.post(f"/api/v1/tasks/{other['id']}/start")
    # Cached: the gate answers from memory now.
    before = register_task(ai, "before").json()
    assert before["status"] == "registered"

    review_services.case_revoke(case_id=version["case"], by=alice, rationale="It leaks secrets under load.")

    after = register_task(ai, "after").json()
    assert after["status"] == "denied" and "revoked" in after["gate"]["reason"]
    # Allowed before the revocation but not started: denied, so it cannot start now.
    withdrawn = ai.get(f"/api/v1/tasks/{allowed['id']}").json()
    assert withdrawn["status"] == "denied" and "was revoked" in withdrawn["gate"]["reason"]
    assert ai.post(f"/api/v1/tasks/{allowed['id']}/start").status_code == 409
    denied = set(CallbackDelivery.objects.filter(type=CallbackDelivery.Type.DENIED).values_list("task_id", flat=True))
    assert denied == {allowed["id"], before["id"]}
    stops = CallbackDelivery.objects.filter(type=CallbackDelivery.Type.STOP)
    assert [d.task_id for d in stops] == [running["id"]]  # once, and not the other model's task
    assert ModelVersion.objects.get(ai_model="coder-2026-12").status == VersionStatus.REVOKED
    assert AuditEntry.objects.filter(kind="model_version.revoked").count() == 1


def test_an_approval_that_lapses_holds_again_until_the_committee_renews_it(ai, approved_version, approve_version):
    version = approved_version()
    later = timezone.now() + timedelta(days=91)
    with time_machine.travel(later, tick=False):
        held = register_task(ai, "t1").json()
        assert (held["status"], held["gate"]["case"]) == ("held", version["case"])
        assert "lapsed" in held["gate"]["reason"]
        review_services.cases_expire()
        assert ModelVersion.objects.get().status == VersionStatus.PENDING_REVIEW
        assert Case.objects.get().status == CaseStatus.EXPIRED
        approve_version(version["case"])
        assert ai.get(f"/api/v1/tasks/{held['id']}").json()["status"] == "registered"
        assert ModelVersion.objects.get().status == VersionStatus.APPROVED


def test_a_policy_rule_still_decides_after_the_version_is_approved(ai, approved_version):
    from reviews.models import PolicyRule

    approved_version()
    PolicyRule.objects.create(name="blocked-customer", priority=1, customers=["evil-co"], action="deny")
    task = register_task(ai, "t1", customer="evil-co").json()
    assert (task["status"], task["gate"]["policy"]) == ("denied", "blocked-customer")


def test_an_approved_version_costs_two_queries_once_and_none_after(ai, approved_version, django_assert_num_queries):
    from deployments.gate import clear_cache, model_decision
    from reviews.selectors import gate_state

    approved_version()
    version = gate_state().rules_version
    clear_cache()
    # The version by its ai_model, and the rollouts' candidates without traffic (once per rules version).
    with django_assert_num_queries(2):
        assert model_decision("coder-2026-12", rules_version=version) is None
    with django_assert_num_queries(0):
        assert model_decision("coder-2026-12", rules_version=version) is None
        assert model_decision("coder-2026-12", rules_version=version) is None
