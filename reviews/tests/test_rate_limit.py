"""Per-key rate limits on the agent API: 429 with Retry-After, per key, per window."""

import pytest
import time_machine
from django.core.cache import cache
from django.test import override_settings

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


@override_settings(API_RATE_LIMIT_REQUESTS=3, API_RATE_LIMIT_WINDOW_SECONDS=60)
def test_a_key_over_its_limit_gets_429_with_retry_after_and_others_do_not(client, make_api_key):
    _, first = make_api_key()
    _, second = make_api_key()
    with time_machine.travel("2026-05-01T10:00:10Z", tick=False):
        for _ in range(3):
            assert client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {first}").status_code == 200
        refused = client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {first}")
        assert refused.status_code == 429
        assert refused["Retry-After"] == "51"
        assert "3 requests per 60 s" in refused.json()["detail"]
        assert client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {second}").status_code == 200
        posted = client.post(
            "/api/v1/proposals", data=b"x", content_type="text/markdown", HTTP_AUTHORIZATION=f"Bearer {first}"
        )
        assert posted.status_code == 429
    with time_machine.travel("2026-05-01T10:01:00Z", tick=False):
        assert client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {first}").status_code == 200


def test_no_limit_by_default(client, make_api_key):
    _, secret = make_api_key()
    for _ in range(20):
        assert client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
