"""Email notifications: sent by jobs after commit, each once; the non-essential
ones can be turned off, the essential ones always go."""

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.utils import timezone

from fsar.testing import report_md
from reviews import notifications, services
from reviews.models import Case, NotificationSent

pytestmark = pytest.mark.django_db
WHY = "I read the report and the rollback plan."


@pytest.fixture
def with_emails(alice, bob, charlie, operator):
    for user in (alice, bob, charlie, operator):
        user.email = f"{user.username}@example.com"
        user.save()


def open_case(post_report, django_capture_on_commit_callbacks, report_id="r1", severity=30) -> int:
    with django_capture_on_commit_callbacks(execute=True):
        return post_report(report_md(report_id, severity=severity)).json()["gate"]["case"]


def to(mailoutbox, subject_part: str) -> list[str]:
    return sorted(addr for m in mailoutbox if subject_part in m.subject for addr in m.to)


def test_the_committee_hears_when_a_case_opens(
    post_report, with_emails, mailoutbox, django_capture_on_commit_callbacks
):
    case_id = open_case(post_report, django_capture_on_commit_callbacks)
    assert to(mailoutbox, f"Case {case_id} opened") == ["alice@example.com", "bob@example.com", "charlie@example.com"]
    message = mailoutbox[0]
    assert f"/reviews/cases/{case_id}/" in message.body and len(message.to) == 1  # nobody sees the others' addresses
    notifications.notify_case_opened(case_id)  # the job again: nothing new
    assert len(mailoutbox) == 3


def test_a_member_can_turn_off_case_opened_mails_on_the_settings_page(
    client, alice, post_report, with_emails, mailoutbox, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    page = client.get("/reviews/notifications/")
    assert b'name="case_opened"' in page.content and b"checked" in page.content
    assert client.post("/reviews/notifications/", {"sla_reminders": "on"}).status_code == 302
    open_case(post_report, django_capture_on_commit_callbacks)
    assert to(mailoutbox, "opened") == ["bob@example.com", "charlie@example.com"]


def test_sla_near_and_past_reminders_go_once_each(
    post_report, with_emails, bob, mailoutbox, django_capture_on_commit_callbacks
):
    case_id = open_case(post_report, django_capture_on_commit_callbacks)
    services.notification_preference_set(user=bob, case_opened=True, sla_reminders=False)
    mailoutbox.clear()
    case = Case.objects.get(pk=case_id)
    window = case.due_at - case.opened_at
    assert notifications.sla_reminders(now=case.opened_at + window * 0.7) == 0
    assert notifications.sla_reminders(now=case.opened_at + window * 0.85) == 1
    assert notifications.sla_reminders(now=case.opened_at + window * 0.9) == 0  # sent once
    assert to(mailoutbox, "is due") == ["alice@example.com", "charlie@example.com"]
    with time_machine.travel(case.due_at + timezone.timedelta(minutes=5), tick=False):
        assert notifications.sla_reminders() == 1
        assert notifications.sla_reminders() == 0
    assert to(mailoutbox, "is overdue") == ["alice@example.com", "charlie@example.com"]
    assert set(NotificationSent.objects.filter(case_id=case_id).values_list("kind", flat=True)) == {
        "case_opened",
        "sla_near",
        "sla_past",
    }


def test_the_submitter_hears_of_a_decision_even_with_every_option_off(
    agent, agent_user, post_report, alice, bob, with_emails, mailoutbox, django_capture_on_commit_callbacks
):
    agent_user.email = "agent-owner@example.com"
    agent_user.save()
    services.notification_preference_set(user=agent_user, case_opened=False, sla_reminders=False)
    case_id = open_case(post_report, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.vote_cast(case_id=case_id, member=alice, choice="request_changes", rationale="Add a rollback plan.")
    (changes,) = [m for m in mailoutbox if "needs changes" in m.subject]
    assert changes.to == ["agent-owner@example.com"] and "Add a rollback plan." in changes.body
    with django_capture_on_commit_callbacks(execute=True):
        post_report(report_md("r2", severity=30, supersedes="r1", proposal="implement_idea: with rollback"))
    with django_capture_on_commit_callbacks(execute=True):
        services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
        services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)
    assert to(mailoutbox, "was approved") == ["agent-owner@example.com"]


def test_the_proposer_of_a_policy_change_hears_of_its_decision(
    operator, alice, with_emails, mailoutbox, django_capture_on_commit_callbacks
):
    from reviews.models import PolicyRule

    rule = PolicyRule.objects.get(name="severity-30-hold")
    with django_capture_on_commit_callbacks(execute=True):
        change = services.policy_change_propose(
            by=operator, operation="change", rule_id=rule.pk, values={"severity_min": 20}, reason="Hold more reports."
        )
    assert "alice@example.com" in to(mailoutbox, f"Case {change.case_id} opened")
    with django_capture_on_commit_callbacks(execute=True):
        services.vote_cast(case_id=change.case_id, member=alice, choice="reject", rationale="Too much for us now.")
    assert to(mailoutbox, "was rejected") == ["olivia@example.com"]


def test_operators_hear_when_recusals_make_the_quorum_impossible(
    agent, post_report, alice, bob, operator, mailoutbox, django_capture_on_commit_callbacks
):
    for user in (alice, bob, operator):
        user.email = f"{user.username}@example.com"
        user.save()
    case_id = open_case(post_report, django_capture_on_commit_callbacks)  # quorum 2; alice and bob are the committee
    with django_capture_on_commit_callbacks(execute=True):
        services.recuse(case_id=case_id, member=alice, reason="Conflict of interest with the author.")
    (alert,) = [m for m in mailoutbox if "cannot reach its quorum" in m.subject]
    assert alert.to == ["olivia@example.com"] and "only 1 committee member" in alert.body
    notifications.notify_quorum_impossible(case_id)
    assert len([m for m in mailoutbox if "cannot reach its quorum" in m.subject]) == 1


def test_nothing_is_mailed_when_the_change_rolls_back(
    post_report, alice, with_emails, mailoutbox, django_capture_on_commit_callbacks
):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            post_report(report_md("r1", severity=30))
            raise RuntimeError("rolled back")
    assert callbacks == [] and mailoutbox == []


def test_the_case_opened_job_works_the_submitters_out_once_for_its_check_and_both_notices(
    post_report, alice, agent_user, operator, mailoutbox, django_capture_on_commit_callbacks, monkeypatch
):
    """reviews.jobs.case_opened: the quorum check, the committee's notice and the
    operators' all leave out the report's submitter (the key's owner, a committee
    member here), from one resolution of the case's submitters."""
    from core.roles import COMMITTEE
    from reviews import jobs, selectors

    agent_user.groups.add(Group.objects.get(name=COMMITTEE))
    for user in (alice, agent_user, operator):
        user.email = f"{user.username}@example.com"
        user.save()
    with django_capture_on_commit_callbacks(execute=False):  # the job is run below, by hand
        case_id = post_report(report_md("r1", severity=30)).json()["gate"]["case"]  # quorum 2
    resolved = []
    real = selectors.submitters_of
    monkeypatch.setattr(selectors, "submitters_of", lambda ids, **kw: resolved.append(list(ids)) or real(ids, **kw))
    with django_capture_on_commit_callbacks(execute=True) as enqueued:
        jobs.case_opened(case_id)
    assert enqueued == []  # the operators' notice is sent by the job, not enqueued
    assert resolved == [[case_id]]
    assert to(mailoutbox, f"Case {case_id} opened") == ["alice@example.com"]  # not the agent: it sent the report
    (alert,) = [m for m in mailoutbox if "cannot reach its quorum" in m.subject]
    assert alert.to == ["olivia@example.com"] and "only 1 committee member" in alert.body
    assert Case.objects.get(pk=case_id).short_of_members
    jobs.case_opened(case_id)  # run twice: nothing new
    assert len(mailoutbox) == 2


def test_the_case_opened_job_still_notifies_when_the_case_left_the_queue(
    post_report, alice, with_emails, mailoutbox, django_capture_on_commit_callbacks
):
    """A case decided before its job ran is not checked, and not announced (it is not open)."""
    from reviews import jobs

    with django_capture_on_commit_callbacks(execute=False):
        case_id = post_report(report_md("r1", severity=30)).json()["gate"]["case"]
    Case.objects.filter(pk=case_id).update(status="rejected")
    jobs.case_opened(case_id)
    assert mailoutbox == []
    Case.objects.filter(pk=case_id).update(status="open")
    jobs.case_opened(case_id)
    assert len(to(mailoutbox, f"Case {case_id} opened")) == 3
