"""Model versions from the client: register (the criteria's answer and the
committee case), retry, conflict, read, and the async twins, against the live server."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from fsar_client import FSAR, AuthError, Conflict, ModelVersion, NotFound

pytestmark = pytest.mark.django_db(transaction=True)

SHA = "ab" * 32


@pytest.fixture
def models_client(live_fsar, policy, make_api_key):
    from deployments.criteria import install_default_rules

    install_default_rules()  # a transactional test before this one may have flushed them
    _, secret = make_api_key(scopes=("tasks", "read", "models"))
    client = FSAR(live_fsar.url, secret)
    yield client
    client.close()


def register(client: FSAR, ai_model: str = "coder-2026-12", **fields) -> ModelVersion:
    arguments = {
        "artifact_uri": f"s3://models/{ai_model}.safetensors",
        "artifact_sha256": SHA,
        "evaluation": {"failure_rate": 0.03, "p95_ms": 4200},
        **fields,
    }
    return client.register_model_version("coder", ai_model, **arguments)


def test_a_new_version_is_held_for_the_committee_with_its_case(models_client):
    from reviews.models import Case

    version = register(models_client)
    assert isinstance(version, ModelVersion) and version.created
    assert (version.family, version.ai_model, version.status) == ("coder", "coder-2026-12", "pending_review")
    assert (version.decision, version.policy) == ("hold", "new-version-hold")
    assert not version.approved and version.approved_until is None
    case = Case.objects.get(pk=version.case)
    assert (case.kind, case.subject_ref) == ("model", f"model-version:{version.id}")
    assert version.case_status == "open" and version.evaluation == {"failure_rate": 0.03, "p95_ms": 4200}


def test_a_version_failing_a_criterion_comes_back_blocked_naming_it(models_client):
    version = register(models_client, evaluation={"p95_ms": 4000})
    assert (version.status, version.decision, version.case) == ("blocked", "deny", None)
    assert "failure_rate" in (version.reason or "")


def test_a_retry_is_the_same_version_and_other_fields_are_a_conflict(models_client):
    first = register(models_client)
    again = register(models_client)
    assert (again.id, again.case, again.created) == (first.id, first.case, False)
    with pytest.raises(Conflict) as error:
        register(models_client, artifact_sha256="cd" * 32)
    assert error.value.status_code == 409 and "artifact_sha256" in error.value.detail


def test_reading_a_version_and_an_unknown_one(models_client):
    registered = register(models_client, health_url="https://models.example.com/coder/health")
    read = models_client.model_version("coder-2026-12")
    assert (read.id, read.status, read.case, read.created) == (registered.id, "pending_review", registered.case, False)
    assert read.health_url == "https://models.example.com/coder/health"
    with pytest.raises(NotFound):
        models_client.model_version("never-registered")


def test_the_async_twins(models_client):
    async def both() -> tuple[ModelVersion, ModelVersion]:
        created = await models_client.aregister_model_version(
            "coder",
            "coder-async",
            artifact_uri="s3://models/coder-async",
            artifact_sha256=SHA,
            evaluation={"failure_rate": 0.01},
        )
        return created, await models_client.amodel_version("coder-async")

    # In a thread of its own: in the full run Playwright's sync API keeps an event loop on this one.
    with ThreadPoolExecutor(1) as pool:
        created, read = pool.submit(asyncio.run, both()).result(timeout=60)
    assert created.created and (read.id, read.status) == (created.id, "pending_review")


def test_registering_needs_the_models_scope(live_fsar, agent_key):
    _, secret = agent_key  # every scope the AI side holds by default, not `models`
    with pytest.raises(AuthError, match="'models' scope") as error:
        register(FSAR(live_fsar.url, secret))
    assert error.value.status_code == 403
