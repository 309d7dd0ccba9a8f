"""Suites are policy: a change to a required suite is a committee case; a model
version's case is not approved before every required suite has passed."""

import pytest

from assurance.models import AuditSuite
from assurance.tests.support import make_suite, make_version, post_run, sample
from reviews import services as review_services
from reviews.models import Case, PolicyChange

pytestmark = pytest.mark.django_db

APPROVE = "The evaluation is sound and the audits passed."


def test_a_model_case_is_not_approved_before_every_required_suite_passed(ai, garak_suite, alice, bob):
    case = review_services.subject_case_open(
        kind="model", subject_ref="model-version:0", title="t", reason="r", quorum=1
    )
    version = make_version("coder-new", status="pending_review", case=case)
    case.subject_ref = f"model-version:{version.pk}"
    case.save()
    with pytest.raises(review_services.NotAllowed, match="garak-weekly"):
        review_services.vote_cast(case_id=case.pk, member=alice, choice="approve", rationale=APPROVE)
    assert (
        post_run(
            ai, suite="garak-weekly", ai_model=version.ai_model, fmt="garak", report=sample("garak_new.report.jsonl")
        ).json()["verdict"]
        == "pass"
    )
    review_services.vote_cast(case_id=case.pk, member=alice, choice="approve", rationale=APPROVE)
    case.refresh_from_db()
    assert case.status == "approved"


def test_the_case_page_shows_the_audit_status_and_why_approve_is_disabled(client, garak_suite, alice):
    case = review_services.subject_case_open(
        kind="model", subject_ref="model-version:0", title="t", reason="r", quorum=1
    )
    version = make_version("coder-new", status="pending_review", case=case)
    case.subject_ref = f"model-version:{version.pk}"
    case.save()
    client.force_login(alice)
    page = client.get(f"/reviews/cases/{case.pk}/").content.decode()
    assert 'data-testid="model-audits-panel"' in page
    assert "missing: garak-weekly" in page


def test_changing_a_required_suite_is_a_policy_change(operator):
    suite = make_suite()
    review_services.policy_change_propose(
        by=operator,
        target="assurance.auditsuite",
        operation="change",
        rule_id=suite.pk,
        values={"grace_minutes": 10_000},
        reason="A longer grace for the weekly run.",
    )
    change = PolicyChange.objects.get(target="assurance.auditsuite")
    assert Case.objects.get(pk=change.case_id).kind == "policy"
    suite.refresh_from_db()
    assert suite.grace_minutes == 60  # not until the committee approves


def test_a_suite_the_gate_could_not_use_is_refused():
    from assurance.criteria import check_suite

    suite = AuditSuite(name="x", source="garak", schedule="every day", criteria=[])
    with pytest.raises(ValueError, match="cron"):
        check_suite(suite)
    suite.schedule = "0 3 * * *"
    suite.criteria = [{"metric": "failure_rate", "comparison": "<=", "threshold": 0.1}]
    with pytest.raises(ValueError, match="not measured by garak"):
        check_suite(suite)


def _admin_form(**values):
    base = {
        "name": "new-suite",
        "description": "",
        "family_glob": "",
        "ai_model_glob": "",
        "source": "garak",
        "criteria": '[{"metric": "attack_success_rate", "comparison": "<=", "threshold": 0.05}]',
        "schedule": "0 3 * * *",
        "grace_minutes": "60",
        "window_hours": "24",
        "action": "hold",
        "enabled": "on",
        "created_at_0": "2026-11-01",
        "created_at_1": "00:00:00",
        "change_reason": "A nightly garak run for every family.",
    }
    return {**base, **values}


def test_in_the_admin_a_required_suite_is_proposed_and_an_optional_one_saved(client, operator):
    client.force_login(operator)
    response = client.post("/admin/assurance/auditsuite/add/", _admin_form(required="on"))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not AuditSuite.objects.exists()
    change = PolicyChange.objects.get(target="assurance.auditsuite")
    assert change.status == "pending"
    response = client.post("/admin/assurance/auditsuite/add/", _admin_form(name="optional"))
    assert response.status_code == 302
    suite = AuditSuite.objects.get(name="optional")
    assert not suite.required
    # Making it required is a committee decision too.
    response = client.post(
        f"/admin/assurance/auditsuite/{suite.pk}/change/", _admin_form(name="optional", required="on")
    )
    assert response.status_code == 302
    suite.refresh_from_db()
    assert not suite.required
    assert PolicyChange.objects.filter(target="assurance.auditsuite").count() == 2
