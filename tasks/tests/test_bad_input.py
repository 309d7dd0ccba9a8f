"""Bad input found by fuzzing the agent API: a 422 naming the field, and nothing stored."""

import json

import pytest

from tasks.api import BACKFILL_DATETIME_RULE
from tasks.models import ExecutionTask

pytestmark = pytest.mark.django_db


def post(client, url, body: str):
    return client.post(url, body, content_type="application/json")


def refused(response, field: str, words: str):
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["detail"].startswith(f"{field}: "), body
    assert words in body["detail"], body
    return body


@pytest.mark.parametrize(
    "fields,field",
    [
        ({"external_id": "run\u0000"}, "external_id"),
        ({"customer": "cust\u0000"}, "customer"),
        ({"ai_model": "\u0000"}, "ai_model"),
        ({"payload": {"note": "a\u0000b"}}, "payload"),
        ({"payload": {"\u0000": 1}}, "payload"),
    ],
)
def test_a_nul_character_in_a_registration_is_refused_by_name(agent, fields, field):
    body = json.dumps({"external_id": "run-1", "task_type": "implement_idea", **fields})
    refused(post(agent, "/api/v1/tasks", body), field, "NUL")
    assert not ExecutionTask.objects.exists()


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_a_payload_with_nan_or_infinity_is_refused_by_name(agent, number):
    body = '{"external_id": "run-1", "task_type": "implement_idea", "payload": {"n": [NUMBER]}}'.replace(
        "NUMBER", number
    )
    refused(post(agent, "/api/v1/tasks", body), "payload", "NaN or Infinity")
    assert not ExecutionTask.objects.exists()


def test_a_cancel_reason_with_a_nul_is_refused_and_the_task_stays(agent):
    task_id = post(agent, "/api/v1/tasks", json.dumps({"external_id": "run-1", "task_type": "implement_idea"})).json()
    refused(post(agent, f"/api/v1/tasks/{task_id['id']}/cancel", '{"reason": "\\u0000"}'), "reason", "NUL")
    assert ExecutionTask.objects.get().status == "registered"


@pytest.mark.parametrize(
    "started,finished",
    [
        ("0001-01-01T00:30:00+01:00", "0001-01-01T00:40:00+01:00"),  # before year 1 in UTC
        ("2026-01-01T00:00:00Z", "9999-12-31T23:30:00-01:00"),  # after year 9999 in UTC
        ("1969-12-31T23:00:00Z", "1969-12-31T23:10:00Z"),
        (1767225600, 1767225660),  # a number is not a date-time
        ("2026-01-01T00:00Z", "2026-01-01T00:10Z"),  # RFC 3339 has seconds
    ],
)
def test_a_backfill_datetime_outside_rfc_3339_and_the_years_2000_to_9998_names_its_row(agent, started, finished):
    row = {"external_id": "h-1", "task_type": "implement_idea", "status": "failed"}
    body = json.dumps({"tasks": [{**row, "started_at": started, "finished_at": finished}]})
    response = post(agent, "/api/v1/tasks/bulk", body)
    assert response.status_code == 422, response.content
    detail = response.json()["detail"]
    assert detail.startswith(("tasks[0].started_at: ", "tasks[0].finished_at: ")), detail
    assert detail.endswith(BACKFILL_DATETIME_RULE)
    assert not ExecutionTask.objects.exists()


@pytest.mark.parametrize("query", [{"until": "0.5"}, {"since": "1767225600"}, {"until": "2026-01-01"}])
def test_a_metrics_window_bound_is_a_date_time_string_never_a_number(agent, query):
    for path in ("/api/v1/metrics/tasks", "/api/v1/metrics/tasks/series"):
        response = agent.get(path, query)
        assert response.status_code == 422, response.content
        assert "RFC 3339" in response.json()["detail"]


def test_every_instant_the_schema_allows_fits_the_metrics_window_arithmetic(agent):
    """The earliest and latest date-times the pattern lets through, at the widest offsets."""
    for query in (
        {"since": "1970-01-01T00:00:00+23:59", "until": "1970-01-02T00:00:00+23:59"},
        {"since": "9998-12-31T00:00:00-23:59", "until": "9998-12-31T23:59:59.999999999-23:59"},
    ):
        assert agent.get("/api/v1/metrics/tasks", query).status_code == 200, query
        assert agent.get("/api/v1/metrics/tasks/series", {**query, "bucket": "hour"}).status_code == 200, query


def test_a_backfill_error_text_with_a_nul_names_its_row(agent):
    row = {"external_id": "h-1", "task_type": "implement_idea", "status": "failed", "error": "boom\u0000"}
    row |= {"started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:01:00Z"}
    refused(post(agent, "/api/v1/tasks/bulk", json.dumps({"tasks": [row]})), "tasks[0].error", "NUL")
    assert not ExecutionTask.objects.exists()


@pytest.mark.parametrize("name", ["customer", "external_id", "ai_model", "proposal_id"])
def test_a_list_filter_with_a_nul_is_a_422_naming_it(agent, name):
    refused(agent.get("/api/v1/tasks", {name: "a\x00"}), name, "NUL")


@pytest.mark.parametrize(
    "query,field",
    [
        ({"until": "0001-01-02T00:00:00Z"}, "until"),
        ({"until": "0001-01-01T00:00:00+01:00"}, "until"),
        ({"since": "1969-12-31T00:00:00Z", "until": "1970-01-02T00:00:00Z"}, "since"),
        ({"since": "9999-12-30T00:00:00Z", "until": "9999-12-31T00:00:00Z"}, "since"),
    ],
)
def test_a_metrics_window_at_the_edge_of_the_calendar_is_a_422_naming_the_bound(agent, query, field):
    for path in ("/api/v1/metrics/tasks", "/api/v1/metrics/tasks/series"):
        response = agent.get(path, {**query, "bucket": "hour"} if path.endswith("series") else query)
        assert response.status_code == 422, response.content
        assert response.json()["detail"].startswith(f"{field}: "), response.json()


def test_a_series_filter_on_a_model_with_a_nul_is_a_422(agent):
    refused(agent.get("/api/v1/metrics/tasks/series", {"ai_model": "m\x00"}), "ai_model", "NUL")
