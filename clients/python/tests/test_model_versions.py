"""Model versions from the client: register (the criteria's answer and the
committee case), retry, conflict, read, and the async twins, against the live server."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from fsar_client import FSAR, AuthError, Conflict, ModelVersion, NotFound, Route

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SHA = "ab" * 32


@pytest.fixture
def models_client(live_fsar, make_api_key):
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


def test_route_follows_the_rollout_and_answers_stable_after_a_rollback(models_client, approve_version, operator):
    from deployments import rollouts, routing
    from deployments.tests.support import REASON, passed_drill

    stable = register(models_client, "coder-stable", health_url="http://127.0.0.1:1/health")
    candidate = register(models_client, "coder-next")
    approve_version(stable.case)
    approve_version(candidate.case)
    assert models_client.model_version("coder-next").approved
    from deployments.models import ModelVersion

    passed_drill(ModelVersion.objects.get(ai_model="coder-stable"))
    rollout = rollouts.rollout_create(candidate_id=candidate.id, reason=REASON, by=operator)
    keys = [f"customer-{i}" for i in range(60)]
    routes = {k: models_client.route("coder", k) for k in keys}
    assert {k: r.ai_model for k, r in routes.items()} == {k: routing.route("coder", k).ai_model for k in keys}
    assert {(r.rollout, r.weight) for r in routes.values()} == {(rollout.pk, 5)}
    assert {r.role for r in routes.values()} <= {"stable", "candidate"}
    rollouts.rollout_rollback(rollout_id=rollout.pk, by=operator, reason="Rolled back from the client's test.")
    assert {models_client.route("coder", k).ai_model for k in keys} == {"coder-stable"}  # the next answer
    with pytest.raises(NotFound):
        models_client.route("no-such-family", "k")


def test_the_async_route(models_client, approve_version):
    version = register(models_client, "coder-only")
    approve_version(version.case)

    async def ask() -> Route:
        return await models_client.aroute("coder", "k1")

    with ThreadPoolExecutor(1) as pool:
        route = pool.submit(asyncio.run, ask()).result(timeout=60)
    assert (route.ai_model, route.rollout, route.weight) == ("coder-only", None, 0)
