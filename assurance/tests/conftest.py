from __future__ import annotations

import pytest

from assurance.tests.support import make_suite, make_version


@pytest.fixture
def audits_key(make_api_key):
    return make_api_key(scopes=("tasks", "reports", "read", "models", "audits"))


@pytest.fixture
def ai(client, audits_key):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {audits_key[1]}"
    return client


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


@pytest.fixture(autouse=True)
def models_governed(settings):
    """As deployments' tests: an unregistered model version is held (the production default)."""
    settings.MODELS_UNREGISTERED = "hold"
