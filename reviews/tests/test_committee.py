"""The committee's decision rules: quorum, no self-review, recusal, blind votes
per version, revisions, revocation, expiry, claims."""

import pytest
import time_machine
from django.utils import timezone

from fsar.testing import report_md
from reviews import services
from reviews.models import Case, CaseStatus, PolicyRule, Vote
from tasks.models import ExecutionTask, TaskStatus

pytestmark = pytest.mark.django_db
WHY = "I read the report and the rollback plan."


def held(agent, post_report, *, severity=30, report_id="r1", task_id="t1"):
    """A report held for a quorum of 2 (severity ≥ 30) and a task waiting on it."""
    case_id = post_report(report_md(report_id, severity=severity)).json()["gate"]["case"]
    task = agent.post(
        "/api/v1/tasks",
        data={"external_id": task_id, "task_type": "implement_idea", "proposal_id": report_id},
        content_type="application/json",
    ).json()
    return case_id, task["id"]


def test_the_quorum_of_approvals_approves_and_releases_the_waiting_task(agent, post_report, alice, bob):
    case_id, task_id = held(agent, post_report)
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    assert Case.objects.get(pk=case_id).status == CaseStatus.OPEN
    assert ExecutionTask.objects.get(pk=task_id).status == TaskStatus.HELD
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale="Risks are mitigated well enough.")
    case = Case.objects.get(pk=case_id)
    assert case.status == CaseStatus.APPROVED
    assert "alice: I read the report" in case.rationale and "bob: Risks are mitigated" in case.rationale
    assert ExecutionTask.objects.get(pk=task_id).status == TaskStatus.REGISTERED
    assert [h.history_user for h in Vote.history.order_by("history_date")] == [alice, bob]


def test_any_reject_rejects_by_default(agent, post_report, alice, bob):
    case_id, task_id = held(agent, post_report)
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=case_id, member=bob, choice="reject", rationale="The audit plan has no teeth.")
    assert Case.objects.get(pk=case_id).status == CaseStatus.REJECTED
    assert ExecutionTask.objects.get(pk=task_id).status == TaskStatus.DENIED


def test_a_majority_policy_needs_most_eligible_members_to_reject(agent, post_report, alice, bob, charlie):
    PolicyRule.objects.filter(name="severity-30-hold").update(decide_by_majority=True)
    services.rules_changed()
    case_id, _ = held(agent, post_report)
    services.vote_cast(case_id=case_id, member=alice, choice="reject", rationale="Not convinced at all by this.")
    assert Case.objects.get(pk=case_id).status == CaseStatus.OPEN  # 1 of 3 eligible
    services.vote_cast(case_id=case_id, member=bob, choice="reject", rationale="Agree with alice on this one.")
    assert Case.objects.get(pk=case_id).status == CaseStatus.REJECTED


def test_a_majority_policy_at_exactly_half_stays_open(agent, post_report, alice, bob, charlie, django_user_model):
    """More than half must reject: 2 rejects of 4 eligible members is not a majority."""
    from core.roles import COMMITTEE
    from fsar.testing import make_user
    from reviews.selectors import eligible_member_ids

    dave = make_user(django_user_model, "dave", COMMITTEE)
    PolicyRule.objects.filter(name="severity-30-hold").update(decide_by_majority=True)
    services.rules_changed()
    case_id, task_id = held(agent, post_report)
    assert eligible_member_ids(Case.objects.get(pk=case_id)) == {alice.pk, bob.pk, charlie.pk, dave.pk}
    services.vote_cast(case_id=case_id, member=alice, choice="reject", rationale="Not convinced at all by this.")
    services.vote_cast(case_id=case_id, member=bob, choice="reject", rationale="Agree with alice on this one.")
    assert Case.objects.get(pk=case_id).status == CaseStatus.OPEN  # 2 of 4 eligible: half, not more
    assert ExecutionTask.objects.get(pk=task_id).status == TaskStatus.HELD
    services.vote_cast(case_id=case_id, member=dave, choice="reject", rationale="Same concern about the rollback.")
    assert Case.objects.get(pk=case_id).status == CaseStatus.REJECTED  # 3 of 4
    assert ExecutionTask.objects.get(pk=task_id).status == TaskStatus.DENIED


def test_an_approval_by_a_member_removed_from_the_committee_no_longer_counts(agent, post_report, alice, bob, charlie):
    from django.contrib.auth.models import Group

    from core.roles import COMMITTEE

    case_id, task_id = held(agent, post_report)  # quorum 2
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    alice.groups.remove(Group.objects.get(name=COMMITTEE))
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale="Risks are mitigated well enough.")
    assert Case.objects.get(pk=case_id).status == CaseStatus.OPEN  # bob's is the only approval that counts
    assert ExecutionTask.objects.get(pk=task_id).status == TaskStatus.HELD
    services.vote_cast(case_id=case_id, member=charlie, choice="approve", rationale="Read it twice, it holds up.")
    case = Case.objects.get(pk=case_id)
    assert case.status == CaseStatus.APPROVED
    assert "alice" not in case.rationale and "bob: Risks" in case.rationale and "charlie: Read" in case.rationale
    assert ExecutionTask.objects.get(pk=task_id).status == TaskStatus.REGISTERED


@pytest.mark.parametrize("rationale", ["", "   ", "ok", "Looks fine", "lgtm lgtm"])
def test_empty_or_one_word_rationales_are_refused(agent, post_report, alice, rationale):
    case_id, _ = held(agent, post_report)
    with pytest.raises(services.NotAllowed, match="rationale of at least"):
        services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=rationale)
    assert not Vote.objects.exists()


def test_nobody_votes_on_what_they_submitted(client, agent, post_report, alice, bob, make_api_key, operator):
    from django.contrib.auth.models import Group

    from core.roles import COMMITTEE

    operator.groups.add(Group.objects.get(name=COMMITTEE))  # an operator who also sits on the committee
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(operator)
    client.post("/reviews/upload/", {"files": [SimpleUploadedFile("u.md", report_md("u1", severity=30).encode())]})
    case_id = Case.objects.get(reports__report_id="u1").pk
    with pytest.raises(services.NotAllowed, match="you submitted"):
        services.vote_cast(case_id=case_id, member=operator, choice="approve", rationale=WHY)

    _, secret = make_api_key(owner=bob)
    sent = client.post(
        "/api/v1/proposals",
        data=report_md("k1", severity=30),
        content_type="text/markdown",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    with pytest.raises(services.NotAllowed, match="you submitted"):
        services.vote_cast(case_id=sent.json()["gate"]["case"], member=bob, choice="approve", rationale=WHY)


def test_one_vote_per_member_per_version_and_none_while_recused(agent, post_report, alice, bob, charlie):
    case_id, _ = held(agent, post_report)
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    with pytest.raises(services.NotAllowed, match="already voted"):
        services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.recuse(case_id=case_id, member=charlie, reason="I advised the team that wrote this.")
    with pytest.raises(services.NotAllowed, match="recused"):
        services.vote_cast(case_id=case_id, member=charlie, choice="approve", rationale=WHY)


def test_a_case_opened_for_a_committee_too_small_for_its_quorum_is_flagged_at_once(
    post_report, alice, bob, operator, mailoutbox, django_capture_on_commit_callbacks
):
    operator.email = "olivia@example.com"
    operator.save()
    with django_capture_on_commit_callbacks(execute=True):
        big = post_report(report_md("r-big", severity=55)).json()["gate"]["case"]  # quorum 3
        small = post_report(report_md("r-small", severity=35)).json()["gate"]["case"]  # quorum 2
    assert Case.objects.get(pk=big).short_of_members
    assert not Case.objects.get(pk=small).short_of_members
    assert [m.to for m in mailoutbox if "cannot reach its quorum" in m.subject] == [["olivia@example.com"]]


def test_committee_changes_reflag_the_cases_that_can_or_cannot_reach_their_quorum(
    agent, post_report, alice, bob, charlie, django_capture_on_commit_callbacks
):
    from django.contrib.auth.models import Group

    from core.roles import COMMITTEE

    case_id, _ = held(agent, post_report)  # quorum 2; alice, bob and charlie are the committee
    committee = Group.objects.get(name=COMMITTEE)
    with django_capture_on_commit_callbacks(execute=True):
        bob.groups.remove(committee)
    assert not Case.objects.get(pk=case_id).short_of_members  # alice and charlie remain
    with django_capture_on_commit_callbacks(execute=True):
        charlie.is_active = False
        charlie.save()
    assert Case.objects.get(pk=case_id).short_of_members  # only alice can vote
    with django_capture_on_commit_callbacks(execute=True):
        committee.user_set.add(bob)
    case = Case.objects.get(pk=case_id)
    assert not case.short_of_members
    reasons = [h.history_change_reason for h in case.history.order_by("history_id")]
    assert reasons[-2:] == [
        "fewer eligible members than the quorum: operators alerted",
        "enough eligible members again",
    ]


def test_a_committee_members_login_does_not_recheck_the_queue(alice, client):
    from unittest import mock

    with mock.patch("reviews.receivers._recheck_on_commit") as recheck:
        client.force_login(alice)  # saves last_login only
        recheck.assert_not_called()
        alice.first_name = "Alice"
        alice.save()  # any other save of a member might be a (de)activation
        recheck.assert_called_once_with()


def test_recusals_that_leave_too_few_members_alert_operators(agent, post_report, alice, bob, client, operator):
    case_id, _ = held(agent, post_report)  # quorum 2; alice and bob are the committee
    services.recuse(case_id=case_id, member=alice, reason="Conflict of interest with the author.")
    case = Case.objects.get(pk=case_id)
    assert case.short_of_members
    client.force_login(operator)
    assert 'data-testid="short-of-members"' in client.get("/").content.decode()


def test_request_changes_waits_for_a_revision_which_voids_earlier_votes(agent, post_report, alice, bob, charlie):
    case_id, task_id = held(agent, post_report)
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(
        case_id=case_id, member=bob, choice="request_changes", rationale="Add a rollback section please."
    )
    assert Case.objects.get(pk=case_id).status == CaseStatus.CHANGES_REQUESTED
    assert agent.get(f"/api/v1/tasks/{task_id}").json()["gate"]["case_status"] == "changes_requested"
    with pytest.raises(services.NotAllowed, match="votes resume on the revision"):
        services.vote_cast(case_id=case_id, member=charlie, choice="approve", rationale=WHY)

    post_report(report_md("r2", severity=30, supersedes="r1", proposal="implement_idea: now with rollback"))
    case = Case.objects.get(pk=case_id)
    assert (case.status, case.version) == (CaseStatus.OPEN, 2)
    assert "earlier votes void" in case.history.first().history_change_reason
    services.vote_cast(case_id=case_id, member=charlie, choice="approve", rationale=WHY)
    assert Case.objects.get(pk=case_id).status == CaseStatus.OPEN  # alice's v1 approval no longer counts
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale="The rollback plan is good now.")
    assert Case.objects.get(pk=case_id).status == CaseStatus.APPROVED
    assert ExecutionTask.objects.get(pk=task_id).status == TaskStatus.REGISTERED


def test_revoking_an_approval_holds_again_and_stops_running_tasks(
    agent, post_report, alice, bob, api_key, operator, django_capture_on_commit_callbacks
):
    import responses

    key, _ = api_key
    services.callback_endpoint_set(api_key_id=key.pk, url="https://agent.example/cb", secret="x", by=operator)
    case_id, task_id = held(agent, post_report)
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)
    assert agent.post(f"/api/v1/tasks/{task_id}/start").status_code == 200
    with responses.RequestsMock() as mock:
        mock.post("https://agent.example/cb", status=200)
        with django_capture_on_commit_callbacks(execute=True):
            services.case_revoke(case_id=case_id, by=alice, rationale="New evidence of silent defects.")
        stops = [c for c in mock.calls if b'"type":"stop"' in c.request.body]
    assert len(stops) == 1
    case = Case.objects.get(pk=case_id)
    assert (case.status, case.version) == (CaseStatus.OPEN, 2)
    later = agent.post(
        "/api/v1/tasks",
        data={"external_id": "t2", "task_type": "implement_idea", "proposal_id": "r1"},
        content_type="application/json",
    ).json()
    assert later["status"] == "held"


def test_approvals_expire_after_90_days_into_continuing_review(agent, post_report, alice, bob):
    case_id, _ = held(agent, post_report)
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)
    case = Case.objects.get(pk=case_id)
    assert (case.approved_until - case.decided_at).days == 90
    with time_machine.travel(case.approved_until, tick=False):
        assert services.cases_expire() == 1
        later = agent.post(
            "/api/v1/tasks",
            data={"external_id": "t2", "task_type": "implement_idea", "proposal_id": "r1"},
            content_type="application/json",
        ).json()
    assert later["status"] == "held"
    case = Case.objects.get(pk=case_id)
    assert case.status == CaseStatus.OPEN and case.version == 2


def test_a_claim_names_who_is_working_expires_and_does_not_stop_others_voting(agent, post_report, alice, bob):
    case_id, _ = held(agent, post_report)
    services.case_claim(case_id=case_id, member=alice)
    with pytest.raises(services.NotAllowed, match="alice is working on this case"):
        services.case_claim(case_id=case_id, member=bob)
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=61)):
        assert services.case_claim(case_id=case_id, member=bob).claimed_by == bob


def held_tasks_case(client, secret, *, quorum=1, external_id="t1"):
    """A rule holds tasks on experimental models; `secret`'s key registers one. Returns the case id."""
    if not PolicyRule.objects.filter(name="experimental-models").exists():
        PolicyRule.objects.create(
            name="experimental-models", priority=1, ai_model_glob="exp-*", action="hold", quorum=quorum
        )
        services.rules_changed()
    task = client.post(
        "/api/v1/tasks",
        data={"external_id": external_id, "task_type": "implement_idea", "ai_model": "exp-1"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    ).json()
    return int(task["gate"]["case"])


def test_owners_of_keys_that_registered_a_cases_tasks_cannot_vote_and_are_told_why(client, make_api_key, alice, bob):
    key, secret = make_api_key(owner=alice)
    case_id = held_tasks_case(client, secret)
    case = Case.objects.get(pk=case_id)
    assert services.submitters(case) == {alice.pk: f"your API key {key.name!r} registered tasks this case decides on"}
    assert services.why_cannot_vote(case, alice) == (
        f"you submitted what this case is about (your API key {key.name!r} registered tasks this case decides on)"
    )
    with pytest.raises(services.NotAllowed, match="You cannot vote: you submitted"):
        services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    assert services.eligible_member_ids(case) == {bob.pk}
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)
    assert Case.objects.get(pk=case_id).status == CaseStatus.APPROVED


def test_every_owner_of_the_key_then_or_since_is_a_submitter(client, make_api_key, alice, bob, charlie):
    key, secret = make_api_key(owner=alice)
    case_id = held_tasks_case(client, secret)
    key.owner = bob
    key.save()  # handed over after it acted
    key.owner = charlie
    key.save()
    assert set(services.submitters(Case.objects.get(pk=case_id))) == {alice.pk, bob.pk, charlie.pk}


def test_a_members_approval_stops_counting_once_their_key_registers_a_task_on_the_case(
    client, make_api_key, alice, bob, charlie
):
    _, agents = make_api_key()
    _, alices = make_api_key(owner=alice)
    case_id = held_tasks_case(client, agents, quorum=2)
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY, version=1)
    held_tasks_case(client, alices, external_id="t2")  # joins the same case: alice is now a submitter
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY, version=1)
    assert Case.objects.get(pk=case_id).status == CaseStatus.OPEN  # alice's approval no longer counts
    services.vote_cast(case_id=case_id, member=charlie, choice="approve", rationale=WHY, version=1)
    assert Case.objects.get(pk=case_id).status == CaseStatus.APPROVED


def test_a_committee_of_key_owners_is_flagged_short_of_members(
    client, make_api_key, alice, bob, django_capture_on_commit_callbacks
):
    _, alices = make_api_key(owner=alice)
    with django_capture_on_commit_callbacks(execute=True):
        case_id = held_tasks_case(client, alices, quorum=2)  # bob alone cannot make a quorum of 2
    assert Case.objects.get(pk=case_id).short_of_members
    Case.objects.filter(pk=case_id).update(short_of_members=False)
    assert services.recheck_short_of_members() == 1  # the whole-queue check sees it too
    assert Case.objects.get(pk=case_id).short_of_members


def test_a_vote_for_an_older_version_is_refused_naming_what_changed(agent, post_report, alice, bob):
    case_id, _ = held(agent, post_report)
    services.vote_cast(case_id=case_id, member=bob, choice="request_changes", rationale="Say what it caches please.")
    post_report(report_md("r2", severity=30, supersedes="r1", proposal="implement_idea: cache the sessions"))
    with pytest.raises(services.NotAllowed) as refused:
        services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY, version=1)
    assert "the case changed since you opened it" in refused.value.message
    assert "you saw version 1, it is now version 2: revision r2 submitted; earlier votes void" in refused.value.message
    assert refused.value.extra == {"field": "version", "version": 2}
    assert not Vote.objects.filter(member=alice).exists()
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY, version=2)
    assert Vote.objects.get(member=alice).case_version == 2
