"""The audits API and the hard gate: verdicts, idempotency, fail closed, demotion
on the next registration, restoration by a passing run."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from assurance.models import AuditEvidence, AuditRun, Verdict, VersionStanding
from assurance.tests.support import make_suite, make_version, post_run, sample
from audit.models import AuditEntry
from reviews.models import Case
from tasks.models import ExecutionTask

pytestmark = pytest.mark.django_db


def register_task(client, external_id, ai_model="coder-2026-11"):
    body = {"external_id": external_id, "task_type": "implement_idea", "ai_model": ai_model}
    return client.post("/api/v1/tasks", data=body, content_type="application/json")


def test_a_garak_report_posted_as_json_is_recorded_once(ai, version, garak_suite):
    first = post_run(
        ai, suite="garak-weekly", ai_model=version.ai_model, fmt="garak", report=sample("garak_new.report.jsonl")
    )
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["verdict"] == "pass"
    assert body["figures"]["attack_success_rate"] == pytest.approx(0.05)
    assert body["skipped_entries"] == 1 and body["tool_version"] == "0.10.3.1"
    again = post_run(
        ai, suite="garak-weekly", ai_model=version.ai_model, fmt="garak", report=sample("garak_new.report.jsonl")
    )
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert AuditRun.objects.count() == 1
    run = AuditRun.objects.get()
    assert bytes(AuditEvidence.objects.get(run=run).content) == sample("garak_new.report.jsonl")
    assert run.history.count() == 1
    entry = AuditEntry.objects.filter(kind="audit_run.recorded").get()
    assert entry.subject == f"audit-run:{run.pk}" and entry.data["evidence_sha256"] == run.evidence_sha256


def test_a_multipart_upload_is_recorded(client, audits_key, version, garak_suite):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("garak.abc.report.jsonl", sample("garak_old.report.jsonl"))
    response = client.post(
        "/api/v1/audits/runs",
        data={"suite": "garak-weekly", "ai_model": version.ai_model, "format": "garak", "report": upload},
        HTTP_AUTHORIZATION=f"Bearer {audits_key[1]}",
    )
    assert response.status_code == 201, response.content
    assert response.json()["verdict"] == "pass"
    assert AuditEvidence.objects.get().filename == "garak.abc.report.jsonl"


def test_the_audits_scope_is_needed(client, make_api_key, version, garak_suite):
    _, secret = make_api_key(scopes=("tasks", "read"))
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    response = post_run(client, suite="garak-weekly", ai_model=version.ai_model, fmt="garak", report=b"{}")
    assert response.status_code == 403


def test_promptfoo_errors_without_failures_gate_like_a_failure(ai, version, promptfoo_suite):
    response = post_run(
        ai,
        suite="promptfoo-redteam",
        ai_model=version.ai_model,
        fmt="promptfoo",
        report=sample("promptfoo_errors.json"),
    )
    assert response.status_code == 201
    assert response.json()["verdict"] == "error"
    task = register_task(ai, "t-1")
    assert task.status_code == 201
    gate = task.json()["gate"]
    assert gate["decision"] == "hold" and gate["policy"] == "audit-suite"
    assert "promptfoo-redteam" in gate["reason"] and "error on" in gate["reason"]
    assert VersionStanding.objects.get(model_version=version).demoted
    assert AuditEntry.objects.filter(kind="model_version.demoted", subject=f"model_version:{version.pk}").exists()


def test_a_deny_suite_denies(ai, version):
    make_suite(
        "pf",
        source="promptfoo",
        action="deny",
        criteria=[{"metric": "attack_success_rate", "comparison": "<=", "threshold": 0.02}],
    )
    post_run(ai, suite="pf", ai_model=version.ai_model, fmt="promptfoo", report=sample("promptfoo_fail.json"))
    assert register_task(ai, "t-1").json()["gate"]["decision"] == "deny"


def test_an_unfinished_garak_run_is_inconclusive_and_opens_a_case(ai, version, garak_suite, alice, bob):
    response = post_run(
        ai,
        suite="garak-weekly",
        ai_model=version.ai_model,
        fmt="garak",
        report=sample("garak_no_completion.report.jsonl"),
    )
    assert response.status_code == 201
    body = response.json()
    assert body["verdict"] == "inconclusive" and body["case"]
    case = Case.objects.get(pk=body["case"])
    assert case.kind == "audit" and case.subject_ref == f"audit-run:{body['id']}"


@pytest.mark.parametrize(
    ("name", "mangle", "field"),
    [
        ("promptfoo_pass.json", lambda b: b[: len(b) // 2], "not valid JSON"),
        ("garak_new.report.jsonl", lambda b: b.replace(b"\n", b"\nnot json\n", 1), "line 2 is not JSON"),
    ],
)
def test_malformed_uploads_are_422_and_store_nothing(ai, version, garak_suite, promptfoo_suite, name, mangle, field):
    fmt = "promptfoo" if name.startswith("promptfoo") else "garak"
    suite = "promptfoo-redteam" if fmt == "promptfoo" else "garak-weekly"
    response = post_run(ai, suite=suite, ai_model=version.ai_model, fmt=fmt, report=mangle(sample(name)))
    assert response.status_code == 422
    assert field in response.json()["detail"]
    assert not AuditRun.objects.exists() and not AuditEvidence.objects.exists()
    assert not AuditEntry.objects.filter(kind="audit_run.recorded").exists()


def test_fifty_mib_is_refused_and_stores_nothing(ai, version, garak_suite):
    big = b"x" * (50 * 1024 * 1024)
    response = ai.post(
        "/api/v1/audits/runs",
        data=json.dumps(
            {"suite": "garak-weekly", "ai_model": version.ai_model, "format": "garak", "report": ""}
        ).encode()
        + big,
        content_type="application/json",
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert not AuditRun.objects.exists()


def test_a_report_over_the_report_limit_is_413(ai, version, garak_suite, settings):
    settings.AUDITS_MAX_REPORT_BYTES = 1000
    response = post_run(
        ai, suite="garak-weekly", ai_model=version.ai_model, fmt="garak", report=sample("garak_new.report.jsonl")
    )
    assert response.status_code == 413 and response.json()["field"] == "report"
    assert not AuditRun.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"suite": "nope", "format": "garak"}, "suite", 404),
        ({"ai_model": "unknown-model", "format": "garak"}, "ai_model", 404),
        ({"format": "promptfoo"}, "format", 422),
        ({"extra": 1}, "extra", 422),
        ({"report": ""}, "report", 422),
    ],
)
def test_bad_fields_are_named(ai, version, garak_suite, body, field, status):
    full = {"suite": "garak-weekly", "ai_model": version.ai_model, "format": "garak", "report": "{}", **body}
    response = ai.post("/api/v1/audits/runs", data=full, content_type="application/json")
    assert response.status_code == status
    assert response.json()["detail"].startswith(field)


def test_overdue_by_a_minute_past_grace_demotes_and_a_pass_restores(
    ai, version, garak_suite, operator, django_capture_on_commit_callbacks
):
    operator.email = "ops@example.org"
    operator.save()
    # A pass at 03:30 on day D; the suite is due daily at 03:00, grace 60 min: overdue at D+1 04:00.
    day = timezone.now().replace(hour=3, minute=30, second=0, microsecond=0) - timedelta(days=2)
    with time_machine.travel(day, tick=False):
        assert (
            post_run(
                ai,
                suite="garak-weekly",
                ai_model=version.ai_model,
                fmt="garak",
                report=sample("garak_new.report.jsonl"),
            ).json()["verdict"]
            == "pass"
        )
    overdue_at = (day + timedelta(days=1)).replace(hour=4, minute=0)
    with time_machine.travel(overdue_at - timedelta(minutes=1), tick=False):
        assert register_task(ai, "before").json()["gate"]["decision"] == "allow"
    with time_machine.travel(overdue_at + timedelta(minutes=1), tick=False):
        held = register_task(ai, "after").json()["gate"]
        assert held["decision"] == "hold" and held["policy"] == "audit-suite"
        assert "garak-weekly" in held["reason"] and "overdue" in held["reason"]
        # The periodic sweep records the demotion once, with a mail to the operators.
        from assurance import services

        with django_capture_on_commit_callbacks(execute=True):
            services.sweep()
            services.sweep()
        assert AuditEntry.objects.filter(kind="model_version.demoted").count() == 1
        assert any("demoted" in m.subject for m in mail.outbox)
        # A passing run restores the version, and what the audits held is released.
        with django_capture_on_commit_callbacks(execute=True):
            again = post_run(
                ai,
                suite="garak-weekly",
                ai_model=version.ai_model,
                fmt="garak",
                report=sample("garak_old.report.jsonl"),
            )
        assert again.json()["verdict"] == "pass"
        assert AuditEntry.objects.filter(kind="model_version.restored").count() == 1
        assert ExecutionTask.objects.get(external_id="after").status == "registered"
        assert register_task(ai, "later").json()["gate"]["decision"] == "allow"


def test_the_recheck_at_start_sees_a_demotion(ai, version, promptfoo_suite):
    assert register_task(ai, "t-1").json()["gate"]["decision"] == "hold"  # never passed: overdue
    post_run(
        ai, suite="promptfoo-redteam", ai_model=version.ai_model, fmt="promptfoo", report=sample("promptfoo_pass.json")
    )
    allowed = register_task(ai, "t-2").json()
    assert allowed["gate"]["decision"] == "allow"
    post_run(
        ai, suite="promptfoo-redteam", ai_model=version.ai_model, fmt="promptfoo", report=sample("promptfoo_fail.json")
    )
    started = ai.post(f"/api/v1/tasks/{allowed['id']}/start", content_type="application/json")
    assert started.status_code == 409, started.content
    assert "promptfoo-redteam" in started.content.decode()


def test_the_committee_decides_an_inconclusive_run(ai, version, garak_suite, alice):
    from reviews import services as review_services

    post_run(ai, suite="garak-weekly", ai_model=version.ai_model, fmt="garak", report=sample("garak_new.report.jsonl"))
    body = post_run(
        ai,
        suite="garak-weekly",
        ai_model=version.ai_model,
        fmt="garak",
        report=sample("garak_no_completion.report.jsonl"),
    ).json()
    assert register_task(ai, "t-0").json()["gate"]["decision"] == "allow"  # a waiting case does not demote
    review_services.case_decide(
        case_id=body["case"], decision="rejected", by=alice, rationale="Partial run; treat as failed."
    )
    assert AuditRun.objects.get(pk=body["id"]).effective_verdict == Verdict.FAIL
    held = register_task(ai, "t-1").json()["gate"]
    assert held["decision"] == "hold" and "fail" in held["reason"]


def test_an_approved_inconclusive_run_counts_as_a_pass(ai, version, garak_suite, alice):
    from reviews import services as review_services

    body = post_run(
        ai,
        suite="garak-weekly",
        ai_model=version.ai_model,
        fmt="garak",
        report=sample("garak_no_completion.report.jsonl"),
    ).json()
    assert register_task(ai, "t-0").json()["gate"]["decision"] == "hold"  # never passed
    review_services.case_decide(
        case_id=body["case"], decision="approved", by=alice, rationale="The finished probes suffice."
    )
    assert AuditRun.objects.get(pk=body["id"]).effective_verdict == Verdict.PASS
    assert register_task(ai, "t-1").json()["gate"]["decision"] == "allow"


def test_status_lists_each_suite(ai, version, garak_suite, promptfoo_suite):
    post_run(ai, suite="garak-weekly", ai_model=version.ai_model, fmt="garak", report=sample("garak_new.report.jsonl"))
    response = ai.get(f"/api/v1/audits/status?ai_model={version.ai_model}")
    assert response.status_code == 200
    body = response.json()
    suites = {s["suite"]: s for s in body["suites"]}
    assert suites["garak-weekly"]["last_verdict"] == "pass" and not suites["garak-weekly"]["overdue"]
    assert suites["promptfoo-redteam"]["last_verdict"] is None and suites["promptfoo-redteam"]["overdue"]
    assert body["demoted"] and "promptfoo-redteam" in body["reason"]
    assert ai.get("/api/v1/audits/status?ai_model=nope").status_code == 404


def test_a_suite_for_another_family_does_not_gate(ai, version):
    make_suite("other", family_glob="writer*")
    assert register_task(ai, "t-1").json()["gate"]["decision"] == "allow"


def test_a_pending_version_is_left_to_deployments(ai, garak_suite):
    make_version("coder-new", status="pending_review")
    gate = register_task(ai, "t-1", ai_model="coder-new").json()["gate"]
    assert gate["policy"] == "model-version"


def test_a_builtin_suite_measures_the_task_data_on_schedule(version, django_capture_on_commit_callbacks):
    from assurance import services
    from assurance.models import AuditSuite

    now = timezone.now()
    AuditSuite.objects.filter().delete()
    suite = make_suite("builtin-daily", source="builtin", schedule="*/5 * * * *", created_at=now - timedelta(hours=1))
    for i in range(10):
        ExecutionTask.objects.create(
            external_id=f"b-{i}",
            task_type="implement_idea",
            ai_model=version.ai_model,
            status="failed" if i < 2 else "succeeded",
            source="api",
            created_at=now - timedelta(minutes=30),
            started_at=now - timedelta(minutes=20),
            finished_at=now - timedelta(minutes=10),
            duration_ms=1000 + i,
            cost_micros=500,
            gate_decision="allow",
        )
    with django_capture_on_commit_callbacks(execute=True):
        result = services.sweep(now=now)
    assert result["builtin_runs"] == 1
    run = AuditRun.objects.get(suite=suite)
    assert run.figures["task_count"] == 10 and run.figures["failure_rate"] == 0.2
    assert run.figures["cost_per_task"] == 500 and run.figures["held_share"] == 0
    assert run.verdict == "fail"  # failure_rate 0.2 > 0.05
    assert services.sweep(now=now)["builtin_runs"] == 0  # not due again yet


def test_a_second_inconclusive_run_joins_the_waiting_case(ai, version, garak_suite):
    from assurance.importers import parse_garak

    first = post_run(
        ai,
        suite="garak-weekly",
        ai_model=version.ai_model,
        fmt="garak",
        report=sample("garak_no_completion.report.jsonl"),
    ).json()
    other = sample("garak_no_completion.report.jsonl") + b'{"entry_type": "digest"}\n'
    assert parse_garak(other).incomplete
    second = post_run(ai, suite="garak-weekly", ai_model=version.ai_model, fmt="garak", report=other).json()
    assert second["verdict"] == "inconclusive" and second["case"] is None
    assert f"case {first['case']} is already waiting" in second["verdict_reason"]
    assert Case.objects.filter(kind="audit").count() == 1


def test_a_multipart_body_without_boundary_is_400_and_other_types_415(ai, version, garak_suite):
    body = b'{"suite": "garak-weekly"}'
    assert ai.post("/api/v1/audits/runs", data=body, content_type="multipart/form-data").status_code == 400
    assert ai.post("/api/v1/audits/runs", data=body, content_type="text/plain").status_code == 415
    assert not AuditRun.objects.exists()


def test_the_audit_check_reads_at_most_three_queries_on_a_miss_and_none_after(
    ai, version, garak_suite, django_assert_num_queries
):
    from assurance.gate import audit_decision, clear_cache

    post_run(ai, suite="garak-weekly", ai_model=version.ai_model, fmt="garak", report=sample("garak_new.report.jsonl"))
    clear_cache()
    with django_assert_num_queries(3):  # the required suites, the version, its standings
        assert audit_decision(version.ai_model, rules_version="r1") is None
    with django_assert_num_queries(0):
        assert audit_decision(version.ai_model, rules_version="r1") is None
    with django_assert_num_queries(1):  # another name: the suites are cached for the rules version
        assert audit_decision("not-registered", rules_version="r1") is None
