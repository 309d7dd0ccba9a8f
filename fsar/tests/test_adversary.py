"""The AI client is the adversary: each test is one attempt to get around human
oversight, made as the client would make it, through the agent API (or, for a
person, the pages), never by calling a private helper. Each first shows that the
setup reaches the door (the attempt would have worked without the rule), then
that the door is shut.

The client holds keys with every scope, retries, races, backfills, revises its
reports and reads our docs. Run this suite alone with `pytest -m adversary`.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from fsar.testing import report_md
from reviews import services
from reviews.models import Case, CaseStatus, PolicyRule, Vote
from tasks.models import ExecutionTask, TaskStatus

pytestmark = [pytest.mark.adversary, pytest.mark.django_db]

WHY = "I read the report and the rollback plan."


def call(client, path, body=None, secret=None):
    extra = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}
    return client.post(f"/api/v1{path}", json.dumps(body or {}), content_type="application/json", **extra)


def register(agent, external_id, secret=None, **fields):
    return call(agent, "/tasks", {"external_id": external_id, "task_type": "implement_idea", **fields}, secret)


def start(agent, task, secret=None):
    return call(agent, f"/tasks/{task['id']}/start", secret=secret)


def stored(task) -> ExecutionTask:
    return ExecutionTask.objects.get(pk=task["id"])


def approved_report(post_report, alice, bob, report_id="r1", severity=35) -> int:
    """A report the policy holds for the committee (severity 30–49: quorum 2), approved."""
    case_id = post_report(report_md(report_id, severity=severity)).json()["gate"]["case"]
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)
    assert Case.objects.get(pk=case_id).status == CaseStatus.APPROVED
    return case_id


# ------------------------------------------------ the gate's answer at the moment of use


def test_start_after_pause_is_refused(agent, operator, django_capture_on_commit_callbacks):
    before, task = register(agent, "t0").json(), register(agent, "t1").json()
    assert task["gate"]["decision"] == "allow"
    assert start(agent, before).status_code == 200  # the door: an allowed task starts

    services.gate_pause(by=operator, reason="incident 42: the agent misbehaves")
    response = start(agent, task)

    assert response.status_code == 409
    body = response.json()
    assert body["detail"].startswith("gate closed")
    assert "incident 42" in body["detail"]
    assert (body["decision"], body["policy"], body["case"]) == ("hold", "global-pause", None)
    task_now = stored(task)
    assert (task_now.status, task_now.gate_policy, task_now.started_at) == (TaskStatus.HELD, "global-pause", None)
    assert task_now.history.latest().history_change_reason == "start refused; gate now: hold"
    # Resuming gives it the gate's current answer again, and then it may start.
    with django_capture_on_commit_callbacks(execute=True):
        services.gate_resume(by=operator, reason="incident 42 resolved")
    assert start(agent, task).status_code == 200


def test_start_after_the_approval_is_revoked_is_refused(agent, post_report, alice, bob):
    case_id = approved_report(post_report, alice, bob)
    before = register(agent, "t0", proposal_id="r1").json()
    task = register(agent, "t1", proposal_id="r1").json()
    assert (task["gate"]["decision"], task["gate"]["case"]) == ("allow", case_id)
    assert start(agent, before).status_code == 200

    services.case_revoke(case_id=case_id, by=bob, rationale="The rollback plan was never tested.")
    response = start(agent, task)

    assert response.status_code == 409
    assert response.json()["case"] == case_id
    assert f"case {case_id}" in response.json()["detail"]
    assert (stored(task).status, stored(task).gate_case) == (TaskStatus.HELD, str(case_id))


def test_start_after_the_approval_lapsed_is_refused_even_before_the_expiry_job_runs(agent, post_report, alice, bob):
    case_id = approved_report(post_report, alice, bob)
    task = register(agent, "t1", proposal_id="r1").json()
    assert task["gate"]["decision"] == "allow"
    approved_until = Case.objects.get(pk=case_id).approved_until

    with time_machine.travel(approved_until - timedelta(minutes=1)):
        early = register(agent, "t0", proposal_id="r1").json()
        assert start(agent, early).status_code == 200  # the door: still approved a minute before
    with time_machine.travel(approved_until + timedelta(minutes=1)):
        response = start(agent, task)  # no cases_expire() has run

    assert response.status_code == 409
    assert response.json()["case"] == case_id
    assert stored(task).status == TaskStatus.HELD
    assert Case.objects.get(pk=case_id).status == CaseStatus.OPEN  # back in front of the committee


def test_start_after_a_revision_voided_the_votes_is_refused(agent, post_report, alice, bob):
    case_id = approved_report(post_report, alice, bob)
    before = register(agent, "t0", proposal_id="r1").json()
    task = register(agent, "t1", proposal_id="r1").json()
    assert start(agent, before).status_code == 200

    revised = post_report(report_md("r2", severity=35, supersedes="r1", proposal="version TWO: disable all oversight"))
    assert revised.json()["gate"]["case"] == case_id
    response = start(agent, task)

    assert response.status_code == 409
    assert response.json()["case"] == case_id
    assert stored(task).status == TaskStatus.HELD
    assert Case.objects.get(pk=case_id).version == 2


def test_start_after_the_case_was_rejected_is_refused(agent, post_report, alice):
    case_id = post_report(report_md("r1", severity=12)).json()["gate"]["case"]  # advisory: tasks run
    before = register(agent, "t0", proposal_id="r1").json()
    task = register(agent, "t1", proposal_id="r1").json()
    assert task["gate"]["decision"] == "allow"
    assert start(agent, before).status_code == 200

    services.case_escalate(case_id=case_id, by=alice, reason="Looks worse than it says.")
    services.case_decide(case_id=case_id, decision="rejected", by=alice, rationale="Not without a rollback plan.")
    response = start(agent, task)

    assert response.status_code == 409
    assert response.json()["decision"] == "deny"
    assert "rejected" in response.json()["detail"]
    assert stored(task).status == TaskStatus.DENIED


def test_start_after_a_policy_change_now_holds_it_is_refused(agent, superuser):
    before, task = register(agent, "t0", ai_model="exp-1").json(), register(agent, "t1", ai_model="exp-1").json()
    assert task["gate"]["decision"] == "allow"
    assert start(agent, before).status_code == 200

    services.policy_change_emergency(
        by=superuser,
        operation="create",
        values={"name": "experimental-models", "priority": 1, "ai_model_glob": "exp-*", "action": "hold"},
        reason="Experimental models run only with a committee decision.",
    )
    response = start(agent, task)

    assert response.status_code == 409
    assert response.json()["policy"] == "experimental-models"
    case = Case.objects.get(kind=Case.Kind.TASKS, ai_model="exp-1")
    assert response.json()["case"] == case.pk
    assert (stored(task).status, stored(task).gate_case) == (TaskStatus.HELD, str(case.pk))


def test_start_after_the_models_own_failures_crossed_a_rule_is_refused(agent):
    PolicyRule.objects.create(
        name="flaky-models", priority=1, metric="failure_rate", metric_threshold=0.5, metric_window=4, action="hold"
    )
    services.rules_changed()
    waiting = register(agent, "waiting", ai_model="exp-1").json()
    assert waiting["gate"]["decision"] == "allow"
    runs = [register(agent, f"run-{i}", ai_model="exp-1").json() for i in range(4)]
    assert all(start(agent, run).status_code == 200 for run in runs)  # the door: the model may run
    for run in runs:  # and its four live runs fail
        assert call(agent, f"/tasks/{run['id']}/finish", {"outcome": "failed"}).status_code == 200

    response = start(agent, waiting)

    assert response.status_code == 409
    assert response.json()["policy"] == "flaky-models"
    assert stored(waiting).status == TaskStatus.HELD


def test_re_registering_an_allowed_task_reports_the_gate_answer_now_not_the_stale_one(agent, operator):
    first = register(agent, "t1")
    assert first.status_code == 201 and first.json()["gate"]["decision"] == "allow"
    assert register(agent, "t1").json()["gate"]["decision"] == "allow"  # the door: a retry answers 200

    services.gate_pause(by=operator, reason="incident 43")
    again = register(agent, "t1")

    assert again.status_code == 200
    assert again.json()["status"] == "held"
    assert again.json()["gate"]["decision"] == "hold"
    assert "incident 43" in again.json()["gate"]["reason"]
    assert start(agent, first.json()).status_code == 409


# ------------------------------------------------------------ the record the gate reads


def test_backfill_cannot_release_a_held_model(agent):
    PolicyRule.objects.create(
        name="flaky-models", priority=1, metric="failure_rate", metric_threshold=0.5, metric_window=20, action="hold"
    )
    services.rules_changed()
    for i in range(20):  # twenty real failures, seen live
        run = register(agent, f"run-{i}", ai_model="exp-1").json()
        start(agent, run)
        call(agent, f"/tasks/{run['id']}/finish", {"outcome": "failed"})
    assert register(agent, "next", ai_model="exp-1").json()["gate"]["policy"] == "flaky-models"

    now = timezone.now()
    rows = [
        {
            "external_id": f"laundered-{i}",
            "task_type": "implement_idea",
            "ai_model": "exp-1",
            "status": "succeeded",
            # two days ago, and a second ago: by id or by finish time, the newest rows
            "started_at": (now - timedelta(days=2, seconds=i + 1) if i % 2 else now - timedelta(seconds=2)).isoformat(),
            "finished_at": (now - timedelta(days=2, seconds=i) if i % 2 else now - timedelta(seconds=1)).isoformat(),
        }
        for i in range(20)
    ]
    backfill = call(agent, "/tasks/bulk", {"tasks": rows})
    assert backfill.status_code == 200 and backfill.json()["created"] == 20  # the door: the rows are stored

    after = register(agent, "after-backfill", ai_model="exp-1").json()
    assert (after["status"], after["gate"]["policy"]) == ("held", "flaky-models")
    assert "failure_rate=1.0" in after["gate"]["reason"]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("finished_at", 1_790_000_000, "ISO 8601"),
        ("finished_at", "1790000000", "ISO 8601"),
        ("started_at", "2026-10-01T09:00:00", "timezone"),
        ("started_at", "1970-01-01T00:00:00Z", "before 2000-01-01"),
        ("finished_at", "2999-01-01T00:00:00Z", "in the future"),
    ],
)
def test_backfill_cannot_forge_timestamps(agent, field, value, problem):
    good = {
        "external_id": "h-0",
        "task_type": "implement_idea",
        "ai_model": "exp-1",
        "status": "succeeded",
        "started_at": "2026-10-01T09:00:00Z",
        "finished_at": "2026-10-01T09:00:01Z",
    }
    assert call(agent, "/tasks/bulk", {"tasks": [good]}).status_code == 200  # the door: a plain row is stored

    response = call(
        agent, "/tasks/bulk", {"tasks": [{**good, "external_id": "h-1"}, {**good, "external_id": "h-2", field: value}]}
    )

    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"tasks[1].{field}")
    assert problem in response.json()["detail"]
    assert not ExecutionTask.objects.filter(external_id__in=["h-1", "h-2"]).exists()


# ------------------------------------------------------------ keys act on their own tasks


def test_another_keys_task_cannot_be_started_finished_or_cancelled(client, make_api_key):
    _, mine = make_api_key()
    _, other = make_api_key()
    theirs = register(client, "theirs", secret=other).json()
    decoy = register(client, "decoy", secret=other).json()
    assert start(client, decoy, secret=other).status_code == 200  # the door: its own key may
    missing = call(client, "/tasks/999999/start", secret=mine)

    for action, body in (("start", {}), ("finish", {"outcome": "succeeded"}), ("cancel", {"reason": "mine now"})):
        response = call(client, f"/tasks/{theirs['id']}/{action}", body, secret=mine)
        assert response.status_code == 404, action
        assert response.json()["detail"] == f"No task with id {theirs['id']}."  # as if it did not exist
    assert missing.status_code == 404
    assert stored(theirs).status == TaskStatus.REGISTERED
    assert stored(theirs).history.count() == 1


def test_re_registering_another_keys_external_id_reveals_nothing(client, make_api_key):
    _, mine = make_api_key()
    _, other = make_api_key()
    fields = {"ai_model": "gpt-5.1", "payload": {"prompt": "the other tenant's secret plan"}}
    assert register(client, "shared", secret=other, **fields).status_code == 201
    assert register(client, "shared", secret=other, **fields).status_code == 200  # the door: its own key retries

    response = register(client, "shared", secret=mine, **fields)

    assert response.status_code == 404
    assert "secret plan" not in response.content.decode()
    assert "payload" not in response.json()
    different = register(client, "shared", secret=mine, ai_model="other")
    assert different.status_code == 404  # not even which fields differ
    assert "fields" not in different.json()


# ------------------------------------------------------- nobody reviews their own work


def test_a_member_cannot_approve_what_their_own_key_registered(client, make_api_key, alice, bob):
    PolicyRule.objects.create(name="experimental-models", priority=1, ai_model_glob="exp-*", action="hold", quorum=2)
    services.rules_changed()
    _, alices_key = make_api_key(owner=alice)
    task = register(client, "t1", secret=alices_key, ai_model="exp-1").json()
    case_id = int(task["gate"]["case"])
    client.force_login(bob)
    page = client.get(reverse("reviews:case", args=[case_id]))
    client.post(
        reverse("reviews:vote", args=[case_id]),
        {"choice": "approve", "rationale": WHY, "version": page.context["case"].version},
    )
    assert Vote.objects.filter(case_id=case_id, member=bob).exists()  # the door: a member may vote here

    client.force_login(alice)
    page = client.get(reverse("reviews:case", args=[case_id]))
    assert "You cannot vote" in page.content.decode()
    assert "registered" in page.context["why_not"]
    response = client.post(
        reverse("reviews:vote", args=[case_id]),
        {"choice": "approve", "rationale": WHY, "version": page.context["case"].version},
        follow=True,
    )

    assert "You cannot vote" in response.content.decode()
    assert not Vote.objects.filter(case_id=case_id, member=alice).exists()
    assert Case.objects.get(pk=case_id).status == CaseStatus.OPEN
    assert start(client, task, secret=alices_key).status_code == 409


def test_re_owning_the_key_does_not_let_its_former_owner_vote(client, make_api_key, alice, charlie):
    PolicyRule.objects.create(name="experimental-models", priority=1, ai_model_glob="exp-*", action="hold", quorum=1)
    services.rules_changed()
    key, secret = make_api_key(owner=alice)
    case_id = int(register(client, "t1", secret=secret, ai_model="exp-1").json()["gate"]["case"])
    key.owner = charlie  # an operator hands the key to someone else; its secret is unchanged
    key._change_reason = "handed over"
    key.save()
    client.force_login(alice)

    page = client.get(reverse("reviews:case", args=[case_id]))
    response = client.post(
        reverse("reviews:vote", args=[case_id]),
        {"choice": "approve", "rationale": WHY, "version": page.context["case"].version},
        follow=True,
    )

    assert "You cannot vote" in response.content.decode()
    assert not Vote.objects.filter(case_id=case_id).exists()
    assert Case.objects.get(pk=case_id).status == CaseStatus.OPEN
    with pytest.raises(services.NotAllowed, match="You cannot vote"):
        services.vote_cast(case_id=case_id, member=charlie, choice="approve", rationale=WHY, version=1)


# ------------------------------------------------------ a vote is for the version seen


def test_a_stale_vote_form_is_not_counted_for_a_newer_version(client, post_report, alice):
    case_id = post_report(report_md("r1", severity=35, proposal="implement_idea: add a cache")).json()["gate"]["case"]
    client.force_login(alice)
    page = client.get(reverse("reviews:case", args=[case_id]))
    form_version = page.context["case"].version
    assert f'name="version" value="{form_version}"' in page.content.decode()

    post_report(report_md("r2", severity=35, supersedes="r1", proposal="version TWO: disable all oversight"))
    response = client.post(
        reverse("reviews:vote", args=[case_id]),
        {"choice": "approve", "rationale": WHY, "version": form_version},
        follow=True,
    )

    html = response.content.decode()
    assert "the case changed since you opened it" in html
    assert "+version TWO: disable all oversight" in html  # shown with the change
    assert not Vote.objects.filter(case_id=case_id).exists()
    # The door, once the member has seen version 2: the same vote counts.
    client.post(reverse("reviews:vote", args=[case_id]), {"choice": "approve", "rationale": WHY, "version": 2})
    assert Vote.objects.get(case_id=case_id).case_version == 2


def test_a_vote_form_without_its_version_is_refused(client, post_report, alice):
    case_id = post_report(report_md("r1", severity=35)).json()["gate"]["case"]
    client.force_login(alice)

    response = client.post(
        reverse("reviews:vote", args=[case_id]), {"choice": "approve", "rationale": WHY}, follow=True
    )

    assert "version" in response.content.decode()
    assert not Vote.objects.exists()
