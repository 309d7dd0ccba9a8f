"""Policy changes are decisions: proposed, approved by the committee (nobody
approving their own), applied only then; emergency changes by a superuser apply
at once and open a retrospective case. All of it on the audit chain."""

import pytest

from audit.chain import verify_chain
from audit.models import AuditEntry
from fsar.testing import report_md
from reviews import services
from reviews.models import Case, CaseStatus, PolicyChange, PolicyRule

pytestmark = pytest.mark.django_db
WHY = "The change is narrow and the reason is sound."
REASON = "Severity 20 reports deserve a second look too."


def gate_for(post_report, report_id: str, severity: int) -> str:
    return post_report(report_md(report_id, severity=severity)).json()["gate"]["decision"]


def lower_threshold(by) -> PolicyChange:
    rule = PolicyRule.objects.get(name="severity-30-hold")
    return services.policy_change_propose(
        by=by, operation="change", rule_id=rule.pk, values={"severity_min": 20}, reason=REASON
    )


def test_a_change_applies_only_once_the_committee_approves_it(agent, post_report, operator, alice, bob):
    assert gate_for(post_report, "before", 25) == "allow"
    change = lower_threshold(operator)
    assert change.status == PolicyChange.Status.PENDING
    assert change.diff == {"severity_min": [30, 20]}
    case = Case.objects.get(pk=change.case_id)
    assert (case.kind, case.status, case.quorum) == (Case.Kind.POLICY, CaseStatus.OPEN, 2)

    assert gate_for(post_report, "pending", 25) == "allow"  # the old rule still applies
    assert PolicyRule.objects.get(name="severity-30-hold").severity_min == 30

    services.vote_cast(case_id=case.pk, member=alice, choice="approve", rationale=WHY)
    assert gate_for(post_report, "one-approval", 25) == "allow"
    services.vote_cast(case_id=case.pk, member=bob, choice="approve", rationale=WHY)

    change.refresh_from_db()
    assert change.status == PolicyChange.Status.APPLIED and change.applied_at
    assert PolicyRule.objects.get(name="severity-30-hold").severity_min == 20
    assert gate_for(post_report, "after", 25) == "hold"  # the gate's cached rules were reloaded
    case.refresh_from_db()
    assert case.status == CaseStatus.APPROVED and case.approved_until is None  # an applied change does not lapse
    kinds = list(AuditEntry.objects.filter(subject=f"policy_change:{change.pk}").values_list("kind", flat=True))
    assert kinds == ["policy.proposed", "policy.applied"]
    applied = AuditEntry.objects.get(kind="policy.applied")
    assert applied.actor == "bob" and applied.data["values"]["severity_min"] == 20
    assert verify_chain().ok


def test_nobody_approves_their_own_change(operator, alice, bob):
    from django.contrib.auth.models import Group

    from core.roles import COMMITTEE

    alice_proposes = lower_threshold(alice)
    assert Case.objects.get(pk=alice_proposes.case_id).short_of_members  # only bob may vote; quorum 2
    with pytest.raises(services.NotAllowed, match="you submitted"):
        services.vote_cast(case_id=alice_proposes.case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=alice_proposes.case_id, member=bob, choice="approve", rationale=WHY)
    assert PolicyChange.objects.get(pk=alice_proposes.pk).status == PolicyChange.Status.PENDING  # 1 of 2
    operator.groups.add(Group.objects.get(name=COMMITTEE))
    services.vote_cast(case_id=alice_proposes.case_id, member=operator, choice="approve", rationale=WHY)
    assert PolicyChange.objects.get(pk=alice_proposes.pk).status == PolicyChange.Status.APPLIED


def test_a_rejected_change_never_applies(post_report, operator, alice):
    change = lower_threshold(operator)
    services.vote_cast(case_id=change.case_id, member=alice, choice="reject", rationale="Too many cases for us.")
    change.refresh_from_db()
    assert change.status == PolicyChange.Status.REJECTED
    assert PolicyRule.objects.get(name="severity-30-hold").severity_min == 30
    assert AuditEntry.objects.filter(kind="policy.rejected", subject=f"policy_change:{change.pk}").exists()


def test_a_change_request_closes_the_proposal_and_it_can_be_proposed_again(operator, alice):
    change = lower_threshold(operator)
    services.vote_cast(case_id=change.case_id, member=alice, choice="request_changes", rationale="Try 25 instead.")
    change.refresh_from_db()
    assert change.status == PolicyChange.Status.CHANGES_REQUESTED
    assert PolicyRule.objects.get(name="severity-30-hold").severity_min == 30
    assert lower_threshold(operator).status == PolicyChange.Status.PENDING


def test_create_disable_and_delete_are_proposals_too(operator, alice, bob):
    created = services.policy_change_propose(
        by=operator,
        operation="create",
        values={"name": "deny-gpt-3", "priority": 5, "ai_model_glob": "gpt-3*", "action": "deny"},
        reason="Retired models must never run again.",
    )
    assert not PolicyRule.objects.filter(name="deny-gpt-3").exists()
    for member in (alice, bob):
        services.vote_cast(case_id=created.case_id, member=member, choice="approve", rationale=WHY)
    rule = PolicyRule.objects.get(name="deny-gpt-3")
    assert (rule.action, rule.priority) == ("deny", 5)

    default = PolicyRule.objects.get(name="block-execution-hold")
    disabled = services.policy_change_propose(
        by=operator, operation="change", rule_id=default.pk, values={"enabled": False}, reason=REASON
    )
    assert disabled.operation == "disable"
    deleted = services.policy_change_propose(by=operator, operation="delete", rule_id=rule.pk, reason=REASON)
    for member in (alice, bob):
        services.vote_cast(case_id=deleted.case_id, member=member, choice="approve", rationale=WHY)
    assert not PolicyRule.objects.filter(name="deny-gpt-3").exists()
    assert PolicyRule.objects.get(pk=default.pk).enabled  # its change is still pending
    assert PolicyChange.objects.get(pk=deleted.pk).rule_name == "deny-gpt-3"


def test_a_change_that_would_break_the_gate_or_clash_is_refused(operator):
    rule = PolicyRule.objects.get(name="severity-30-hold")
    with pytest.raises(services.NotAllowed, match="a metric needs a threshold"):
        services.policy_change_propose(
            by=operator, operation="change", rule_id=rule.pk, values={"metric": "failure_rate"}, reason=REASON
        )
    lower_threshold(operator)
    with pytest.raises(services.NotAllowed, match="already has a pending change"):
        lower_threshold(operator)
    with pytest.raises(services.NotAllowed, match="change nothing"):
        services.policy_change_propose(
            by=operator, operation="change", rule_id=rule.pk, values={"severity_min": 30}, reason=REASON
        )
    assert PolicyChange.objects.count() == 1


def test_an_emergency_change_applies_at_once_and_opens_a_retrospective_case(
    agent, post_report, superuser, operator, alice, bob
):
    pending = lower_threshold(operator)
    rule = PolicyRule.objects.get(name="severity-30-hold")
    assert gate_for(post_report, "before", 25) == "allow"
    change = services.policy_change_emergency(
        by=superuser, operation="change", rule_id=rule.pk, values={"severity_min": 15}, reason="Incident 7: hold more."
    )
    assert change.status == PolicyChange.Status.APPLIED and change.emergency
    assert gate_for(post_report, "after", 25) == "hold"
    case = Case.objects.get(pk=change.case_id)
    assert case.kind == Case.Kind.POLICY and case.status == CaseStatus.OPEN
    assert case.title.startswith("Retrospective review")
    pending.refresh_from_db()
    assert pending.status == PolicyChange.Status.SUPERSEDED
    assert Case.objects.get(pk=pending.case_id).status == CaseStatus.REJECTED
    kinds = list(AuditEntry.objects.filter(subject=f"policy_change:{change.pk}").values_list("kind", flat=True))
    assert kinds == ["policy.emergency", "policy.applied"]

    for member in (alice, bob):
        services.vote_cast(case_id=case.pk, member=member, choice="approve", rationale=WHY)
    assert Case.objects.get(pk=case.pk).status == CaseStatus.APPROVED
    assert AuditEntry.objects.get(kind="policy.reviewed").data["decision"] == "approved"
    assert verify_chain().ok


def test_only_a_superuser_makes_emergency_changes(operator):
    rule = PolicyRule.objects.get(name="severity-30-hold")
    with pytest.raises(services.NotAllowed, match="only a superuser"):
        services.policy_change_emergency(
            by=operator, operation="change", rule_id=rule.pk, values={"severity_min": 15}, reason=REASON
        )


def test_the_admin_turns_an_edit_into_a_proposal_for_non_superusers(client, operator):
    from django.contrib.auth.models import Permission

    operator.user_permissions.add(*Permission.objects.filter(codename__endswith="policyrule"))
    client.force_login(operator)
    rule = PolicyRule.objects.get(name="severity-30-hold")
    url = f"/admin/reviews/policyrule/{rule.pk}/change/"
    form = client.get(url)
    assert b"Emergency" not in form.content
    data = {
        "name": rule.name,
        "priority": rule.priority,
        "enabled": "on",
        "description": rule.description,
        "task_types": "[]",
        "customers": "[]",
        "severity_min": 20,
        "action": "hold",
        "quorum": 2,
        "sla_hours": 72,
        "approval_valid_hours": 2160,
        "change_reason": REASON,
        "emergency": "on",  # ignored: not a superuser
    }
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert PolicyRule.objects.get(pk=rule.pk).severity_min == 30
    change = PolicyChange.objects.get()
    assert (change.emergency, change.diff, change.proposed_by) == (False, {"severity_min": [30, 20]}, operator)
    page = client.get("/admin/reviews/policyrule/").content.decode()
    assert f"case {change.case_id} (awaiting approval)" in page
    assert "awaiting committee approval" in client.get(url).content.decode()

    client.post(f"/admin/reviews/policyrule/{rule.pk}/delete/", {"post": "yes"})
    assert PolicyRule.objects.filter(pk=rule.pk).exists()  # a second pending change on it is refused


def test_reverting_a_rule_to_an_old_version_in_the_admin_is_a_proposal(client, operator):
    from django.contrib.auth.models import Permission

    operator.user_permissions.add(*Permission.objects.filter(codename__endswith="policyrule"))
    rule = PolicyRule.objects.get(name="severity-30-hold")
    rule.save()  # a version at severity 30 in its history
    old_version = rule.history.order_by("-history_id").first()  # the newest: at severity 30
    rule.severity_min = 35
    rule.save()  # a change made straight in the database (a shell, an old migration)
    client.force_login(operator)
    url = f"/admin/reviews/policyrule/{rule.pk}/history/{old_version.history_id}/"
    data = {
        "name": rule.name,
        "priority": rule.priority,
        "enabled": "on",
        "description": rule.description,
        "task_types": "[]",
        "customers": "[]",
        "severity_min": 30,
        "action": "hold",
        "quorum": 2,
        "sla_hours": 72,
        "approval_valid_hours": 2160,
        "change_reason": "Back to the threshold we agreed on.",
    }
    assert client.post(url, data).status_code == 302
    assert PolicyRule.objects.get(pk=rule.pk).severity_min == 35
    assert PolicyChange.objects.get().diff == {"severity_min": [35, 30]}


def test_a_superuser_can_tick_emergency_in_the_admin_and_deletes_by_proposal(client, superuser):
    client.force_login(superuser)
    assert b"Emergency: apply now" in client.get("/admin/reviews/policyrule/add/").content
    rule = PolicyRule.objects.get(name="severity-30-hold")
    data = {
        "name": rule.name,
        "priority": rule.priority,
        "enabled": "on",
        "description": rule.description,
        "task_types": "[]",
        "customers": "[]",
        "severity_min": 20,
        "action": "hold",
        "quorum": 2,
        "sla_hours": 72,
        "approval_valid_hours": 2160,
        "change_reason": "Incident 9: hold more reports now.",
        "emergency": "on",
    }
    assert client.post(f"/admin/reviews/policyrule/{rule.pk}/change/", data).status_code == 302
    assert PolicyRule.objects.get(pk=rule.pk).severity_min == 20
    change = PolicyChange.objects.get()
    assert change.emergency and Case.objects.get(pk=change.case_id).status == CaseStatus.OPEN

    default = PolicyRule.objects.get(name="default-allow")
    client.post(f"/admin/reviews/policyrule/{default.pk}/delete/", {"post": "yes"})
    assert PolicyRule.objects.filter(pk=default.pk).exists()  # a deletion is a proposal, even from a superuser
    assert PolicyChange.objects.filter(operation="delete", status="pending").count() == 1


def test_the_case_page_shows_the_pending_change(client, operator, alice):
    change = lower_threshold(operator)
    client.force_login(alice)
    page = client.get(f"/reviews/cases/{change.case_id}/").content.decode()
    assert 'data-testid="policy-change"' in page and "severity_min" in page
    assert "keeps deciding" in page
    queue = client.get("/reviews/?kind=policy").content.decode()
    assert f'data-case="{change.case_id}"' in queue
