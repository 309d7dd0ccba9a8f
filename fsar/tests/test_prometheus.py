"""/metrics: FSAR's state in the Prometheus text format, for a scraper holding
METRICS_TOKEN; a 404 like any missing page for everyone else; a handful of
indexed queries per scrape (the 1M-task check is in test_prometheus_scale.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from fsar.prometheus import readings
from fsar.prometheus.collector import OTHER, bounded
from fsar.testing import register_task
from fsar.tests.prometheus_support import (
    TOKEN,
    alert,
    audit_run,
    callback,
    make_case,
    samples,
    scrape,
    series,
    stripe_event,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


# The door ---------------------------------------------------------------------


def test_with_no_token_set_metrics_is_a_404_even_for_a_bearer_of_an_empty_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer").status_code == 404


def test_the_right_token_gets_the_text_format(client, token):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


@pytest.mark.parametrize(
    "authorization",
    [None, "", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"bearer {TOKEN}", TOKEN, f"Basic {TOKEN}"],
)
def test_a_missing_or_wrong_token_gets_the_same_404_as_a_page_that_does_not_exist(client, token, authorization):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    answer = client.get("/metrics", **headers)
    missing = client.get("/metricz", **headers)
    assert answer.status_code == missing.status_code == 404
    # The page names the path asked for, and nothing else differs.
    assert answer.content == missing.content.replace(b"/metricz", b"/metrics")
    assert "fsar_" not in answer.content.decode()


def test_a_post_without_the_token_is_a_404_not_a_405_that_would_reveal_the_endpoint(client, token):
    assert client.post("/metrics").status_code == 404
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 405


def test_a_logged_in_operator_without_the_token_gets_a_404(client, operator, token):
    client.force_login(operator)
    assert client.get("/metrics").status_code == 404


def test_the_ai_sides_api_key_is_not_a_metrics_token(agent, token):
    # The agent client sends its own API key as a bearer token on every request.
    assert agent.get("/metrics").status_code == 404


# What it says -----------------------------------------------------------------


EVERY_FAMILY = {
    "fsar_gate_decisions_last_hour",
    "fsar_tasks_held",
    "fsar_tasks_held_oldest_age_seconds",
    "fsar_review_cases_open",
    "fsar_review_cases_overdue",
    "fsar_review_cases_oldest_open_age_seconds",
    "fsar_stripe_events_unapplied",
    "fsar_stripe_events_oldest_unapplied_age_seconds",
    "fsar_callback_deliveries_undelivered",
    "fsar_callback_deliveries_oldest_pending_age_seconds",
    "fsar_audit_verdict",
    "fsar_audit_verdict_timestamp_seconds",
    "fsar_indicator_value",
    "fsar_indicator_latest_point_timestamp_seconds",
    "fsar_indicator_alerts_open",
    "fsar_metrics_model_labels",
    "fsar_metrics_omitted_series",
}


def test_an_empty_database_parses_with_every_family_and_zeros(client, token):
    text = scrape(client)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert EVERY_FAMILY <= set(families)
    assert all(f.type == "gauge" for f in families.values())
    values = samples(text)
    assert values[("fsar_tasks_held_oldest_age_seconds", ())] == 0
    assert values[("fsar_stripe_events_unapplied", (("status", "pending"),))] == 0
    # Every case kind has every age bucket, at zero: an alert on a bucket never sees a gap.
    for kind in ("report", "tasks", "policy"):
        for age in ("lt_1h", "1h_to_1d", "1d_to_7d", "ge_7d"):
            assert values[("fsar_review_cases_open", (("age", age), ("kind", kind)))] == 0


def test_gate_decisions_of_the_last_hour_by_action_and_rule(client, agent, token, frozen_clock):
    answers = [
        register_task(agent, f"t{i}", task_type=t).json()
        for i, t in enumerate(["implement_idea", "implement_idea", "self_improvement", "idea_implementation"])
    ]
    expected: dict[tuple, int] = {}
    for a in answers:
        key = (("action", a["gate"]["decision"]), ("rule", a["gate"]["policy"]))
        expected[key] = expected.get(key, 0) + 1
    values = samples(scrape(client))
    got = {k[1]: v for k, v in values.items() if k[0] == "fsar_gate_decisions_last_hour"}
    assert got == expected
    # An hour and a second later, they are out of the window.
    frozen_clock.shift(timedelta(hours=1, seconds=1))
    values = samples(scrape(client))
    assert not [k for k in values if k[0] == "fsar_gate_decisions_last_hour"]


def test_held_tasks_by_rule_with_the_oldest_ones_age(client, agent, token, frozen_clock, operator):
    from reviews import services

    services.gate_pause(by=operator, reason="maintenance")
    register_task(agent, "h1")
    frozen_clock.shift(timedelta(minutes=10))
    register_task(agent, "h2")
    values = samples(scrape(client))
    assert values[("fsar_tasks_held", (("rule", "global-pause"),))] == 2
    assert values[("fsar_tasks_held_oldest_age_seconds", ())] == 600


def test_a_task_with_no_rule_and_one_with_an_empty_rule_are_one_series(client, token):
    from tasks.models import ExecutionTask

    for i, rule in enumerate([None, "", None]):
        ExecutionTask.objects.create(
            external_id=f"legacy-{i}", task_type="implement_idea", status="held", gate_policy=rule
        )
    values = samples(scrape(client))  # samples() fails on a duplicate series
    assert values[("fsar_tasks_held", (("rule", ""),))] == 3


def test_open_cases_by_kind_and_age_bucket_and_overdue(client, token, frozen_clock):
    now = timezone.now()
    make_case("tasks", opened=now - timedelta(minutes=5))
    make_case("tasks", opened=now - timedelta(hours=3))
    make_case("report", opened=now - timedelta(days=2), due=now - timedelta(hours=1))
    make_case("report", opened=now - timedelta(days=8), due=now - timedelta(days=5))
    make_case("report", opened=now - timedelta(days=30), status="approved")  # decided: not in the queue
    values = samples(scrape(client))

    def open_(kind, age):
        return values[("fsar_review_cases_open", (("age", age), ("kind", kind)))]

    assert [open_("tasks", a) for a in ("lt_1h", "1h_to_1d", "1d_to_7d", "ge_7d")] == [1, 1, 0, 0]
    assert [open_("report", a) for a in ("lt_1h", "1h_to_1d", "1d_to_7d", "ge_7d")] == [0, 0, 1, 1]
    assert values[("fsar_review_cases_overdue", (("kind", "report"),))] == 2
    assert values[("fsar_review_cases_overdue", (("kind", "tasks"),))] == 0
    assert values[("fsar_review_cases_oldest_open_age_seconds", (("kind", "report"),))] == 8 * 86400
    assert values[("fsar_review_cases_oldest_open_age_seconds", (("kind", "policy"),))] == 0


def test_the_webhook_backlog_and_its_lag(client, token, frozen_clock, operator, make_api_key):
    now = timezone.now()
    stripe_event("evt_1", received=now - timedelta(minutes=7), status="pending")
    stripe_event("evt_2", received=now - timedelta(minutes=2), status="failed")
    stripe_event("evt_3", received=now - timedelta(days=3), status="processed")
    key, _ = make_api_key()
    callback(key, created=now - timedelta(seconds=90), status="pending")
    callback(key, created=now - timedelta(days=1), status="failed")
    callback(key, created=now - timedelta(days=2), status="delivered")
    values = samples(scrape(client))
    assert values[("fsar_stripe_events_unapplied", (("status", "pending"),))] == 1
    assert values[("fsar_stripe_events_unapplied", (("status", "failed"),))] == 1
    assert values[("fsar_stripe_events_oldest_unapplied_age_seconds", ())] == 7 * 60
    assert values[("fsar_callback_deliveries_undelivered", (("status", "pending"),))] == 1
    assert values[("fsar_callback_deliveries_undelivered", (("status", "failed"),))] == 1
    # The lag is the oldest *pending* one's: a delivery given up on is not waiting any more.
    assert values[("fsar_callback_deliveries_oldest_pending_age_seconds", ())] == 90


def test_audit_verdicts_are_the_latest_per_model_and_suite(client, token, frozen_clock):
    from assurance.tests.support import make_suite, make_version

    now = timezone.now()
    coder = make_version("coder-1")
    garak, promptfoo = make_suite("garak-weekly"), make_suite("promptfoo-daily", source="promptfoo")
    audit_run(garak, coder, "pass", at=now - timedelta(days=2))
    audit_run(garak, coder, "fail", at=now - timedelta(hours=1))
    # An inconclusive run the committee decided counts as its decision.
    audit_run(promptfoo, coder, "inconclusive", at=now - timedelta(hours=2), decided="pass")
    values = samples(scrape(client))
    verdicts = {k[1]: v for k, v in values.items() if k[0] == "fsar_audit_verdict"}
    assert verdicts == {
        (("model", "coder-1"), ("suite", "garak-weekly"), ("verdict", "fail")): 1,
        (("model", "coder-1"), ("suite", "promptfoo-daily"), ("verdict", "pass")): 1,
    }
    at = values[("fsar_audit_verdict_timestamp_seconds", (("model", "coder-1"), ("suite", "garak-weekly")))]
    assert at == (now - timedelta(hours=1)).timestamp()


def test_model_labels_are_bounded_by_registered_versions_approved_first(client, token, monkeypatch):
    """The AI side can register versions: a flood of them never pushes an approved
    version out of the labels, and a retired one is never a label."""
    from assurance.tests.support import make_suite, make_version

    monkeypatch.setattr(readings, "MODEL_LABELS_MAX", 3)
    suite = make_suite("garak-weekly", family_glob="")
    approved = make_version("approved-old", status="approved")
    make_version("retired-1", status="retired")
    flood = [make_version(f"flood-{i}", status="pending_review") for i in range(5)]
    for version in (approved, *flood):
        audit_run(suite, version, "pass")
    values = samples(scrape(client))
    models = {dict(k[1])["model"] for k in values if k[0] == "fsar_audit_verdict"}
    assert models == {"approved-old", "flood-4", "flood-3"}
    assert values[("fsar_metrics_model_labels", ())] == 3


def test_a_simulated_history_exports_committee_series_and_registered_models_only(client, token):
    """indicators' own simulation writes the series as the periodic job does: the
    committee's and each registered model's are exported, an unregistered model's
    (model-c) omitted and counted, no reviewer's at all."""
    from django.core.management import call_command

    from assurance.tests.support import make_version

    call_command("simulate_oversight", "--days", "3", "--seed", "1", "--tasks-per-day", "5", "--cases-per-day", "2")
    make_version("model-a")
    make_version("model-b")
    values = samples(scrape(client))
    exported = [dict(k[1]) for k in values if k[0] == "fsar_indicator_value"]
    assert {e["series"] for e in exported if not e["model"]} >= {"committee.approval_rate", "committee.decide_s"}
    assert {e["model"] for e in exported} == {"", "model-a", "model-b"}
    assert {e["series"] for e in exported if e["model"] == "model-a"} >= {"model.p95_ms", "model.failure_rate"}
    assert not [e for e in exported if e["series"].startswith("reviewer.")]
    assert values[("fsar_metrics_omitted_series", (("family", "fsar_indicator_value"),))] > 0


@pytest.mark.adversary
def test_the_ai_registering_many_versions_cannot_push_an_approved_model_out_of_the_labels(
    client, token, monkeypatch, make_api_key
):
    from assurance.tests.support import make_suite, make_version
    from deployments.models import ModelVersion
    from fsar.testing import version_body

    monkeypatch.setattr(readings, "MODEL_LABELS_MAX", 3)
    suite = make_suite("garak-weekly", family_glob="")
    approved = make_version("approved-model", status="approved")
    audit_run(suite, approved, "fail")
    _, secret = make_api_key(scopes=("models",))
    for i in range(5):
        answer = client.post(
            "/api/v1/models/versions",
            data=version_body(f"ai-flood-{i}"),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
        assert answer.status_code in (200, 201), answer.content
    # The door was reached: the flood's versions exist, newer than the approved one.
    assert ModelVersion.objects.filter(ai_model__startswith="ai-flood-").count() == 5
    values = samples(scrape(client))
    assert values[("fsar_metrics_model_labels", ())] == 3
    failing = (("model", "approved-model"), ("suite", "garak-weekly"), ("verdict", "fail"))
    assert values[("fsar_audit_verdict", failing)] == 1


def label_names_and_values(values) -> tuple[set[str], set[str]]:
    pairs = [pair for _, labels in values for pair in labels]
    return {name for name, _ in pairs}, {value for _, value in pairs}


def test_rule_labels_are_bounded_and_the_rest_folded_into_other():
    rows = [(("hold", f"rule-{i}"), 10 - i) for i in range(6)]
    kept = bounded(rows, limit=3)
    assert kept[:3] == [(("hold", "rule-0"), 10), (("hold", "rule-1"), 9), (("hold", "rule-2"), 8)]
    assert kept[3:] == [(("hold", OTHER), 7 + 6 + 5)]
    # A rule that is really called "other" and kept: the rest is added to it, never a second series.
    rows = [(("deny", OTHER), 20), *rows]
    assert bounded(rows, limit=3) == [
        (("deny", OTHER), 20),
        (("hold", "rule-0"), 10),
        (("hold", "rule-1"), 9),
        (("hold", OTHER), 8 + 7 + 6 + 5),
    ]


def test_indicator_values_of_model_and_committee_series_never_a_reviewers(client, token, alice, frozen_clock):
    from assurance.tests.support import make_version

    now = timezone.now()
    make_version("coder-1")
    series("model.p95_ms", "model", value=4200.0, at=now, task_type="implement_idea", ai_model="coder-1")
    series("committee.approval_rate", "committee", value=0.75, at=now - timedelta(hours=1))
    series("reviewer.approval_rate", "reviewer", value=1.0, at=now, member=alice, member_id=str(alice.pk))
    # The AI side writes execution_tasks.ai_model: a name no registered version has is no label.
    series("model.p95_ms", "model", value=1.0, at=now, task_type="implement_idea", ai_model="made-up-by-the-ai")
    values = samples(scrape(client))
    indicators = {k[1]: v for k, v in values.items() if k[0] == "fsar_indicator_value"}
    assert indicators == {
        (("model", "coder-1"), ("series", "model.p95_ms"), ("task_type", "implement_idea")): 4200.0,
        (("model", ""), ("series", "committee.approval_rate"), ("task_type", "")): 0.75,
    }
    assert values[("fsar_indicator_latest_point_timestamp_seconds", ())] == now.timestamp()
    assert values[("fsar_metrics_omitted_series", (("family", "fsar_indicator_value"),))] == 1
    names, label_values = label_names_and_values(values)
    assert not any(v.startswith("reviewer.") for v in label_values)
    assert {"made-up-by-the-ai", "alice", str(alice.pk)}.isdisjoint(label_values)
    assert "member" not in names and "member_id" not in names


def test_open_alerts_by_kind_state_and_model_never_naming_the_member(client, token, alice, bob):
    from assurance.tests.support import make_version

    make_version("coder-1")
    alert("drift", ai_model="coder-1")
    alert("drift", ai_model="coder-1", state="acknowledged", dedup="drift:other-series")
    alert("drift", ai_model="unregistered-model")
    alert("trust_inflation", member=alice)
    alert("honeypot", member=bob, state="acknowledged")
    alert("drift", ai_model="coder-1", state="resolved", dedup="drift:old")
    values = samples(scrape(client))

    def open_(kind, state, model=""):
        return values[("fsar_indicator_alerts_open", (("kind", kind), ("model", model), ("state", state)))]

    assert open_("drift", "firing", "coder-1") == 1
    assert open_("drift", "acknowledged", "coder-1") == 1
    assert open_("drift", "firing", "other") == 1
    assert open_("trust_inflation", "firing") == 1
    assert open_("honeypot", "acknowledged") == 1
    assert open_("committee_inflation", "firing") == 0
    names, label_values = label_names_and_values(values)
    assert {"alice", "bob", str(alice.pk), str(bob.pk)}.isdisjoint(label_values)
    assert "member" not in names


# Its cost -----------------------------------------------------------------------


def test_a_scrape_makes_at_most_ten_queries_and_the_same_for_few_rows_and_many(client, agent, token):
    from assurance.tests.support import make_suite, make_version

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            scrape(client)
        return len(ctx.captured_queries)

    suite = make_suite("garak-weekly", family_glob="")
    counts = []
    for i in range(6):
        version = make_version(f"m-{i}")
        audit_run(suite, version, "pass")
        register_task(agent, f"t{i}", ai_model=f"m-{i}")
        make_case("tasks", opened=timezone.now() - timedelta(days=i))
        series("model.p95_ms", "model", value=i, at=timezone.now(), task_type="implement_idea", ai_model=f"m-{i}")
        alert("drift", ai_model=f"m-{i}")
        counts.append(count())
    assert len(set(counts)) == 1, counts
    full = counts[-1]
    assert full <= 10, full


def test_check_deploy_warns_about_a_guessable_metrics_token(settings):
    from fsar.checks import check_metrics_token

    settings.METRICS_TOKEN = "short"
    assert [w.id for w in check_metrics_token(None)] == ["fsar.W002"]
    settings.METRICS_TOKEN = TOKEN
    assert check_metrics_token(None) == []
    settings.METRICS_TOKEN = ""
    assert check_metrics_token(None) == []
