"""A case keeps the SLA it opened with (its rule's `sla_hours`): reopening it by a
revision, escalating an advisory case and revoking an approval make it due that
long from then, never a fixed 72 hours (issue 14, item 4)."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from reviews import notifications, services, subjects
from reviews.models import Case, CaseStatus, PolicyRule
from reviews.tests.conftest import report_md

pytestmark = pytest.mark.django_db
WHY = "I read the report and the rollback plan."


def sla(rule_name: str, hours: int) -> None:
    PolicyRule.objects.filter(name=rule_name).update(sla_hours=hours)
    services.rules_changed(why="test: a shorter SLA")


def test_a_held_case_keeps_its_rules_sla_when_a_revision_reopens_it(post_report, alice, bob):
    sla("severity-30-hold", 10)
    case_id = post_report(report_md("r1", severity=30)).json()["gate"]["case"]
    case = Case.objects.get(pk=case_id)
    assert case.sla_hours == 10 and case.due_at - case.opened_at == timedelta(hours=10)
    services.vote_cast(case_id=case_id, member=alice, choice="reject", rationale=WHY)
    assert Case.objects.get(pk=case_id).status == CaseStatus.REJECTED

    later = timezone.now() + timedelta(days=3)
    with time_machine.travel(later, tick=False):
        post_report(report_md("r2", severity=30, supersedes="r1", proposal="implement_idea: now with rollback"))
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN
    assert case.due_at == later + timedelta(hours=10)


def test_an_escalated_advisory_case_is_due_after_its_rules_sla(post_report, operator):
    sla("default-allow", 5)
    case_id = post_report(report_md("r1", severity=12)).json()["gate"]["case"]
    assert Case.objects.get(pk=case_id).status == CaseStatus.ADVISORY
    later = timezone.now() + timedelta(hours=30)
    with time_machine.travel(later, tick=False):
        case = services.case_escalate(case_id=case_id, by=operator, reason="The operator wants a decision.")
    assert (case.status, case.sla_hours, case.due_at) == (CaseStatus.OPEN, 5, later + timedelta(hours=5))


def test_a_revoked_approval_is_due_after_the_cases_sla(post_report, alice, bob):
    sla("severity-30-hold", 7)
    case_id = post_report(report_md("r1", severity=30)).json()["gate"]["case"]
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)
    sla("severity-30-hold", 100)  # the rule changed since: the case keeps what it opened with
    later = timezone.now() + timedelta(days=2)
    with time_machine.travel(later, tick=False):
        case = services.case_revoke(case_id=case_id, by=alice, rationale="New evidence of silent defects.")
    assert (case.status, case.sla_hours, case.due_at) == (CaseStatus.OPEN, 7, later + timedelta(hours=7))


@pytest.fixture
def widget_kind():
    subjects.register_kind("widget", label="Widget", submitters=lambda case: set())
    yield
    subjects.unregister_kind("widget")


def test_a_subject_case_reopens_with_its_own_sla_unless_told_otherwise(widget_kind):
    case = services.subject_case_open(kind="widget", subject_ref="w-1", title="W", reason="new", quorum=1, sla_hours=9)
    assert case.sla_hours == 9
    services.case_decide(case_id=case.pk, by=None, decision="rejected", rationale=WHY)
    case.refresh_from_db()
    assert case.status == CaseStatus.REJECTED
    later = timezone.now() + timedelta(days=1)
    with time_machine.travel(later, tick=False):
        case = services.subject_case_reopen(case_id=case.pk, reason="a new evaluation came in")
    assert case.due_at == later + timedelta(hours=9)


def test_the_sla_reminder_of_a_reopened_case_counts_its_own_sla(post_report, alice, bob, charlie, settings):
    settings.REVIEWS_SLA_REMINDER_FRACTION = 0.8
    for user in (alice, bob, charlie):
        user.email = f"{user.username}@example.com"
        user.save()
    sla("severity-30-hold", 10)
    case_id = post_report(report_md("r1", severity=30)).json()["gate"]["case"]
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)
    revoked_at = timezone.now() + timedelta(days=5)
    with time_machine.travel(revoked_at, tick=False):
        services.case_revoke(case_id=case_id, by=alice, rationale="New evidence of silent defects.")
    # 7 of its 10 hours: not yet; 8.5: the "near" reminder.
    assert notifications.sla_reminders(now=revoked_at + timedelta(hours=7)) == 0
    assert notifications.sla_reminders(now=revoked_at + timedelta(hours=8.5)) == 1
