"""POST/GET /api/v1/models/versions: registration with the criteria's decision,
retries, conflicts, bad input, reads and pages, scopes."""

import json

import pytest

from audit.chain import verify_chain
from audit.models import AuditEntry
from deployments.models import ModelVersion
from fsar.testing import SHA, register_version, version_body
from reviews.models import Case, CaseStatus

pytestmark = pytest.mark.django_db


def test_registering_a_version_answers_201_with_a_committee_case(ai, models_key):
    response = register_version(ai)
    assert response.status_code == 201
    body = response.json()
    assert (body["family"], body["ai_model"], body["status"]) == ("coder", "coder-2026-12", "pending_review")
    gate = body["gate"]
    assert (gate["decision"], gate["policy"]) == ("hold", "new-version-hold")
    assert gate["case"] == body["case"] and body["case_status"] == "open"
    case = Case.objects.get(pk=gate["case"])
    assert (case.kind, case.subject_ref, case.quorum, case.status) == (
        "model",
        f"model-version:{body['id']}",
        2,
        CaseStatus.OPEN,
    )
    version = ModelVersion.objects.get()
    assert version.registered_by_key == models_key[0]
    assert [h.history_change_reason for h in version.history.order_by("history_date")] == [
        "registered; criteria: hold (new-version-hold)",
        f"review case {case.pk} opened",
    ]
    assert version.history.first().history_api_key_id == models_key[0].pk
    entry = AuditEntry.objects.get(kind="model_version.registered")
    assert entry.subject == f"model_version:{version.pk}"
    assert entry.data["case"] == case.pk and entry.data["artifact_sha256"] == SHA
    assert verify_chain().ok


def test_a_version_without_failure_rate_is_blocked_naming_the_rule_and_the_missing_metric(ai):
    response = register_version(ai, evaluation={"p95_ms": 4000})
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "blocked"
    assert body["case"] is None
    gate = body["gate"]
    assert (gate["decision"], gate["policy"], gate["values"]) == (
        "deny",
        "missing-failure-rate-block",
        {"missing": ["failure_rate"]},
    )
    assert "failure_rate" in gate["reason"]
    assert not Case.objects.exists()


def test_the_same_body_again_answers_200_with_the_same_version(ai):
    first = register_version(ai).json()
    again = register_version(ai)
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    # Upper-case hex is the same hash.
    assert register_version(ai, artifact_sha256=SHA.upper()).status_code == 200
    assert ModelVersion.objects.count() == 1 and Case.objects.count() == 1


def test_the_same_ai_model_with_other_fields_is_409_naming_them(ai):
    register_version(ai)
    response = register_version(ai, artifact_sha256="cd" * 32, evaluation={"failure_rate": 0.0})
    assert response.status_code == 409
    assert response.json()["fields"] == ["artifact_sha256", "evaluation"]
    assert "coder-2026-12" in response.json()["detail"]
    assert ModelVersion.objects.get().artifact_sha256 == SHA


@pytest.mark.parametrize(
    "fields,field",
    [
        ({"artifact_sha256": "xyz" + "0" * 61}, "artifact_sha256"),
        ({"artifact_sha256": "ab"}, "artifact_sha256"),
        ({"artifact_uri": "not a uri"}, "artifact_uri"),
        ({"family": "co der"}, "family"),
        ({"family": ""}, "family"),
        ({"ai_model": ""}, "ai_model"),
        ({"ai_model": "x" * 201}, "ai_model"),
        ({"ai_model": " padded"}, "ai_model"),
        ({"ai_model": "nul\u0000model"}, "ai_model"),
        ({"health_url": "ftp://example.com/health"}, "health_url"),
        ({"evaluation": {"failure_rate": "0.1"}}, "evaluation.failure_rate"),
        ({"evaluation": {"failure_rate": True}}, "evaluation.failure_rate"),
        ({"evaluation": {"Failure Rate": 0.1}}, "evaluation"),
        ({"evaluation": {f"m{i}": 1 for i in range(51)}}, "evaluation"),
        ({"evaluation": {"failure_rate": 1e300}}, "evaluation.failure_rate"),
        ({"evaluation": [0.1]}, "evaluation"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_stores_nothing(ai, fields, field):
    response = register_version(ai, **fields)
    assert response.status_code == 422, response.content
    body = response.json()
    named = body.get("field") or body["errors"][0]["field"]
    assert named == field, body
    assert (
        not ModelVersion.objects.exists()
        and not Case.objects.exists()
        and not AuditEntry.objects.filter(kind__startswith="model_version").exists()
    )


def test_nan_in_the_evaluation_is_422(ai):
    body = version_body("m1", evaluation={"failure_rate": 0.5})
    text = json.dumps(body).replace("0.5", "NaN")
    response = ai.post("/api/v1/models/versions", data=text, content_type="application/json")
    assert response.status_code == 422
    assert not ModelVersion.objects.exists()


def test_get_answers_status_approval_expiry_case_and_evaluation(ai, approve_version):
    body = register_version(ai, ai_model="org/coder:2026.12").json()
    approve_version(body["case"])
    response = ai.get("/api/v1/models/versions/org/coder:2026.12")
    assert response.status_code == 200
    got = response.json()
    assert (got["status"], got["case"], got["case_status"]) == ("approved", body["case"], "approved")
    assert got["approved_until"] is not None
    assert got["evaluation"] == {"failure_rate": 0.03, "p95_ms": 4200.0, "red_team_pass_rate": 0.95}
    missing = ai.get("/api/v1/models/versions/ghost-model")
    assert missing.status_code == 404 and "ghost-model" in missing.json()["detail"]


def test_the_list_is_keyset_paged_and_filtered_by_family_and_status(ai):
    for i in range(5):
        register_version(ai, ai_model=f"coder-{i}")
    register_version(ai, ai_model="writer-1", family="writer")
    register_version(ai, ai_model="coder-blocked", evaluation={})
    page = ai.get("/api/v1/models/versions?family=coder&status=pending_review&limit=3").json()
    assert [v["ai_model"] for v in page["items"]] == ["coder-4", "coder-3", "coder-2"]
    rest = ai.get(f"/api/v1/models/versions?family=coder&status=pending_review&limit=3&cursor={page['next_cursor']}")
    assert [v["ai_model"] for v in rest.json()["items"]] == ["coder-1", "coder-0"]
    assert rest.json()["next_cursor"] is None
    blocked = ai.get("/api/v1/models/versions?status=blocked").json()["items"]
    assert [v["ai_model"] for v in blocked] == ["coder-blocked"]
    assert ai.get("/api/v1/models/versions?status=bogus").status_code == 422
    assert ai.get("/api/v1/models/versions?cursor=%%%").status_code == 422


def test_registering_needs_the_models_scope_and_reading_models_or_read(client, make_api_key):
    _, tasks_only = make_api_key(scopes=("tasks", "read"))
    response = client.post(
        "/api/v1/models/versions",
        data=version_body(),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {tasks_only}",
    )
    assert response.status_code == 403 and "models" in response.json()["detail"]
    assert not ModelVersion.objects.exists()
    assert client.get("/api/v1/models/versions", HTTP_AUTHORIZATION=f"Bearer {tasks_only}").status_code == 200
    _, models_only = make_api_key(scopes=("models",))
    assert client.get("/api/v1/models/versions", HTTP_AUTHORIZATION=f"Bearer {models_only}").status_code == 200
    _, neither = make_api_key(scopes=("tasks",))
    assert client.get("/api/v1/models/versions", HTTP_AUTHORIZATION=f"Bearer {neither}").status_code == 403
    assert client.get("/api/v1/models/versions").status_code == 401


def test_the_openapi_schema_documents_the_model_endpoints(client, operator):
    client.force_login(operator)
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert "post" in paths["/api/v1/models/versions"] and "get" in paths["/api/v1/models/versions"]
    assert "get" in paths["/api/v1/models/versions/{ai_model}"]
