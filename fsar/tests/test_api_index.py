"""The API's front door: an index at /api/v1/, the schema for any API key, and
the interactive docs for operators and the committee only."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_index_names_the_schema_the_docs_and_the_version_without_a_key(client):
    response = client.get("/api/v1/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {
        "name": "FSAR agent API",
        "version": "1",
        "schema_url": "/api/v1/openapi.json",
        "docs_url": "/api/v1/docs",
        "authentication": "Authorization: Bearer <key>",
        "client_url": "/api/v1/client",
    }


def test_the_index_links_the_python_clients_readme(client):
    response = client.get(client.get("/api/v1/").json()["client_url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    text = response.content.decode()
    assert text.startswith("# ") and "pip install" in text and "register_model_version" in text


@pytest.mark.parametrize("scopes", [["read"], ["tasks"], ["reports"], ["backfill"]])
def test_any_active_api_key_fetches_the_schema(make_api_key, scopes):
    _, secret = make_api_key(scopes=scopes)
    response = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["version"] == "1"
    assert "/api/v1/tasks" in schema["paths"]


def test_a_revoked_or_made_up_key_gets_a_json_401_for_the_schema(make_api_key):
    from tasks.services import api_key_revoke

    api_key, secret = make_api_key()
    assert Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/openapi.json").status_code == 200
    api_key_revoke(api_key_id=api_key.pk, reason="test")
    for header in (f"Bearer {secret}", "Bearer fsar_made-up", "Basic b3A6cHc="):
        response = Client(HTTP_AUTHORIZATION=header).get("/api/v1/openapi.json")
        assert response.status_code == 401, header
        assert response.json()["detail"] == "Missing, unknown, revoked or expired API key."


def test_an_api_key_does_not_open_the_interactive_docs(make_api_key):
    """The docs are a page for people; a key is for programs (and for the schema)."""
    _, secret = make_api_key()
    response = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/docs")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_a_customer_gets_neither_the_docs_nor_the_schema(client, customer_user, operator):
    client.force_login(operator)
    assert client.get("/api/v1/docs").status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200
    client.force_login(customer_user)
    assert client.get("/api/v1/docs").status_code == 404
    assert client.get("/api/v1/openapi.json").status_code == 404


def test_a_schema_fetch_counts_against_the_keys_rate_limit(settings, make_api_key):
    from django.core.cache import cache

    cache.clear()
    settings.API_RATE_LIMIT_REQUESTS = 2
    _, secret = make_api_key()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    # The clock stopped: three fetches across a window's boundary (60 s) would count in two
    # windows (it happened once in CI, 2026-12-01, a schema fetch taking seconds under load).
    with time_machine.travel(datetime.now(UTC), tick=False):
        assert [client.get("/api/v1/openapi.json").status_code for _ in range(3)] == [200, 200, 429]
