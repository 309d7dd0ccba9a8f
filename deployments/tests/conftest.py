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
