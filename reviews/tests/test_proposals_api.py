"""POST/GET /api/v1/proposals: reports in through one service, with the gate's decision."""

import json

import pytest

from fsar.testing import report_md
from reviews import services
from reviews.models import Case, CaseStatus, Report
from reviews.reports import parse_markdown

pytestmark = pytest.mark.django_db


def test_the_seed_report_is_stored_verbatim_and_allowed(post_report, seed_md):
    response = post_report(seed_md.decode())
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] == "fsar_23be25a2-d60f-4876-be4d-6b8deacdf09a"
    assert body["timestamp"] == "2026-01-01T20:18:04.343Z"
    assert body["severity"] == 6
    assert body["block_execution"] is False
    assert body["task_type"] == "self_improvement"
    assert len(body["risks"]) == 3 and len(body["mitigations"]) == 3
    assert "### Specific Improvements" in body["proposal"]
    assert "ALTER TABLE execution_tasks ADD COLUMN ai_model TEXT;" in body["proposal"]
    assert body["supersedes"] is None
    assert body["gate"]["decision"] == "allow"
    assert body["gate"]["policy"] == "default-allow"
    assert body["gate"]["case"] is None
    report = Report.objects.get()
    assert report.raw == seed_md.decode()
    assert report.raw_format == "markdown"


def test_the_same_report_again_in_either_form_is_a_no_op(post_report, seed_md):
    assert post_report(seed_md.decode()).status_code == 201
    assert post_report(seed_md.decode().replace("\n", "\r\n")).status_code == 200
    as_json = json.dumps(parse_markdown(seed_md).as_json())
    again = post_report(as_json, "application/json")
    assert again.status_code == 200
    assert again.json()["id"] == "fsar_23be25a2-d60f-4876-be4d-6b8deacdf09a"
    assert Report.objects.count() == 1


def test_the_same_id_with_a_different_record_is_a_conflict_naming_the_fields(post_report):
    assert post_report(report_md("r1")).status_code == 201
    response = post_report(report_md("r1", severity=7, proposal="other"))
    assert response.status_code == 409
    assert response.json()["fields"] == ["severity", "proposal"]
    assert Report.objects.get().severity == 6


@pytest.mark.parametrize(
    "severity,block,decision,policy,quorum,status",
    [
        (50, False, "hold", "severity-50-hold", 3, CaseStatus.OPEN),
        (6, True, "hold", "block-execution-hold", 2, CaseStatus.OPEN),
        (30, False, "hold", "severity-30-hold", 2, CaseStatus.OPEN),
        (10, False, "allow", "default-allow", 1, CaseStatus.ADVISORY),
    ],
)
def test_the_default_policy(post_report, severity, block, decision, policy, quorum, status):
    response = post_report(report_md("r1", severity=severity, block=block))
    assert response.status_code == 201
    gate = response.json()["gate"]
    assert (gate["decision"], gate["policy"]) == (decision, policy)
    case = Case.objects.get(pk=gate["case"])
    assert case.quorum == quorum
    assert case.status == status
    assert gate["case_status"] == status
    assert gate["values"]  # the values the rule compared are stored and shown


def test_a_decision_stores_the_values_it_compared(post_report):
    gate = post_report(report_md("r1", severity=60)).json()["gate"]
    assert gate["values"] == {"severity": 60, "severity_min": 50}
    assert "severity=60" in gate["reason"]


@pytest.mark.parametrize(
    "body,content_type,field",
    [
        (
            '{"id": "x", "timestamp": "2026-01-01T00:00:00Z", "proposal": "p", "severity": "6", '
            '"block_execution": false}',
            "application/json",
            "severity",
        ),
        (
            '{"id": "x", "timestamp": "2026-01-01T00:00:00Z", "proposal": "p", "severity": 6.5, '
            '"block_execution": false}',
            "application/json",
            "severity",
        ),
        (
            '{"id": "x", "timestamp": "2026-01-01T00:00:00Z", "proposal": "p", "severity": 6, '
            '"block_execution": "true"}',
            "application/json",
            "block_execution",
        ),
        ("{not json", "application/json", "body"),
        ("# FSAR Proposal Report\n- id: x\n", "text/markdown", "timestamp"),
        ("hello", "application/x-www-form-urlencoded", "content_type"),
    ],
)
def test_malformed_reports_are_422_naming_the_field_and_store_nothing(post_report, body, content_type, field):
    response = post_report(body, content_type)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert field in response.json()["detail"]
    assert not Report.objects.exists()
    assert not Case.objects.exists()


def test_a_report_over_one_mebibyte_is_413(post_report):
    response = post_report("x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_submitting_needs_the_reports_scope(client, make_api_key):
    _, secret = make_api_key(scopes=["tasks"])
    response = client.post(
        "/api/v1/proposals", data=report_md("r1"), content_type="text/markdown", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert response.status_code == 403


def test_get_shows_the_case_status_and_rationale_once_decided(agent, post_report, alice):
    case_id = post_report(report_md("r1", severity=30)).json()["gate"]["case"]
    before = agent.get("/api/v1/proposals/r1").json()["gate"]
    assert (before["case_status"], before["rationale"]) == ("open", None)
    services.case_decide(case_id=case_id, decision="rejected", by=alice, rationale="Too risky for now.")
    after = agent.get("/api/v1/proposals/r1").json()["gate"]
    assert (after["case_status"], after["rationale"]) == ("rejected", "Too risky for now.")


def test_an_unknown_report_is_404(agent):
    response = agent.get("/api/v1/proposals/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_a_revision_joins_the_case_of_the_report_it_supersedes(post_report, alice):
    first = post_report(report_md("r1", severity=30)).json()["gate"]["case"]
    services.case_decide(case_id=first, decision="changes_requested", by=alice, rationale="Say how to roll back.")
    response = post_report(report_md("r2", severity=30, supersedes="r1", proposal="implement_idea: with rollback"))
    assert response.status_code == 201
    body = response.json()
    assert body["supersedes"] == "r1"
    assert body["gate"]["case"] == first
    assert Case.objects.get(pk=first).status == CaseStatus.OPEN
    assert Case.objects.count() == 1


def test_a_revision_of_an_unknown_report_is_422(post_report):
    response = post_report(report_md("r2", supersedes="ghost"))
    assert response.status_code == 422
    assert response.json()["field"] == "supersedes"


def test_a_rejected_proposal_resubmitted_is_linked_and_never_allowed_without_a_decision(post_report, alice):
    case_id = post_report(report_md("r1", severity=30, proposal="implement_idea: scrape   everything")).json()["gate"][
        "case"
    ]
    services.case_decide(case_id=case_id, decision="rejected", by=alice, rationale="No.")
    # Lower severity, whitespace changed: still the same proposal.
    response = post_report(report_md("r9", severity=1, proposal="implement_idea: scrape everything\n"))
    gate = response.json()["gate"]
    assert gate["decision"] == "hold"
    assert gate["rejected_precedent"] == "r1"
    assert gate["case"] != case_id
    assert "rejected before" in gate["reason"]
    # Case is kept: a different case does not match.
    other = post_report(report_md("r10", severity=1, proposal="implement_idea: Scrape everything")).json()["gate"]
    assert other["decision"] == "allow"


def test_the_openapi_schema_documents_both_report_forms(client, operator):
    client.force_login(operator)
    schema = client.get("/api/v1/openapi.json").json()
    post = schema["paths"]["/api/v1/proposals"]["post"]
    assert set(post["requestBody"]["content"]) == {"text/markdown", "application/json"}
    assert "/api/v1/proposals/{report_id}" in schema["paths"]


def test_a_held_revision_says_it_joins_its_case_unless_a_rejected_precedent_held_it(post_report, alice):
    """The reason a revision stores: held by its rule, it names the report it revises
    and the case it joins; allowed by its rule but held because the same proposal was
    rejected before, it gives that reason alone (the decision says which, not the text)."""
    rejected = post_report(report_md("r1", severity=30, proposal="implement_idea: scrape everything")).json()["gate"]
    services.case_decide(case_id=rejected["case"], decision="rejected", by=alice, rationale="No.")
    case = post_report(report_md("r2", severity=30, proposal="implement_idea: a cache")).json()["gate"]["case"]

    by_rule = post_report(
        report_md("r3", severity=30, supersedes="r2", proposal="implement_idea: scrape everything")
    ).json()["gate"]
    assert by_rule["decision"] == "hold" and by_rule["case"] == case
    assert by_rule["rejected_precedent"] == "r1"
    assert by_rule["reason"].endswith(f"; revision of r2, joins case {case}")
    assert not by_rule["reason"].startswith("the same proposal")

    by_precedent = post_report(
        report_md("r4", severity=1, supersedes="r3", proposal="implement_idea: scrape everything")
    ).json()["gate"]
    assert by_precedent["decision"] == "hold" and by_precedent["case"] == case
    assert by_precedent["reason"] == (
        f"the same proposal was rejected before (report r1, case {rejected['case']}); it needs a committee decision"
    )


def test_an_allowed_revision_of_an_advisory_case_keeps_it_advisory(post_report):
    first = post_report(report_md("r1", severity=10)).json()["gate"]
    assert first["case_status"] == CaseStatus.ADVISORY
    revision = post_report(report_md("r2", severity=12, supersedes="r1", proposal="implement_idea: a smaller cache"))
    gate = revision.json()["gate"]
    assert (gate["decision"], gate["case"], gate["case_status"]) == ("allow", first["case"], CaseStatus.ADVISORY)
    assert gate["reason"].endswith("; severity 12 ≥ 10 opens an advisory case")
    assert Case.objects.get(pk=first["case"]).version == 2
