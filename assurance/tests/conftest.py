from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from deployments.tests.conftest import approve_version, default_criteria, models_governed  # noqa: F401

SAMPLES = Path(__file__).parent / "samples"
SHA = "cd" * 32


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


@pytest.fixture
def audits_key(make_api_key):
    return make_api_key(scopes=("tasks", "reports", "read", "models", "audits"))


@pytest.fixture
def ai(client, audits_key):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {audits_key[1]}"
    return client


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


@pytest.fixture
def version(db):
    return make_version()


@pytest.fixture
def garak_suite(db):
    return make_suite()


@pytest.fixture
def promptfoo_suite(db):
    return make_suite(
        "promptfoo-redteam",
        source="promptfoo",
        criteria=[{"metric": "attack_success_rate", "comparison": "<=", "threshold": 0.02}],
    )


def post_run(client, *, suite: str, ai_model: str, fmt: str, report: bytes):
    body = {"suite": suite, "ai_model": ai_model, "format": fmt, "report": report.decode()}
    return client.post("/api/v1/audits/runs", data=body, content_type="application/json")
