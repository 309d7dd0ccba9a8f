"""Every decision-bearing reviews event is on the audit chain, with its data,
appended in the transaction of the change."""

import pytest
import time_machine

from audit.chain import verify_chain
from audit.models import AuditEntry
from fsar.testing import report_md
from reviews import services
from reviews.models import Case

pytestmark = pytest.mark.django_db
WHY = "I read the report and the rollback plan."


def entries(kind: str, case_id=None) -> list[AuditEntry]:
    qs = AuditEntry.objects.filter(kind=kind)
    if case_id is not None:
        qs = qs.filter(subject=f"case:{case_id}")
    return list(qs.order_by("seq"))


def held_case(post_report, report_id="r1", severity=30) -> int:
    return post_report(report_md(report_id, severity=severity)).json()["gate"]["case"]


def test_votes_and_the_decision_they_make_are_on_the_chain(agent, post_report, alice, bob):
    case_id = held_case(post_report)
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale="Risks are mitigated enough.")
    votes = entries("vote.cast", case_id)
    assert [(e.actor, e.data["choice"], e.data["version"]) for e in votes] == [
        ("alice", "approve", 1),
        ("bob", "approve", 1),
    ]
    assert votes[0].data["rationale"] == WHY
    (decided,) = entries("case.approved", case_id)
    assert decided.actor == "bob" and "alice: I read the report" in decided.data["rationale"]
    assert decided.data["approved_until"]
    assert decided.seq > votes[1].seq
    assert verify_chain().ok


def test_rejections_and_change_requests_are_decisions_on_the_chain(agent, post_report, alice, bob):
    rejected = held_case(post_report, "r1")
    services.vote_cast(case_id=rejected, member=alice, choice="reject", rationale="The audit plan has no teeth.")
    changes = held_case(post_report, "r2")
    services.vote_cast(case_id=changes, member=bob, choice="request_changes", rationale="Add a rollback plan please.")
    assert entries("case.rejected", rejected)[0].data["rationale"] == "alice: The audit plan has no teeth."
    assert entries("case.changes_requested", changes)[0].actor == "bob"
    assert verify_chain().ok


def test_a_revision_voids_earlier_votes_on_the_chain(agent, post_report, alice, bob):
    case_id = held_case(post_report)
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=case_id, member=bob, choice="request_changes", rationale="Add a rollback section.")
    post_report(report_md("r2", severity=30, supersedes="r1", proposal="implement_idea: now with rollback"))
    (voided,) = entries("vote.voided", case_id)
    assert voided.data["version"] == 1 and voided.data["new_version"] == 2
    assert sorted((v["member"], v["choice"]) for v in voided.data["votes"]) == [
        ("alice", "approve"),
        ("bob", "request_changes"),
    ]
    assert "revision r2" in voided.data["why"]
    assert voided.actor.startswith("api-key:")  # the key that sent the revision
    assert verify_chain().ok


def test_recusal_revocation_and_expiry_are_on_the_chain(agent, post_report, alice, bob, charlie):
    case_id = held_case(post_report)
    services.recuse(case_id=case_id, member=charlie, reason="I advised the team that wrote this.")
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)
    services.case_revoke(case_id=case_id, by=alice, rationale="New evidence of silent defects.")
    (recusal,) = entries("case.recused", case_id)
    assert (recusal.actor, recusal.data["reason"]) == ("charlie", "I advised the team that wrote this.")
    (revoked,) = entries("case.revoked", case_id)
    assert revoked.data == {"version": 2, "rationale": "New evidence of silent defects."}
    (voided,) = entries("vote.voided", case_id)
    assert voided.seq > revoked.seq and len(voided.data["votes"]) == 2

    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)
    with time_machine.travel(Case.objects.get(pk=case_id).approved_until, tick=False):
        services.cases_expire()
    (expired,) = entries("case.expired", case_id)
    assert expired.actor == "system" and expired.data["version"] == 3
    assert verify_chain().ok


def test_escalation_pause_and_resume_are_on_the_chain(agent, post_report, alice, operator):
    advisory = held_case(post_report, "a1", severity=12)
    assert Case.objects.get(pk=advisory).status == "advisory"
    services.case_escalate(case_id=advisory, by=alice, reason="This touches the billing path.")
    assert entries("case.escalated", advisory)[0].data == {"reason": "This touches the billing path."}
    services.gate_pause(by=operator, reason="Incident 42")
    services.gate_resume(by=operator, reason="Incident 42 resolved")
    paused, resumed = entries("gate.paused")[0], entries("gate.resumed")[0]
    assert (paused.actor, paused.subject, paused.data) == ("olivia", "gate", {"reason": "Incident 42"})
    assert resumed.data == {"reason": "Incident 42 resolved"}
    assert verify_chain().ok


def test_a_refused_vote_leaves_nothing_on_the_chain(agent, post_report, alice):
    case_id = held_case(post_report)
    before = AuditEntry.objects.count()
    with pytest.raises(services.NotAllowed):
        services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale="ok")
    assert AuditEntry.objects.count() == before
