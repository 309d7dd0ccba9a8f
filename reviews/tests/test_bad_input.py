"""Bad input found by fuzzing: a 4xx naming the field, and nothing stored."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from fsar.testing import report_md
from reviews.models import Report

pytestmark = pytest.mark.django_db


def refused(response, field: str):
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["field"] == field, body
    assert body["detail"].startswith(f"{field}:"), body
    assert Report.objects.count() == 0
    return body


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_timestamp_out_of_range_in_utc_is_refused_in_either_form(post_report, timestamp):
    markdown = report_md("r-ts").replace("2026-02-01T10:00:00Z", timestamp)
    assert "out of range" in refused(post_report(markdown), "timestamp")["detail"]
    record = {"id": "r-ts", "timestamp": timestamp, "proposal": "p", "severity": 1, "block_execution": False}
    refused(post_report(json.dumps(record), "application/json"), "timestamp")


def test_a_severity_of_thousands_of_digits_is_above_the_maximum(post_report):
    markdown = report_md("r-sev").replace("- severity: 6", "- severity: " + "9" * 5000)
    assert "above the maximum" in refused(post_report(markdown), "severity")["detail"]


@pytest.mark.parametrize(
    "raw",
    [b'{"id": ' + b"[" * 50_000, b'{"id": "r", "severity": ' + b"9" * 5000 + b"}"],
    ids=["nested too deeply", "integer of 5000 digits"],
)
def test_json_that_python_cannot_load_is_invalid_json_not_a_500(agent, raw):
    response = agent.post("/api/v1/proposals", data=raw, content_type="application/json")
    assert "not valid JSON" in refused(response, "body")["detail"]


@pytest.mark.parametrize(
    "where,field",
    [("implement_idea: add a cache", "proposal"), ("r-nul", "id"), ("- it might break", "risks[0]")],
)
def test_a_nul_character_is_refused_naming_the_field(post_report, where, field):
    markdown = report_md("r-nul").replace(where, where[:-1] + "\x00" + where[-1], 1)
    assert "NUL" in refused(post_report(markdown), field)["detail"]


def test_a_nul_escaped_in_json_is_refused_too(post_report):
    record = {"id": "r-j", "timestamp": "2026-02-01T10:00:00Z", "proposal": "p\u0000", "severity": 1}
    record["block_execution"] = False
    refused(post_report(json.dumps(record), "application/json"), "proposal")


def test_reading_a_report_id_with_a_nul_is_a_json_404(agent):
    response = agent.get("/api/v1/proposals/a%00b")
    assert response.status_code == 404
    assert "No report with id" in response.json()["detail"]


def test_an_uploaded_file_the_parser_cannot_load_is_an_invalid_outcome(client, operator):
    client.force_login(operator)
    files = [
        SimpleUploadedFile("deep.json", b"[" * 50_000),
        SimpleUploadedFile(
            "old.md", report_md("up-1").replace("2026-02-01T10:00:00Z", "0001-01-01T00:00:00+05:00").encode()
        ),
    ]
    response = client.post("/reviews/upload/", {"files": files})
    assert response.status_code == 200
    outcomes = {o.filename: o for o in response.context["outcomes"]}
    assert outcomes["deep.json"].outcome == "invalid" and "nested too deeply" in outcomes["deep.json"].detail
    assert outcomes["old.md"].outcome == "invalid" and outcomes["old.md"].detail.startswith("timestamp:")
    assert Report.objects.count() == 0


def test_an_export_range_ending_on_the_last_representable_day_is_a_form_error(client, operator):
    client.force_login(operator)
    response = client.get("/reviews/export/", {"start": "9999-12-31", "end": "9999-12-31", "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "end" in response.context["form"].errors
