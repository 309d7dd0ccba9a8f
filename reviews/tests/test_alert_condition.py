"""The policy condition "alert firing for this model": off by default, set only
through the committee's policy-change review, asked (through fsar/gate.py, which
calls indicators) only when a rule that reaches the task uses it, at registration
and again at the moment of use. Each attempt to get around it is made as the AI
client would, through the agent API.

Most tests stand in for indicators.selectors.model_alert_firing
(support.alerts_firing_for) to choose what fires and see what the gate asked,
through the real fsar.gate; the last one uses indicators' own alerts."""

from __future__ import annotations

import json

import pytest

from reviews import services
from reviews.models import PolicyChange, PolicyRule
from reviews.tests.support import WHY, alerts_firing_for
from tasks.models import ExecutionTask, TaskStatus

pytestmark = [pytest.mark.django_db, pytest.mark.adversary]

MODEL = "coder-2026-12"
RULE = {
    "name": "hold-on-model-alert",
    "priority": 1,
    "model_alert_firing": True,
    "action": "hold",
    "quorum": 1,
    "description": "Hold new tasks on a model whose indicators alert fires.",
}


def register(agent, external_id, ai_model=MODEL, **fields):
    body = {"external_id": external_id, "task_type": "implement_idea", "ai_model": ai_model, **fields}
    return agent.post("/api/v1/tasks", data=json.dumps(body), content_type="application/json")


def start(agent, task):
    return agent.post(f"/api/v1/tasks/{task['id']}/start", data="{}", content_type="application/json")


@pytest.fixture
def alert_rule():
    rule = PolicyRule.objects.create(**RULE)
    services.rules_changed(why="test: the alert rule")
    return rule


def test_the_condition_is_off_by_default_and_never_asked_then(agent, monkeypatch):
    asked = alerts_firing_for(monkeypatch, MODEL)
    assert PolicyRule().model_alert_firing is False
    assert not PolicyRule.objects.filter(model_alert_firing=True).exists()
    assert register(agent, "t1").json()["gate"]["decision"] == "allow"
    assert asked == []  # no rule uses it: indicators is not even asked


def test_it_is_set_only_through_the_policy_change_review(agent, monkeypatch, operator, alice, bob):
    alerts_firing_for(monkeypatch, MODEL)
    change = services.policy_change_propose(by=operator, operation="create", values=RULE, reason=WHY)
    assert change.status == PolicyChange.Status.PENDING
    assert register(agent, "t-pending").json()["gate"]["decision"] == "allow"  # not yet
    for member in (alice, bob):
        services.vote_cast(case_id=change.case_id, member=member, choice="approve", rationale=WHY)
    assert PolicyRule.objects.get(name=RULE["name"]).model_alert_firing is True
    gate = register(agent, "t-after").json()["gate"]
    assert gate["decision"] == "hold" and "model_alert_firing=True" in gate["reason"]


def test_a_new_task_on_a_model_whose_alert_fires_is_held(agent, monkeypatch, alert_rule):
    asked = alerts_firing_for(monkeypatch, "other-model")
    assert register(agent, "t-quiet").json()["gate"]["decision"] == "allow"  # the door: no alert, it runs
    asked = alerts_firing_for(monkeypatch, MODEL)
    gate = register(agent, "t-firing").json()["gate"]
    assert (gate["decision"], gate["policy"]) == ("hold", RULE["name"])
    assert asked == [MODEL]


def test_a_task_registered_before_the_alert_cannot_start_once_it_fires(agent, monkeypatch, alert_rule):
    alerts_firing_for(monkeypatch)
    before, task = register(agent, "t0").json(), register(agent, "t1").json()
    assert task["gate"]["decision"] == "allow"
    assert start(agent, before).status_code == 200  # the door: an allowed task starts

    alerts_firing_for(monkeypatch, MODEL)
    response = start(agent, task)
    assert response.status_code == 409
    assert response.json()["policy"] == RULE["name"]
    stored = ExecutionTask.objects.get(pk=task["id"])
    assert (stored.status, stored.started_at) == (TaskStatus.HELD, None)


def test_re_registering_an_allowed_task_after_the_alert_fires_does_not_keep_it_allowed(agent, monkeypatch, alert_rule):
    alerts_firing_for(monkeypatch)
    assert register(agent, "t1").json()["gate"]["decision"] == "allow"
    alerts_firing_for(monkeypatch, MODEL)
    again = register(agent, "t1")
    assert again.json()["gate"]["decision"] == "hold"
    assert ExecutionTask.objects.get(external_id="t1").status == TaskStatus.HELD


def test_a_respelt_model_name_is_held_too(agent, monkeypatch, alert_rule):
    asked = alerts_firing_for(monkeypatch, MODEL)
    gate = register(agent, "t-upper", ai_model=MODEL.upper()).json()["gate"]
    assert gate["decision"] == "hold"
    assert asked == [MODEL.upper(), MODEL]


def test_a_deny_rule_denies_and_a_rule_for_other_models_does_not_reach(agent, monkeypatch):
    PolicyRule.objects.create(**{**RULE, "action": "deny", "ai_model_glob": "coder-*"})
    services.rules_changed(why="test: deny on alert")
    asked = alerts_firing_for(monkeypatch, MODEL, "writer-1")
    assert register(agent, "t1").json()["gate"]["decision"] == "deny"
    assert register(agent, "t2", ai_model="writer-1").json()["gate"]["decision"] == "allow"
    assert asked == [MODEL]  # the glob did not match writer-1: indicators not asked


def test_the_gate_fails_closed_when_the_alerts_cannot_be_read(agent, monkeypatch, alert_rule):
    import indicators

    alerts_firing_for(monkeypatch)

    def broken(ai_model: str) -> bool:
        raise RuntimeError("indicators database is away")

    monkeypatch.setattr(indicators.selectors, "model_alert_firing", broken)
    response = register(agent, "t1")
    assert response.status_code == 503
    assert not ExecutionTask.objects.filter(status=TaskStatus.REGISTERED).exists()


def test_without_a_provider_a_rule_using_it_cannot_be_evaluated(monkeypatch, alert_rule):
    from reviews import policy

    task = ExecutionTask(external_id="t1", task_type="implement_idea", ai_model=MODEL)
    with pytest.raises(policy.BrokenRule, match="alert is firing"):
        services.decide_task(task)


def test_with_indicators_own_alerts_the_rule_holds_while_one_is_open(agent, alert_rule, operator):
    """End to end with indicators' real selector (no stand-in): a firing alert about
    the model holds, an acknowledged one still does, a resolved one no longer."""
    from indicators.models import Alert, AlertKind, AlertState

    assert register(agent, "t0").json()["gate"]["decision"] == "allow"  # the door: no alert
    alert = Alert.objects.create(
        kind=AlertKind.DRIFT, dedup_key=f"drift:model.p95_ms:{MODEL}", title="p95 up", ai_model=MODEL
    )
    assert register(agent, "t1").json()["gate"]["decision"] == "hold"
    Alert.objects.filter(pk=alert.pk).update(state=AlertState.ACKNOWLEDGED)
    assert register(agent, "t2", ai_model=MODEL.upper()).json()["gate"]["decision"] == "hold"
    Alert.objects.filter(pk=alert.pk).update(state=AlertState.RESOLVED)
    assert register(agent, "t3").json()["gate"]["decision"] == "allow"
