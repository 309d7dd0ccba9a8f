"""The analysis at each step: stored with its figures; fail rolls back, pass
promotes, too few tasks pauses with a committee case."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from deployments import analysis, rollouts, routing
from deployments.models import Rollout, RolloutAnalysis, RolloutState
from deployments.tests.conftest import REASON, finished_tasks, passed_drill
from reviews.models import Case

pytestmark = pytest.mark.django_db

STEPS = [
    {"weight": 5, "min_minutes": 10, "min_tasks": 20},
    {"weight": 25, "min_minutes": 10, "min_tasks": 20},
    {"weight": 50, "min_minutes": 10, "min_tasks": 20},
    {"weight": 100, "min_minutes": 10, "min_tasks": 20},
]


@pytest.fixture
def started(family_pair, operator):
    stable, candidate = family_pair
    passed_drill(stable)
    return rollouts.rollout_create(candidate_id=candidate.pk, steps=STEPS, reason=REASON, by=operator)


def test_a_candidate_failing_three_times_as_often_is_rolled_back_at_its_first_analysis(started):
    now = timezone.now() + timedelta(minutes=11)
    finished_tasks("coder-stable", 100, failed=5, at=now - timedelta(minutes=5))
    finished_tasks("coder-next", 100, failed=15, at=now - timedelta(minutes=5))
    found = analysis.rollout_analyze(rollout_id=started.pk, now=now)
    assert found.verdict == "fail" and "failure_rate 0.15 > 0.075" in found.reason
    assert found.figures["candidate"]["failure_rate"] == 0.15 and found.figures["stable"]["failure_rate"] == 0.05
    assert found.figures["candidate"]["count"] == 100 and found.figures["stable"]["p95_ms"] is not None
    rollout = Rollout.objects.get()
    assert (rollout.state, rollout.weight) == (RolloutState.ROLLED_BACK, 0)
    assert f"analysis {found.pk} of step 1 (5%) failed" in rollout.reason
    assert routing.route("coder", "any-key").ai_model == "coder-stable"


def test_a_candidate_equal_to_stable_is_promoted_through_every_step(started):
    now = timezone.now()
    for step in range(4):
        now += timedelta(minutes=11)
        finished_tasks("coder-stable", 40, failed=2, at=now - timedelta(minutes=1), prefix=f"s{step}")
        finished_tasks("coder-next", 40, failed=2, at=now - timedelta(minutes=1), prefix=f"c{step}")
        with time_machine.travel(now, tick=False):
            assert analysis.analyze_rollouts(now=now) == 1
    rollout = Rollout.objects.get()
    assert (rollout.state, rollout.weight) == (RolloutState.PROMOTED, 100)
    assert list(RolloutAnalysis.objects.values_list("step", "weight", "verdict")) == [
        (0, 5, "pass"),
        (1, 25, "pass"),
        (2, 50, "pass"),
        (3, 100, "pass"),
    ]
    assert routing.live_version("coder").ai_model == "coder-next"
    assert routing.rollback_target("coder").ai_model == "coder-stable"  # the previous stable stays the target


def test_an_analysis_waits_for_the_minimum_duration_and_tasks(started):
    soon = timezone.now() + timedelta(minutes=5)
    finished_tasks("coder-next", 40, at=soon - timedelta(minutes=1))
    assert analysis.rollout_analyze(rollout_id=started.pk, now=soon) is None  # before min_minutes
    later = timezone.now() + timedelta(minutes=15)
    started.refresh_from_db()
    assert analysis.rollout_analyze(rollout_id=started.pk, now=later) is not None


def test_too_few_tasks_by_the_deadline_pauses_with_a_committee_case(started):
    finished_tasks("coder-stable", 40)
    finished_tasks("coder-next", 3)
    early = timezone.now() + timedelta(minutes=30)
    assert analysis.rollout_analyze(rollout_id=started.pk, now=early) is None  # still time to collect
    late = timezone.now() + timedelta(minutes=61)
    found = analysis.rollout_analyze(rollout_id=started.pk, now=late)
    assert found.verdict == "inconclusive" and "only 3 of 20 candidate tasks finished" in found.reason
    rollout = Rollout.objects.get()
    assert rollout.state == RolloutState.PAUSED and rollout.weight == 5
    case = Case.objects.get(pk=found.case_id)
    assert (case.kind, case.subject_ref, case.status) == ("rollout", f"rollout:{rollout.pk}:step:0", "open")


def test_operator_confirm_waits_after_a_pass(family_pair, operator):
    stable, candidate = family_pair
    passed_drill(stable)
    r = rollouts.rollout_create(candidate_id=candidate.pk, steps=STEPS, reason=REASON, by=operator, auto_promote=False)
    now = timezone.now() + timedelta(minutes=11)
    finished_tasks("coder-stable", 40, at=now - timedelta(minutes=1))
    finished_tasks("coder-next", 40, at=now - timedelta(minutes=1))
    assert analysis.rollout_analyze(rollout_id=r.pk, now=now).verdict == "pass"
    r.refresh_from_db()
    assert (r.weight, r.awaiting_confirm) == (5, True)
    assert analysis.rollout_analyze(rollout_id=r.pk, now=now) is None
    rollouts.rollout_promote(rollout_id=r.pk, by=operator, reason="Confirmed after the passed analysis.")
    r.refresh_from_db()
    assert (r.weight, r.awaiting_confirm) == (25, False)
