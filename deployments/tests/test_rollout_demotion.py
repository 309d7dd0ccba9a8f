"""Rollouts abort when the candidate is demoted by its audits (issue #16 ↔ #18):
the next route answers stable and the candidate's tasks are denied."""

import pytest

from assurance import services as assurance_services
from assurance.models import VersionStanding
from assurance.tests.support import make_suite, sample
from audit.models import AuditEntry
from deployments import rollouts, routing
from deployments.models import Rollout, RolloutState
from deployments.tests.support import REASON, passed_drill
from fsar.testing import register_task

pytestmark = pytest.mark.django_db


def test_a_candidate_demoted_by_a_failed_audit_is_rolled_out_of_traffic(family_pair, operator, ai):
    stable, candidate = family_pair
    passed_drill(stable)
    rollout = rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)
    keys = [f"k{i}" for i in range(200)]
    assert any(routing.route("coder", k).ai_model == "coder-next" for k in keys)  # the candidate gets its 5%
    # A required red-team suite for the candidate only; its garak run fails (5% attack success > 1%).
    make_suite(
        "garak-candidate",
        ai_model_glob="coder-next",
        family_glob="",
        criteria=[{"metric": "attack_success_rate", "comparison": "<=", "threshold": 0.01}],
    )
    run, created = assurance_services.run_submit(
        suite="garak-candidate",
        ai_model="coder-next",
        fmt="garak",
        content=sample("garak_new.report.jsonl"),
        sender=assurance_services.Sender(user=operator),
    )
    assert created and run.verdict == "fail"
    assert VersionStanding.objects.get(model_version=candidate).demoted
    rollout = Rollout.objects.get(pk=rollout.pk)
    assert rollout.state == RolloutState.ABORTED and rollout.weight == 0
    assert "demoted by its audits" in rollout.history.latest("history_date").history_change_reason
    assert {routing.route("coder", k).ai_model for k in keys} == {"coder-stable"}  # the next route: stable
    entry = AuditEntry.objects.filter(kind="rollout.aborted").latest("seq")
    assert "demoted by its audits" in str(entry.data)
    body = register_task(ai, "after-demotion", ai_model="coder-next").json()
    assert body["gate"]["decision"] == "deny"
