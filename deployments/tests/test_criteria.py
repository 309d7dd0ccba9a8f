"""Model-version criteria are policy: rules over a version's evaluation and
family, first match decides, and every change goes through the committee's
policy-change review, as task rules do."""

import pytest

from audit.models import AuditEntry
from deployments import criteria
from deployments.models import ModelRule
from fsar.testing import APPROVE, register_version
from reviews import services as review_services
from reviews.models import Case, PolicyChange

pytestmark = pytest.mark.django_db
REASON = "Versions failing more than one task in twenty should not reach the committee."


def rule(**fields) -> criteria.Rule:
    spec = {"name": "r", "priority": 1, "action": "deny", **fields}
    return criteria.Rule.from_model(ModelRule(pk=1, **spec))


def test_a_comparison_holds_only_when_the_metric_is_there_and_compares():
    r = rule(metric="failure_rate", comparison=">", threshold=0.05)
    assert r.match(family="coder", evaluation={"failure_rate": 0.06}) == {"failure_rate": 0.06, "comparison": "> 0.05"}
    assert r.match(family="coder", evaluation={"failure_rate": 0.05}) is None
    assert r.match(family="coder", evaluation={}) is None  # missing: name it in required_metrics


def test_required_metrics_match_when_any_is_missing_and_the_family_glob_narrows():
    r = rule(required_metrics=["failure_rate", "red_team_pass_rate"], family_glob="coder*")
    assert r.match(family="coder-x", evaluation={"failure_rate": 0.1}) == {
        "family": "coder-x",
        "family_glob": "coder*",
        "missing": ["red_team_pass_rate"],
    }
    assert r.match(family="writer", evaluation={}) is None
    assert r.match(family="coder", evaluation={"failure_rate": 0.1, "red_team_pass_rate": 0.9}) is None


@pytest.mark.parametrize(
    "fields,problem",
    [
        ({"action": "allow"}, "unknown action"),
        ({"metric": "failure_rate"}, "needs one of"),
        ({"metric": "Failure", "comparison": ">", "threshold": 1}, "needs a metric name"),
        ({"metric": "x", "comparison": ">", "threshold": float("nan")}, "finite threshold"),
        ({"required_metrics": [1]}, "required_metrics"),
        ({"action": "hold", "quorum": 0}, "quorum of at least 1"),
    ],
)
def test_a_rule_that_cannot_be_evaluated_is_refused_naming_the_problem(fields, problem):
    with pytest.raises(criteria.BrokenRule, match=problem):
        rule(**fields)


def test_with_no_rule_at_all_the_defaults_apply_and_a_rule_set_matching_nothing_holds():
    ModelRule.objects.all().delete()
    assert criteria.evaluate(family="f", evaluation={}).policy == "missing-failure-rate-block"
    ModelRule.objects.create(name="only-writers", priority=1, family_glob="writer*", action="deny")
    verdict = criteria.evaluate(family="coder", evaluation={"failure_rate": 0.2})
    assert (verdict.action, verdict.policy, verdict.quorum) == ("hold", "no-matching-rule", 2)


def propose_stricter(by) -> PolicyChange:
    return review_services.policy_change_propose(
        by=by,
        target="deployments.modelrule",
        operation="create",
        values={
            "name": "high-failure-block",
            "priority": 20,
            "metric": "failure_rate",
            "comparison": ">",
            "threshold": 0.05,
            "action": "deny",
        },
        reason=REASON,
    )


def test_a_change_to_the_model_rules_is_a_committee_case_and_applies_only_once_approved(ai, operator, alice, bob):
    change = propose_stricter(operator)
    case = Case.objects.get(pk=change.case_id)
    assert (case.kind, case.quorum, change.target, change.status) == ("policy", 2, "deployments.modelrule", "pending")
    assert not ModelRule.objects.filter(name="high-failure-block").exists()
    # Until approved, the rules as they are decide.
    assert register_version(ai, ai_model="v1", evaluation={"failure_rate": 0.2}).json()["status"] == "pending_review"

    for member in (alice, bob):
        review_services.vote_cast(case_id=case.pk, member=member, choice="approve", rationale=APPROVE)

    change.refresh_from_db()
    assert change.status == "applied"
    created = ModelRule.objects.get(name="high-failure-block")
    assert created.history.get().history_change_reason.startswith(f"policy change {change.pk}")
    blocked = register_version(ai, ai_model="v2", evaluation={"failure_rate": 0.2}).json()
    assert (blocked["status"], blocked["gate"]["policy"], blocked["gate"]["values"]) == (
        "blocked",
        "high-failure-block",
        {"failure_rate": 0.2, "comparison": "> 0.05"},
    )
    kinds = set(AuditEntry.objects.filter(subject=f"policy_change:{change.pk}").values_list("kind", flat=True))
    assert kinds == {"policy.proposed", "policy.applied"}


def test_a_model_rule_the_criteria_could_not_evaluate_is_refused_as_a_proposal(operator):
    with pytest.raises(review_services.NotAllowed, match="a comparison needs"):
        review_services.policy_change_propose(
            by=operator,
            target="deployments.modelrule",
            operation="create",
            values={"name": "broken", "priority": 5, "metric": "failure_rate", "action": "deny"},
            reason=REASON,
        )
    assert not PolicyChange.objects.exists()


def test_the_admin_turns_a_model_rule_save_into_a_proposal(client, operator):
    client.force_login(operator)
    default = ModelRule.objects.get(name="new-version-hold")
    page = client.get(f"/admin/deployments/modelrule/{default.pk}/change/")
    assert page.status_code == 200
    form = {
        "name": default.name,
        "priority": default.priority,
        "enabled": "on",
        "description": default.description,
        "family_glob": "",
        "required_metrics": "[]",
        "metric": "",
        "comparison": "",
        "threshold": "",
        "action": "hold",
        "quorum": 3,
        "sla_hours": default.sla_hours,
        "approval_valid_hours": default.approval_valid_hours,
        "change_reason": "New versions deserve a third pair of eyes.",
    }
    response = client.post(f"/admin/deployments/modelrule/{default.pk}/change/", form, follow=True)
    assert response.status_code == 200
    change = PolicyChange.objects.get()
    assert (change.target, change.diff) == ("deployments.modelrule", {"quorum": [2, 3]})
    default.refresh_from_db()
    assert default.quorum == 2  # unchanged until the committee approves
    assert "case" in response.content.decode()
