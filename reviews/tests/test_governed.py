"""Governed changes (reviews.governed): a policy table that another app owns goes
through the same committee review as the gate's rules. A stand-in table here:
auth's Group, registered as governed for the test."""

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditEntry
from reviews import governed, services
from reviews.models import Case, PolicyChange

pytestmark = pytest.mark.django_db
WHY = "Auditors need a group of their own from now on."
APPROVE = "Read the change; it does what it says."
TARGET = "auth.group"


@pytest.fixture(autouse=True)
def governed_groups():
    applied = []

    def check(group) -> None:
        if group.name.startswith("root"):
            raise ValueError("group names starting with root are reserved")

    governed.register(Group, label="group", check=check, applied=lambda: applied.append(True))
    yield applied
    governed.unregister(TARGET)


def propose(by, operation="create", values=None, row=None):
    return services.policy_change_propose(
        by=by, target=TARGET, operation=operation, rule_id=row, values=values, reason=WHY
    )


def test_a_governed_row_changes_only_once_the_committee_approves(operator, alice, bob, governed_groups):
    change = propose(operator, values={"name": "auditors"})
    case = Case.objects.get(pk=change.case_id)
    assert (case.kind, case.title, change.target, change.object_id, case.rule_id) == (
        "policy",
        "Policy change: create group auditors",
        TARGET,
        None,
        None,
    )
    assert not Group.objects.filter(name="auditors").exists()
    for member in (alice, bob):
        services.vote_cast(case_id=case.pk, member=member, choice="approve", rationale=APPROVE)
    change.refresh_from_db()
    group = Group.objects.get(name="auditors")
    assert (change.status, change.object_id, governed_groups) == ("applied", group.pk, [True])
    applied = AuditEntry.objects.get(kind="policy.applied", subject=f"policy_change:{change.pk}")
    assert applied.data["target"] == TARGET and applied.actor == "bob"

    rename = propose(operator, operation="change", values={"name": "auditors-eu"}, row=group.pk)
    assert rename.diff == {"name": ["auditors", "auditors-eu"]}
    with pytest.raises(services.NotAllowed, match="already has a pending change"):
        propose(operator, operation="delete", row=group.pk)


def test_what_the_owning_app_cannot_use_is_refused_and_nothing_is_stored(operator):
    with pytest.raises(services.NotAllowed, match="reserved"):
        propose(operator, values={"name": "root-admins"})
    with pytest.raises(services.NotAllowed, match="unknown group fields: colour"):
        propose(operator, values={"name": "x", "colour": "red"})
    with pytest.raises(services.NotAllowed, match="not governed"):
        services.policy_change_propose(
            by=operator, target="auth.user", operation="create", values={"username": "x"}, reason=WHY
        )
    assert not PolicyChange.objects.exists() and not Case.objects.exists()


def test_a_row_changed_under_a_proposal_is_not_overwritten(operator, alice, bob):
    group = Group.objects.create(name="auditors")
    change = propose(operator, operation="change", values={"name": "auditors-eu"}, row=group.pk)
    Group.objects.filter(pk=group.pk).update(name="auditors-us")  # behind the review's back
    services.vote_cast(case_id=change.case_id, member=alice, choice="approve", rationale=APPROVE)
    with pytest.raises(services.NotAllowed, match="changed since this was proposed"):
        services.vote_cast(case_id=change.case_id, member=bob, choice="approve", rationale=APPROVE)
    assert Group.objects.get(pk=group.pk).name == "auditors-us"


def test_an_emergency_change_applies_at_once_with_a_retrospective_case(superuser, operator):
    group = Group.objects.create(name="auditors")
    pending = propose(operator, operation="change", values={"name": "auditors-eu"}, row=group.pk)
    change = services.policy_change_emergency(
        by=superuser, target=TARGET, operation="delete", rule_id=group.pk, reason=WHY
    )
    assert change.status == "applied" and not Group.objects.filter(pk=group.pk).exists()
    assert "Retrospective review: emergency delete of group auditors" == Case.objects.get(pk=change.case_id).title
    pending.refresh_from_db()
    assert pending.status == "superseded"
