import pytest

# Callback receivers named *.example resolve to a documentation network the tests allow (reviews' fixture).
from reviews.tests.conftest import callback_receivers_resolve  # noqa: F401

SHA = "ab" * 32
APPROVE = "The evaluation is sound and the rollback is ready."


@pytest.fixture(autouse=True)
def models_governed(settings):
    """deployments' tests run with the production default: an unregistered model
    version is held (the project conftest lets other apps' made-up names through)."""
    settings.MODELS_UNREGISTERED = "hold"


@pytest.fixture(autouse=True)
def default_criteria(request):
    """Database tests start from the default model-version rules, even after a
    transactional test elsewhere in the run flushed what the migration installed."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    request.getfixturevalue("transactional_db" if marker.kwargs.get("transaction", False) else "db")
    from deployments.criteria import install_default_rules
    from reviews import policy
    from reviews.defaults import install_default_rules as install_default_policy

    install_default_rules()
    install_default_policy()
    policy.clear_cache()


@pytest.fixture
def models_key(make_api_key):
    """An API key of the AI side with every scope, `models` included."""
    return make_api_key(scopes=("tasks", "reports", "backfill", "read", "models"))


@pytest.fixture
def ai(client, models_key):
    """A test client that authenticates as the AI side, `models` scope included."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {models_key[1]}"
    return client


def version_body(ai_model: str = "coder-2026-12", **fields) -> dict:
    body = {
        "family": "coder",
        "ai_model": ai_model,
        "artifact_uri": f"s3://models/{ai_model}.safetensors",
        "artifact_sha256": SHA,
        "evaluation": {"failure_rate": 0.03, "p95_ms": 4200, "red_team_pass_rate": 0.95},
    }
    return {**body, **fields}


def register_version(client, ai_model: str = "coder-2026-12", **fields):
    return client.post(
        "/api/v1/models/versions", data=version_body(ai_model, **fields), content_type="application/json"
    )


def register_task(client, external_id: str, ai_model: str | None = "coder-2026-12", **fields):
    body = {"external_id": external_id, "task_type": "implement_idea", "ai_model": ai_model, **fields}
    return client.post("/api/v1/tasks", data=body, content_type="application/json")


@pytest.fixture
def approve_version(alice, bob):
    """Two committee members approve a version's case (its quorum under the default rules)."""
    from reviews import services

    def approve(case_id: int, members=None) -> None:
        for member in members or (alice, bob):
            services.vote_cast(case_id=case_id, member=member, choice="approve", rationale=APPROVE)

    return approve


@pytest.fixture
def approved_version(ai, approve_version):
    """Register a version and have the committee approve it; returns its API body."""

    def make(ai_model: str = "coder-2026-12", **fields) -> dict:
        body = register_version(ai, ai_model, **fields).json()
        approve_version(body["case"])
        return ai.get(f"/api/v1/models/versions/{ai_model}").json()

    return make


REASON = "Ship the new coder to a share of traffic."


@pytest.fixture
def family_pair(approved_version):
    """Two approved versions of family coder: the stable (older) and the candidate."""
    from deployments.models import ModelVersion

    approved_version("coder-stable", health_url="http://127.0.0.1:1/health")
    approved_version("coder-next")
    return ModelVersion.objects.get(ai_model="coder-stable"), ModelVersion.objects.get(ai_model="coder-next")


def passed_drill(version, *, at=None):
    """A passed rollback drill of `version` (at `at`, default now)."""
    from django.utils import timezone

    from deployments.models import RollbackDrill

    at = at or timezone.now()
    return RollbackDrill.objects.create(
        family=version.family,
        target=version,
        state=RollbackDrill.State.PASS,
        reason="warm",
        warm_ok=True,
        warm_status=200,
        warm_latency_ms=3,
        started_at=at,
        finished_at=at,
    )


def finished_tasks(ai_model, n, *, failed=0, duration_ms=1000, cost_micros=500, at=None, prefix=""):
    """`n` finished tasks of `ai_model`, `failed` of them failed, finished at `at`."""
    from django.utils import timezone

    from tasks.models import ExecutionTask, TaskSource

    at = at or timezone.now()
    tag = prefix or f"{ai_model}-{at.timestamp()}"
    ExecutionTask.objects.bulk_create(
        ExecutionTask(
            external_id=f"{tag}-{i}",
            task_type="implement_idea",
            status="failed" if i < failed else "succeeded",
            ai_model=ai_model,
            source=TaskSource.API,
            started_at=at,
            finished_at=at,
            duration_ms=duration_ms + i % 7,
            cost_micros=cost_micros,
        )
        for i in range(n)
    )


@pytest.fixture
def callback(models_key, operator):
    from reviews import services

    services.callback_endpoint_set(
        api_key_id=models_key[0].pk, url="https://agent.example/cb", secret="s3cret", by=operator
    )
