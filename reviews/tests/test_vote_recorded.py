"""reviews.signals.vote_recorded: sent inside the vote's transaction, after the vote
row is written, for every vote (the case page's form and the service alike), with
whether the case is a honeypot's; a receiver that fails fails the vote."""

import pytest
from django.db import transaction

from reviews import services
from reviews.models import Case, CaseStatus, Vote
from reviews.signals import vote_recorded
from reviews.tests.support import WHY, held_report

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard():
    calls = []

    def receiver(sender, vote, case, honeypot, **kwargs):
        calls.append(
            {
                "sender": sender,
                "vote": vote,
                "case": case,
                "honeypot": honeypot,
                "stored": Vote.objects.filter(pk=vote.pk).exists(),
                "in_transaction": transaction.get_connection().in_atomic_block,
                "case_status": Case.objects.get(pk=case.pk).status,
            }
        )

    vote_recorded.connect(receiver, dispatch_uid="test-vote-recorded")
    yield calls
    vote_recorded.disconnect(dispatch_uid="test-vote-recorded")


def test_a_vote_through_the_case_page_is_heard_inside_its_transaction(client, post_report, alice, heard):
    case_id = held_report(post_report)
    client.force_login(alice)
    client.get(f"/reviews/cases/{case_id}/")
    response = client.post(f"/reviews/cases/{case_id}/vote/", {"choice": "approve", "rationale": WHY, "version": 1})
    assert response.status_code == 302
    [call] = heard
    assert call["sender"] is Vote and call["vote"].member == alice and call["case"].pk == case_id
    assert call["stored"] and call["in_transaction"] and call["honeypot"] is False
    assert call["case_status"] == CaseStatus.OPEN  # heard before the tally decides


def test_the_vote_that_decides_is_heard_before_the_decision(post_report, alice, bob, heard):
    case_id = held_report(post_report)
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)
    assert [c["vote"].member for c in heard] == [alice, bob]
    assert [c["case_status"] for c in heard] == [CaseStatus.OPEN, CaseStatus.OPEN]
    assert Case.objects.get(pk=case_id).status == CaseStatus.APPROVED


def test_a_receiver_that_fails_fails_the_vote(post_report, alice):
    case_id = held_report(post_report)

    def broken(**kwargs):
        raise RuntimeError("the alert could not be written")

    vote_recorded.connect(broken, dispatch_uid="test-broken")
    try:
        with pytest.raises(RuntimeError):
            services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    finally:
        vote_recorded.disconnect(dispatch_uid="test-broken")
    assert not Vote.objects.exists()
