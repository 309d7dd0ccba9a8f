"""When a member first opens a case version (CaseView): written by the case page
for members who may vote on it, once per version, never moved by later views."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from fsar.testing import report_md
from reviews import services
from reviews.models import Case, CaseView
from reviews.tests.support import WHY, held_report

pytestmark = pytest.mark.django_db


def open_page(client, user, case_id: int):
    client.force_login(user)
    response = client.get(f"/reviews/cases/{case_id}/")
    assert response.status_code == 200
    return response


def test_a_members_first_view_is_recorded_and_later_views_do_not_move_it(client, post_report, alice):
    case_id = held_report(post_report)
    first = timezone.now()
    with time_machine.travel(first, tick=False):
        open_page(client, alice, case_id)
    with time_machine.travel(first + timedelta(minutes=20), tick=False):
        open_page(client, alice, case_id)
    view = CaseView.objects.get()
    assert (view.case_id, view.case_version, view.member, view.first_viewed_at) == (case_id, 1, alice, first)


def test_only_members_who_may_vote_are_recorded(client, post_report, alice, bob, operator):
    case_id = held_report(post_report)
    open_page(client, operator, case_id)  # not a member: reads, never votes
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)
    open_page(client, bob, case_id)  # already voted on this version
    assert not CaseView.objects.exists()
    open_page(client, alice, case_id)
    assert list(CaseView.objects.values_list("member__username", flat=True)) == ["alice"]


def test_a_revision_gets_a_view_of_its_own(client, post_report, alice):
    case_id = held_report(post_report)
    open_page(client, alice, case_id)
    assert post_report(report_md("r2", severity=35, supersedes="r1")).status_code == 201
    assert Case.objects.get(pk=case_id).version == 2
    open_page(client, alice, case_id)
    assert sorted(CaseView.objects.values_list("case_version", flat=True)) == [1, 2]


def test_recording_a_view_is_one_insert_even_when_it_exists(post_report, alice, django_assert_num_queries):
    case = Case.objects.get(pk=held_report(post_report))
    with django_assert_num_queries(1):
        services.case_view_record(case=case, member=alice)
    with django_assert_num_queries(1):
        services.case_view_record(case=case, member=alice, now=timezone.now() + timedelta(hours=1))
    assert CaseView.objects.count() == 1
