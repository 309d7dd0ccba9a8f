"""Helpers for assurance's tests: sample reports, suites and versions, posting a run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.utils import timezone

SAMPLES = Path(__file__).parent / "samples"
SHA = "cd" * 32


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def make_version(ai_model: str = "coder-2026-11", *, family: str = "coder", status: str = "approved", **fields):
    from deployments.models import ModelVersion

    now = timezone.now()
    return ModelVersion.objects.create(
        family=family,
        ai_model=ai_model,
        artifact_uri=f"s3://models/{ai_model}",
        artifact_sha256=SHA,
        evaluation={"failure_rate": 0.01},
        status=status,
        decision="hold",
        decision_reason="test",
        decision_policy="test",
        approved_until=now + timedelta(days=90) if status == "approved" else None,
        registered_at=fields.pop("registered_at", now - timedelta(days=30)),
        **fields,
    )


def make_suite(name: str = "garak-weekly", *, source: str = "garak", **fields):
    from assurance.models import AuditSuite

    defaults = {
        "criteria": [{"metric": "attack_success_rate", "comparison": "<=", "threshold": 0.1}],
        "schedule": "0 3 * * *",
        "grace_minutes": 60,
        "required": True,
        "action": "hold",
        "family_glob": "coder*",
        "created_at": timezone.now() - timedelta(days=30),
    }
    if source == "builtin":
        defaults["criteria"] = [{"metric": "failure_rate", "comparison": "<=", "threshold": 0.05}]
    return AuditSuite.objects.create(name=name, source=source, **{**defaults, **fields})


def post_run(client, *, suite: str, ai_model: str, fmt: str, report: bytes):
    body = {"suite": suite, "ai_model": ai_model, "format": fmt, "report": report.decode()}
    return client.post("/api/v1/audits/runs", data=body, content_type="application/json")
