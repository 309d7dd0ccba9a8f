"""Rollouts: the model (one active per family, transitions with history and chain
entries), deterministic routing, and the gate enforcing the route."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEntry
from deployments import rollouts, routing, services
from deployments.errors import RolloutError
from deployments.models import RollbackDrill, Rollout, RolloutState
from deployments.tests.conftest import REASON, passed_drill, register_task

pytestmark = pytest.mark.django_db


def test_ten_thousand_keys_split_at_the_weight_and_keep_their_version_when_it_rises():
    keys = [f"customer-{i}" for i in range(10_000)]
    at25 = {k for k in keys if routing.bucket("coder", k) < 25 * 100}
    at50 = {k for k in keys if routing.bucket("coder", k) < 50 * 100}
    assert abs(len(at25) / len(keys) - 0.25) <= 0.015
    assert abs(len(at50) / len(keys) - 0.50) <= 0.015
    assert at25 <= at50  # every key on the candidate at 25% is on it at 50%
    assert [routing.bucket("coder", k) for k in keys[:50]] == [routing.bucket("coder", k) for k in keys[:50]]


def test_the_route_follows_the_weight_deterministically(family_pair, operator):
    stable, candidate = family_pair
    passed_drill(stable)
    rollout = rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)
    assert (rollout.state, rollout.weight, rollout.step) == (RolloutState.PROGRESSING, 5, 0)
    keys = [f"k{i}" for i in range(400)]
    first = {k: routing.route("coder", k).ai_model for k in keys}
    assert first == {k: routing.route("coder", k).ai_model for k in keys}  # same key, same answer
    rollouts.rollout_promote(rollout_id=rollout.pk, by=operator, reason="Looks good at five percent.")
    second = {k: routing.route("coder", k) for k in keys}
    assert all(second[k].ai_model == "coder-next" for k in keys if first[k] == "coder-next")
    assert {r.weight for r in second.values()} == {25}
    share = sum(r.ai_model == "coder-next" for r in second.values()) / len(keys)
    assert 0.15 < share < 0.35


def test_the_route_api_answers_with_the_tasks_scope(ai, family_pair, operator, client, make_api_key):
    stable, candidate = family_pair
    passed_drill(stable)
    rollout = rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)
    body = ai.get("/api/v1/models/route", {"family": "coder", "key": "customer-7"}).json()
    expected = routing.route("coder", "customer-7")
    assert body == {"ai_model": expected.ai_model, "rollout": rollout.pk, "weight": 5, "role": expected.role}
    assert ai.get("/api/v1/models/route", {"family": "nobody", "key": "x"}).status_code == 404
    assert ai.get("/api/v1/models/route", {"family": "coder"}).status_code == 422
    _, token = make_api_key(scopes=("read",))
    refused = client.get("/api/v1/models/route", {"family": "coder", "key": "k"}, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert refused.status_code == 403


def test_one_active_rollout_per_family_in_the_service_and_the_database(family_pair, approved_version, operator):
    stable, candidate = family_pair
    passed_drill(stable)
    first = rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)
    approved_version("coder-third")
    third = services.ModelVersion.objects.get(ai_model="coder-third")
    with pytest.raises(RolloutError, match="active rollout already"):
        rollouts.rollout_create(candidate_id=third.pk, reason=REASON, by=operator)
    with pytest.raises(IntegrityError), transaction.atomic():
        Rollout.objects.create(family="coder", stable=stable, candidate=third, steps=first.steps, reason="x")
    assert Rollout.objects.count() == 1


def test_the_candidate_must_be_approved(ai, family_pair, operator):
    from deployments.tests.conftest import register_version

    stable, _ = family_pair
    passed_drill(stable)
    register_version(ai, "coder-pending")
    pending = services.ModelVersion.objects.get(ai_model="coder-pending")
    with pytest.raises(RolloutError, match="pending_review: only an approved version rolls out"):
        rollouts.rollout_create(candidate_id=pending.pk, reason=REASON, by=operator)
    assert not Rollout.objects.exists()


def test_bad_steps_are_refused_naming_the_problem(family_pair, operator):
    stable, candidate = family_pair
    passed_drill(stable)
    for steps, problem in (
        ([{"weight": 50}, {"weight": 25}, {"weight": 100}], "rise"),
        ([{"weight": 5}, {"weight": 50}], "last step's weight is 100"),
        ([{"weight": "5"}, {"weight": 100}], "whole number"),
        ([], "1 to 20"),
    ):
        with pytest.raises(services.InvalidVersion, match=problem):
            rollouts.rollout_create(candidate_id=candidate.pk, steps=steps, reason=REASON, by=operator)
    assert not Rollout.objects.exists()


def test_a_rollout_cannot_start_without_a_recent_passed_drill_of_its_rollback_target(family_pair, operator):
    stable, candidate = family_pair
    with pytest.raises(RolloutError, match="'coder-stable' has no rollback drill"):
        rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)
    assert not Rollout.objects.exists()  # nothing half-written
    failed = passed_drill(stable)
    failed.state, failed.reason = RollbackDrill.State.FAIL, "warm check failed: answered HTTP 500"
    failed.save()
    with pytest.raises(RolloutError, match=r"drill \d+, at .* UTC\) ended fail: warm check failed: answered HTTP 500"):
        rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)
    passed_drill(stable, at=timezone.now() - timedelta(days=8))
    with pytest.raises(RolloutError, match="passed, but 8 days ago: older than ROLLOUT_DRILL_MAX_AGE"):
        rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)
    passed_drill(stable, at=timezone.now() - timedelta(days=1))
    assert rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator).state == "progressing"


def test_every_transition_has_history_a_chain_entry_and_a_reason(family_pair, operator):
    stable, candidate = family_pair
    passed_drill(stable)
    r = rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)
    rollouts.rollout_pause(rollout_id=r.pk, by=operator, reason="Waiting for the weekend traffic.")
    with pytest.raises(RolloutError, match="only a progressing rollout is promoted"):
        rollouts.rollout_promote(rollout_id=r.pk, by=operator, reason="Too early to promote this.")
    rollouts.rollout_resume(rollout_id=r.pk, by=operator, reason="Weekend traffic looks normal.")
    rollouts.rollout_promote(rollout_id=r.pk, by=operator, reason="Five percent looks healthy.")
    rollouts.rollout_rollback(rollout_id=r.pk, by=operator, reason="Customers report odd answers.")
    kinds = list(AuditEntry.objects.filter(subject=f"rollout:{r.pk}").order_by("seq").values_list("kind", flat=True))
    assert kinds == [
        "rollout.created",
        "rollout.started",
        "rollout.paused",
        "rollout.resumed",
        "rollout.promoted_step",
        "rollout.rolled_back",
    ]
    states = [h.state for h in r.history.order_by("history_date")]
    assert states == ["pending", "progressing", "paused", "progressing", "progressing", "rolled_back"]
    last = r.history.order_by("-history_date").first()
    assert last.history_user == operator and "Customers report odd answers." in last.history_change_reason
    with pytest.raises(services.InvalidVersion, match="reason"):
        rollouts.rollout_rollback(rollout_id=r.pk, by=operator, reason="no")


def test_the_gate_denies_a_candidate_with_no_traffic_and_allows_it_within_its_weight(ai, family_pair, operator):
    stable, candidate = family_pair
    passed_drill(stable)
    early = register_task(ai, "early", ai_model="coder-next").json()
    assert early["status"] == "registered"  # no rollout yet: the version runs as before
    r = rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator, start=False)
    pending = register_task(ai, "pending", ai_model="coder-next").json()
    assert pending["status"] == "denied" and pending["gate"]["reason"].startswith("not routed")
    assert "0%" in pending["gate"]["reason"] and pending["gate"]["policy"] == "rollout"
    assert ai.post(f"/api/v1/tasks/{early['id']}/start").status_code == 409  # the recheck sees it too
    rollouts.rollout_start(rollout_id=r.pk, by=operator, reason=REASON)
    assert register_task(ai, "routed", ai_model="coder-next").json()["status"] == "registered"
    assert register_task(ai, "on-stable", ai_model="coder-stable").json()["status"] == "registered"


def test_rollback_routes_stable_next_and_denies_the_candidates_tasks(ai, family_pair, operator, callback):
    stable, candidate = family_pair
    passed_drill(stable)
    r = rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)
    for _ in range(3):
        rollouts.rollout_promote(rollout_id=r.pk, by=operator, reason="Promote to the next step.")
    assert r.__class__.objects.get(pk=r.pk).weight == 100
    assert routing.route("coder", "any").ai_model == "coder-next"
    running = register_task(ai, "running", ai_model="coder-next").json()
    assert ai.post(f"/api/v1/tasks/{running['id']}/start").status_code == 200
    waiting = register_task(ai, "waiting", ai_model="coder-next").json()

    rollouts.rollout_rollback(rollout_id=r.pk, by=operator, reason="Customers report odd answers.")

    assert {routing.route("coder", f"k{i}").ai_model for i in range(200)} == {"coder-stable"}
    after = register_task(ai, "after", ai_model="coder-next").json()
    assert after["status"] == "denied" and "was rolled back: Customers report odd answers." in after["gate"]["reason"]
    withdrawn = ai.get(f"/api/v1/tasks/{waiting['id']}").json()
    assert withdrawn["status"] == "denied" and "Customers report odd answers." in withdrawn["gate"]["reason"]
    from reviews.models import CallbackDelivery

    assert list(CallbackDelivery.objects.filter(type="stop").values_list("task_id", flat=True)) == [running["id"]]
    assert set(CallbackDelivery.objects.filter(type="denied").values_list("task_id", flat=True)) == {waiting["id"]}


def test_abort_for_a_demoted_version_is_public_and_safe_to_repeat(ai, family_pair, operator):
    stable, candidate = family_pair
    passed_drill(stable)
    r = rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)
    aborted = services.rollout_abort_for_version(candidate, "Demoted by the adversarial audit run 4.")
    assert aborted.pk == r.pk and aborted.state == RolloutState.ABORTED and aborted.weight == 0
    assert services.rollout_abort_for_version(candidate.pk, "Demoted by the adversarial audit run 4.") is None
    assert services.rollout_abort_for_version(stable, "Not a candidate of any rollout.") is None
    denied = register_task(ai, "after", ai_model="coder-next").json()
    assert denied["status"] == "denied" and "aborted: Demoted by the adversarial audit" in denied["gate"]["reason"]
    assert AuditEntry.objects.filter(kind="rollout.aborted", subject=f"rollout:{r.pk}").count() == 1


def test_revoking_the_candidates_approval_rolls_the_rollout_back(ai, family_pair, operator, alice):
    from reviews import services as review_services

    stable, candidate = family_pair
    passed_drill(stable)
    r = rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)
    review_services.case_revoke(case_id=candidate.case_id, by=alice, rationale="It leaks secrets under load.")
    r.refresh_from_db()
    assert (r.state, r.weight) == (RolloutState.ROLLED_BACK, 0)
    assert "approval revoked" in r.reason


def test_revoking_a_candidate_stops_each_running_task_once(ai, family_pair, operator, alice, callback):
    from reviews import services as review_services
    from reviews.models import CallbackDelivery

    stable, candidate = family_pair
    passed_drill(stable)
    rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)
    running = register_task(ai, "running", ai_model="coder-next").json()
    assert ai.post(f"/api/v1/tasks/{running['id']}/start").status_code == 200
    review_services.case_revoke(case_id=candidate.case_id, by=alice, rationale="It leaks secrets under load.")
    assert list(CallbackDelivery.objects.filter(type="stop").values_list("task_id", flat=True)) == [running["id"]]
    assert Rollout.objects.get().state == RolloutState.ROLLED_BACK
