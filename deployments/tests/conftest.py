import pytest

from fsar.testing import register_version


@pytest.fixture(autouse=True)
def models_governed(settings):
    """deployments' tests run with the production default: an unregistered model
    version is held (the project conftest lets other apps' made-up names through)."""
    settings.MODELS_UNREGISTERED = "hold"


@pytest.fixture
def models_key(make_api_key):
    """An API key of the AI side with every scope, `models` included."""
    return make_api_key(scopes=("tasks", "reports", "backfill", "read", "models"))


@pytest.fixture
def ai(client, models_key):
    """A test client that authenticates as the AI side, `models` scope included."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {models_key[1]}"
    return client


@pytest.fixture
def approved_version(ai, approve_version):
    """Register a version and have the committee approve it; returns its API body."""

    def make(ai_model: str = "coder-2026-12", **fields) -> dict:
        body = register_version(ai, ai_model, **fields).json()
        approve_version(body["case"])
        return ai.get(f"/api/v1/models/versions/{ai_model}").json()

    return make




@pytest.fixture
def family_pair(approved_version):
    """Two approved versions of family coder: the stable (older) and the candidate."""
    from deployments.models import ModelVersion

    approved_version("coder-stable", health_url="http://127.0.0.1:1/health")
    approved_version("coder-next")
    return ModelVersion.objects.get(ai_model="coder-stable"), ModelVersion.objects.get(ai_model="coder-next")


@pytest.fixture
def callback(models_key, operator):
    from reviews import services

    services.callback_endpoint_set(
        api_key_id=models_key[0].pk, url="https://agent.example/cb", secret="s3cret", by=operator
    )
